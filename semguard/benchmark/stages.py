"""Running the benchmark's stages: each once, resumable after a kill, with progress and an ETA.

A `Stage` is either the user's own command (`semguard ARGS` in a subprocess, its output in
WORK/logs/NAME.log) or a short step in this process (a split, a data view, a score). A stage is
done when WORK/stages.json records it and its output exists; a rerun with the same work
folder skips those, so a killed run resumes at the stage it was in (that stage starts over:
every output is written last, or atomically, by the command that makes it).

Progress: after each stage one line with the stage's time, the share of the planned work done
and an ETA. The plan gives each stage a weight (its expected seconds on a reference CPU); the
ETA scales the remaining weight by the seconds per weight measured so far in this session.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from semguard.errors import SemguardError


class StageFailed(SemguardError):
    """A stage's command failed; the message names the stage, its log and the log's tail."""

    exit_code = 1


@dataclass(frozen=True)
class Stage:
    """name: unique in the plan; output: exists once the stage finished; command: `semguard` arguments
    (a subprocess), or action: a function run here (returns extra facts to record, or None);
    weight: expected seconds on a reference CPU (for the ETA)."""

    name: str
    output: Path
    command: tuple[str, ...] | None = None
    action: Callable[[], dict | None] | None = None
    weight: float = 1.0


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


class StageRunner:
    """Runs stages in order under WORK, recording each in WORK/stages.json (name -> seconds, peak RSS, log)."""

    def __init__(self, work: Path, stages: list[Stage], threads: int = 0, echo: Callable[[str], None] = print):
        self.work, self.stages, self.threads, self.echo = work, stages, threads, echo
        self.logs = work / "logs"
        self.record_file = work / "stages.json"
        self.records: dict[str, dict] = json.loads(self.record_file.read_text()) if self.record_file.is_file() else {}
        self.total_weight = sum(stage.weight for stage in stages) or 1.0
        self.weight_done = 0.0
        self.session_weight = 0.0
        self.session_seconds = 0.0
        self.ran: list[str] = []   # stages run (not skipped) by this runner

    def done(self, stage: Stage) -> bool:
        return stage.name in self.records and stage.output.exists()

    def run_all(self) -> dict[str, dict]:
        remaining = [stage for stage in self.stages if not self.done(stage)]
        if len(remaining) < len(self.stages):
            self.echo(f"resuming in {self.work}: {len(self.stages) - len(remaining)} of {len(self.stages)} stages done "
                      f"earlier, next: {remaining[0].name if remaining else 'none'}")
        for number, stage in enumerate(self.stages, start=1):
            self.run(stage, number)
        return self.records

    def run(self, stage: Stage, number: int = 0) -> dict:
        if self.done(stage):
            self.weight_done += stage.weight
            return self.records[stage.name]
        what = f"semguard {shlex.join(stage.command)}" if stage.command is not None else "(in process)"
        self.echo(f"[{dt.datetime.now():%H:%M:%S}] [{number}/{len(self.stages)}] {stage.name}: {what}")
        start = time.perf_counter()
        record = self.execute(stage)
        seconds = time.perf_counter() - start
        record = {"seconds": round(seconds, 2), **record}
        self.records[stage.name] = record
        self._save()
        self.ran.append(stage.name)
        self.weight_done += stage.weight
        self.session_weight += stage.weight
        self.session_seconds += seconds
        share = self.weight_done / self.total_weight
        eta = (self.total_weight - self.weight_done) * self.session_seconds / max(self.session_weight, 1e-9)
        self.echo(f"    {stage.name} done in {_duration(seconds)}; {share:.0%} of the planned work done, "
                  f"ETA {_duration(eta)}")
        return record

    def execute(self, stage: Stage) -> dict:
        """Run one stage (the command in a subprocess, or the action here); returns what to record."""
        if stage.action is not None:
            return dict(stage.action() or {})
        return self._subprocess(stage)

    def _subprocess(self, stage: Stage) -> dict:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{stage.name}.log"
        env = dict(os.environ)
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        command = [sys.executable, "-m", "semguard.cli", *stage.command]
        with log_path.open("w") as log:
            log.write(f"$ semguard {shlex.join(stage.command)}\n")
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                _, status, usage = os.wait4(process.pid, 0)
            except BaseException:
                process.kill()
                process.wait()
                raise
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
            raise StageFailed(f"stage {stage.name} failed with exit code {code}; rerun the same command to resume "
                              f"from it after fixing the cause; log {log_path}:\n{tail}")
        return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "log": str(log_path)}

    def _save(self) -> None:
        temporary = self.record_file.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.records, indent=1))
        os.replace(temporary, self.record_file)
