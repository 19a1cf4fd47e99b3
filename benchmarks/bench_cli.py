"""Benchmark: how long `semguard --help` takes, beside a bare `python -c pass` started the same way.

    python benchmarks/bench_cli.py [--rounds 9] [--out benchmarks/results/cli.md]

Each round runs every command once as a fresh process, in the same order (so a machine whose
speed drifts slows every row of a round alike); the table gives the median, fastest and slowest
wall time over the rounds and the median's excess over `python -c pass` (the interpreter's own
start). `semguard --help`, `--version` and a top-level argument error import no command module and
no torch (semguard/cli.py); `semguard eval --help` imports its group's module, torch included,
for scale. `semguard` is the console script beside this Python, else `python -m semguard.cli`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path


def semguard_command() -> list[str]:
    script = Path(sys.executable).with_name("semguard")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "semguard.cli"]


def commands() -> dict[str, list[str]]:
    semguard = semguard_command()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "semguard --version": [*semguard, "--version"],
        "semguard --help": [*semguard, "--help"],
        "semguard bogus (argument error)": [*semguard, "bogus"],
        "semguard eval --help (imports torch)": [*semguard, "eval", "--help"],
    }


def wall_seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 2):
        raise SystemExit(f"{shlex.join(argv)} exited with status {result.returncode}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="runs of each command (default 9)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cli.md"))
    args = parser.parse_args()
    runs = commands()
    for argv in runs.values():   # warm the file cache: the first start of anything reads it from disk
        wall_seconds(argv)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, argv in runs.items():
            times[name].append(wall_seconds(argv))
    baseline = statistics.median(times["python -c pass"])
    try:
        load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "unknown"
    lines = [
        "# `semguard --help` start-up time",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/bench_cli.py', *sys.argv[1:]])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, Python "
        f"{platform.python_version()}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
        f"(1/5/15 min) at the end {load}. Other jobs may have been running on the machine: compare rows "
        "of one table, not tables of different runs.  ",
        f"Wall time of a fresh process, {args.rounds} rounds (one warm-up run each first); `semguard` is "
        f"`{shlex.join(semguard_command())}`.",
        "",
        "| command | median s | fastest s | slowest s | median - python -c pass, s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, seconds in times.items():
        median = statistics.median(seconds)
        lines.append(f"| `{name}` | {median:.3f} | {min(seconds):.3f} | {max(seconds):.3f} | {median - baseline:+.3f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
