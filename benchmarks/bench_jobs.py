"""`semguard benchmark --jobs N` against the default (one stage at a time), side by side in one run.

    python benchmarks/bench_jobs.py --spec configs/benchmarks/toy_ci.yaml --work /tmp/bench_jobs \
        --jobs 1 2 --results benchmarks/results --name benchmark_jobs

Runs the spec once per --jobs value, each in a fresh work folder (WORK/jobsN), one after the other on
a machine that should be otherwise quiet, and writes NAME.{json,md}: the wall-clock seconds of each
(the command as a user runs it, the toy world's rendering included), the stages' own seconds summed,
the threads each stage got, and the ratio to the first --jobs value. `--jobs 1` with the spec's
threads at 0 gives each stage torch's default (all cores); `--jobs N` gives each the cores / N.
The figures of each run's report are not compared here (their seeds and budgets are equal, their
thread counts are not, so the last digits may differ).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from semguard.benchmark.results import machine  # noqa: E402


def run(spec: Path, work: Path, jobs: int, overrides: list[str]) -> dict:
    if work.exists():
        shutil.rmtree(work)
    command = [sys.executable, "-m", "semguard.cli", "benchmark", str(spec), "--work", str(work), "--jobs", str(jobs)]
    for override in overrides:
        command += ["--set", override]
    start = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if finished.returncode != 0:
        raise SystemExit(f"--jobs {jobs} failed (exit {finished.returncode}):\n{finished.stdout[-2000:]}{finished.stderr[-2000:]}")
    report = json.loads((work / "report.json").read_text())
    return {"jobs": jobs, "wall_seconds": round(wall, 1), "stage_seconds": report["total_seconds"],
            "threads_per_stage": report["threads_per_stage"], "stages": len(report["stages"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=REPO / "configs/benchmarks/toy_ci.yaml")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--name", default="benchmark_jobs")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="a spec override for every run (semguard benchmark --set)")
    args = parser.parse_args(argv)
    rows = [run(args.spec, args.work / f"jobs{jobs}", jobs, args.overrides) for jobs in args.jobs]
    for row in rows:
        row["speedup"] = round(rows[0]["wall_seconds"] / row["wall_seconds"], 2)
    result = {"spec": str(args.spec), "rows": rows, "machine": machine(), "date": dt.date.today().isoformat(),
              "command": "python benchmarks/bench_jobs.py " + shlex.join(sys.argv[1:] if argv is None else argv)}
    lines = [f"# semguard benchmark --jobs: {args.spec.name}", "",
             f"- command: `{result['command']}`", f"- date: {result['date']}; machine: {json.dumps(result['machine'])}",
             "- runs one after the other, the machine otherwise quiet; wall: the whole command", "",
             "| --jobs | threads per stage | stages | wall seconds | stage seconds summed | speed-up (wall) |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['jobs']} | {row['threads_per_stage'] or 'torch default'} | {row['stages']} | "
                     f"{row['wall_seconds']} | {row['stage_seconds']} | {row['speedup']}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results is not None:
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / f"{args.name}.json").write_text(json.dumps(result, indent=1))
        (args.results / f"{args.name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
