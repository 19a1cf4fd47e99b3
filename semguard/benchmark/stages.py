"""Running the benchmark's stages: each once, resumable after a kill, with progress and an ETA.

A `Stage` is either the user's own command (`semguard ARGS` in a subprocess, its output in
WORK/logs/NAME.log) or a short step in this process (a split, a data view, a score). A stage is
done when WORK/stages.json records it and its output exists; a rerun with the same work
folder skips those, so a killed run resumes at the stage it was in (that stage starts over:
every output is written last, or atomically, by the command that makes it).

Progress: after each stage one line with the stage's time, the share of the planned work done
and an ETA. The plan gives each stage a weight (its expected seconds on a reference CPU); the
ETA scales the remaining weight by the wall-clock seconds per weight measured so far in this session.

Jobs: with `jobs` > 1 the runner keeps up to that many command stages running at once, each
started as soon as every stage it `needs` is done (in-process stages run here between polls).
When a stage fails, no further stage starts, the running ones finish (their work is kept), and
the first failure is raised; Ctrl-C kills the running ones (each starts over on the rerun).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
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
    weight: expected seconds on a reference CPU (for the ETA); needs: the stages whose outputs it
    reads (earlier in the plan), which must be done before it starts."""

    name: str
    output: Path
    command: tuple[str, ...] | None = None
    action: Callable[[], dict | None] | None = None
    weight: float = 1.0
    needs: tuple[str, ...] = ()


@dataclass
class _Job:
    """A command stage running in a subprocess."""

    stage: Stage
    number: int
    process: subprocess.Popen
    log: object
    log_path: Path
    start: float = field(default_factory=time.perf_counter)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


class StageRunner:
    """Runs stages under WORK, recording each in WORK/stages.json (name -> seconds, peak RSS, log): in plan
    order, or with `jobs` > 1 up to that many at once in the order their needs allow."""

    poll_seconds = 0.2

    def __init__(self, work: Path, stages: list[Stage], threads: int = 0, echo: Callable[[str], None] = print,
                 jobs: int = 1):
        self.work, self.stages, self.threads, self.echo, self.jobs = work, stages, threads, echo, max(1, jobs)
        self.logs = work / "logs"
        self.record_file = work / "stages.json"
        self.records: dict[str, dict] = json.loads(self.record_file.read_text()) if self.record_file.is_file() else {}
        self.total_weight = sum(stage.weight for stage in stages) or 1.0
        self.weight_done = 0.0
        self.session_weight = 0.0
        self.session_start = time.perf_counter()
        self.ran: list[str] = []   # stages run (not skipped) by this runner
        self._check_needs()

    def _check_needs(self) -> None:
        seen: set[str] = set()
        for stage in self.stages:
            unknown = [need for need in stage.needs if need not in seen]
            if unknown:
                raise ValueError(f"stage {stage.name} needs {', '.join(unknown)}, which the plan does not run "
                                 "before it")
            seen.add(stage.name)

    def done(self, stage: Stage) -> bool:
        return stage.name in self.records and stage.output.exists()

    def run_all(self) -> dict[str, dict]:
        remaining = [stage for stage in self.stages if not self.done(stage)]
        if len(remaining) < len(self.stages):
            self.echo(f"resuming in {self.work}: {len(self.stages) - len(remaining)} of {len(self.stages)} stages done "
                      f"earlier, next: {remaining[0].name if remaining else 'none'}")
        self.session_start = time.perf_counter()
        if self.jobs == 1:
            for number, stage in enumerate(self.stages, start=1):
                self.run(stage, number)
        else:
            self._run_parallel()
        return self.records

    def run(self, stage: Stage, number: int = 0) -> dict:
        if self.done(stage):
            self.weight_done += stage.weight
            return self.records[stage.name]
        self._announce(stage, number)
        start = time.perf_counter()
        record = self.execute(stage)
        return self._finish(stage, record, time.perf_counter() - start)

    def execute(self, stage: Stage) -> dict:
        """Run one stage (the command in a subprocess, or the action here); returns what to record."""
        if stage.action is not None:
            return dict(stage.action() or {})
        job = self._start(stage, 0)
        try:
            _, status, usage = os.wait4(job.process.pid, 0)
        except BaseException:
            self._kill(job)
            raise
        return self._outcome(job, status, usage)

    # ---------------------------------------------------------------- several at once

    def _run_parallel(self) -> None:
        numbers = {stage.name: number for number, stage in enumerate(self.stages, start=1)}
        finished = set()
        pending = []
        for stage in self.stages:
            if self.done(stage):
                finished.add(stage.name)
                self.weight_done += stage.weight
            else:
                pending.append(stage)
        running: list[_Job] = []
        failures: list[Exception] = []
        try:
            while pending or running:
                started = True
                while started and not failures and len(running) < self.jobs:
                    started = False
                    for stage in pending:
                        if all(need in finished for need in stage.needs):
                            pending.remove(stage)
                            if stage.action is not None:   # short, in this process
                                try:
                                    self.run(stage, numbers[stage.name])
                                except Exception as failure:   # the running stages still finish
                                    self._stopped(stage, failure, failures, running)
                                    break
                                finished.add(stage.name)
                            else:
                                self._announce(stage, numbers[stage.name])
                                running.append(self._start(stage, numbers[stage.name]))
                            started = True
                            break
                if not running:
                    break   # nothing runs and nothing can start: a failure stopped the run
                time.sleep(self.poll_seconds)
                for job in list(running):
                    pid, status, usage = os.wait4(job.process.pid, os.WNOHANG)
                    if pid == 0:
                        continue
                    running.remove(job)
                    seconds = time.perf_counter() - job.start
                    try:
                        record = self._outcome(job, status, usage)
                    except StageFailed as failure:
                        self._stopped(job.stage, failure, failures, running)
                        continue
                    self._finish(job.stage, record, seconds)
                    finished.add(job.stage.name)
        except BaseException:
            for job in running:
                self._kill(job)
            raise
        if failures:
            raise failures[0]

    def _stopped(self, stage: Stage, failure: Exception, failures: list[Exception], running: list[_Job]) -> None:
        failures.append(failure)
        if running:
            self.echo(f"    {stage.name} failed; no further stage starts, waiting for "
                      f"{', '.join(job.stage.name for job in running)} to finish (Ctrl-C stops them)")

    # ---------------------------------------------------------------- one stage

    def _announce(self, stage: Stage, number: int) -> None:
        what = f"semguard {shlex.join(stage.command)}" if stage.command is not None else "(in process)"
        self.echo(f"[{dt.datetime.now():%H:%M:%S}] [{number}/{len(self.stages)}] {stage.name}: {what}")

    def _finish(self, stage: Stage, record: dict, seconds: float) -> dict:
        record = {"seconds": round(seconds, 2), **record}
        self.records[stage.name] = record
        self._save()
        self.ran.append(stage.name)
        self.weight_done += stage.weight
        self.session_weight += stage.weight
        share = self.weight_done / self.total_weight
        elapsed = time.perf_counter() - self.session_start
        eta = (self.total_weight - self.weight_done) * elapsed / max(self.session_weight, 1e-9)
        self.echo(f"    {stage.name} done in {_duration(seconds)}; {share:.0%} of the planned work done, "
                  f"ETA {_duration(eta)}")
        return record

    def argv(self, stage: Stage) -> list[str]:
        """The command line of a command stage."""
        return [sys.executable, "-m", "semguard.cli", *stage.command]

    def _start(self, stage: Stage, number: int) -> _Job:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{stage.name}.log"
        env = dict(os.environ)
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        log = log_path.open("w")
        log.write(f"$ semguard {shlex.join(stage.command)}\n")
        log.flush()
        try:
            process = subprocess.Popen(self.argv(stage), stdout=log, stderr=subprocess.STDOUT, env=env)
        except BaseException:
            log.close()
            raise
        return _Job(stage, number, process, log, log_path)

    def _outcome(self, job: _Job, status: int, usage) -> dict:
        job.log.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            tail = "".join(job.log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
            raise StageFailed(f"stage {job.stage.name} failed with exit code {code}; rerun the same command to resume "
                              f"from it after fixing the cause; log {job.log_path}:\n{tail}")
        return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "log": str(job.log_path)}

    @staticmethod
    def _kill(job: _Job) -> None:
        job.process.kill()
        job.process.wait()
        job.log.close()

    def _save(self) -> None:
        temporary = self.record_file.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.records, indent=1))
        os.replace(temporary, self.record_file)
