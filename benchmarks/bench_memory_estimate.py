"""How true is `--tile auto`'s memory estimate? Steady-state peak memory against the estimate.

`semguard translate --tile auto` runs a frame whole when its estimated peak memory fits the
budget (semguard.translate.memory). The estimate is the tensor bytes a probe frame tracks, per
pixel, times an allocator overhead (CPU_ALLOCATOR_OVERHEAD) for what the tracker cannot see:
glibc's heap, which on CPU `semguard translate` keeps for reuse (reuse_freed_memory) and which
then fragments. This benchmark measures that overhead: each row is a fresh process that
translates one synthetic frame of a size several times (the peak grows over the first two
passes and then stays), whole or in the staged tiles a budget forces, with freed memory kept
for reuse (as translate does) or with glibc's default (as eval and the Translator API do).

Columns: tracked = the tracked bytes of the pass (overhead 1); estimate = what --tile auto
plans with (tracked x overhead); peak = VmHWM growth over its value before the first pass
(MiB), per pass and the steady (largest) one; steady / tracked = the measured overhead;
fits = steady <= estimate. Passes also give seconds, minor page faults and system seconds.

    python benchmarks/bench_memory_estimate.py [--out benchmarks/results/memory_estimate.md]
        [--rows all|quick] [--base-channels 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

# (height, width, budget MiB or None for a whole frame, keep freed memory, passes)
ROWS = ((256, 512, None, True, 5), (512, 1024, None, True, 4), (526, 957, None, True, 4),
        (1024, 2048, None, True, 3), (526, 957, 600, True, 4), (1024, 2048, 1600, True, 3), (1024, 2048, 2400, True, 3),
        (256, 512, None, False, 4), (526, 957, None, False, 4), (1024, 2048, None, False, 2),
        (526, 957, 600, False, 3))
QUICK = ((256, 512, None, True, 3), (256, 512, 100, True, 3), (256, 512, None, False, 3))


def child(args) -> None:
    """Subprocess: one row, printed as JSON."""
    from bench_translate import synthetic_sample, translate_passes

    from semguard.data.batch import collate_samples
    from semguard.translate.memory import allocator_overhead, reuse_freed_memory
    from semguard.translate.translator import Translator

    height, width = args.child_size
    budget = None if args.child_budget is None else int(args.child_budget * 2**20)
    translator = Translator.from_checkpoint(args.checkpoint, device="cpu", tile=None if budget is None else "auto",
                                            memory_budget=budget)
    kept = reuse_freed_memory() if args.child_reuse else False
    batch = collate_samples([synthetic_sample(0, (height, width), "m")])
    plan = translator.plan(1, height, width)   # the probe runs here, before the measured passes
    estimate = translator.planned_bytes(1, height, width)
    factor = allocator_overhead(translator.device)[0 if plan is None else 1]
    passes = translate_passes(translator, batch, args.child_passes)
    print(json.dumps({"plan": list(plan) if plan else None, "kept": kept, "factor": factor,
                      "tracked_mib": estimate / factor / 2**20, "estimate_mib": estimate / 2**20, "passes": passes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", choices=("all", "quick"), default="all")
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "memory_estimate.md"))
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--child-size", type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-budget", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--child-reuse", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-passes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_size:
        child(args)
        return
    from bench_translate import make_checkpoint

    rows = ROWS if args.rows == "all" else QUICK
    results = []
    with tempfile.TemporaryDirectory() as work:
        checkpoint = Path(work) / "generator.pt"
        make_checkpoint(checkpoint, args.base_channels)
        for height, width, budget, reuse, passes in rows:
            command = [sys.executable, __file__, "--checkpoint", str(checkpoint), "--child-size", str(height), str(width),
                       "--child-reuse", str(int(reuse)), "--child-passes", str(passes)]
            if budget is not None:
                command += ["--child-budget", str(budget)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"row {height}x{width} budget {budget} reuse {reuse} failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row.update(size=f"{width}x{height}", budget_mib=budget, reuse=reuse)
            results.append(row)
            steady = max(p["peak_mib"] for p in row["passes"])
            print(f"{row['size']} budget {budget} reuse {reuse}: tracked {row['tracked_mib']:.0f} estimate "
                  f"{row['estimate_mib']:.0f} peaks {[round(p['peak_mib']) for p in row['passes']]} "
                  f"ratio {steady / row['tracked_mib']:.2f}", flush=True)
    _write(args, results)


def _write(args, results: list[dict]) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Memory estimate of `--tile auto` against the steady-state peak (CPU)", "",
        f"Command: `python benchmarks/bench_memory_estimate.py --rows {args.rows} --base-channels {args.base_channels}`  ",
        f"Machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"glibc {platform.libc_ver()[1] or 'unknown'}  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
        "One synthetic frame, SPADE generator (base channels as in the command), fresh process per row. "
        "kept = freed memory kept for reuse (reuse_freed_memory, as `semguard translate` does on CPU); "
        "tracked = the probe's tensor bytes scaled to the frame; estimate = tracked x the allocator "
        "overhead --tile auto uses; peak = VmHWM growth over the value before the first pass, per pass; "
        "steady = the largest; fits = steady <= estimate.", "",
        "| frame | pass | kept | tracked MiB | overhead used | estimate MiB | peak per pass MiB | steady / tracked "
        "| fits | s per pass | minor faults per pass | system s per pass |",
        "|---|---|---|---:|---:|---:|---|---:|---|---|---|---|",
    ]
    for row in results:
        passes = row["passes"]
        steady = max(p["peak_mib"] for p in passes)
        kind = "whole" if row["plan"] is None else f"tiles {row['plan'][1]}x{row['plan'][0]} ({row['budget_mib']} MiB budget)"
        peaks = ", ".join(f"{p['peak_mib']:.0f}" for p in passes)
        seconds = ", ".join(f"{p['seconds']:.1f}" for p in passes)
        faults = ", ".join(str(p["minor_faults"]) for p in passes)
        system = ", ".join(f"{p['system_s']:.2f}" for p in passes)
        fits = "yes" if steady <= row["estimate_mib"] else "**no**"
        lines.append(
            f"| {row['size']} | {kind} | {'yes' if row['kept'] else 'no'} | {row['tracked_mib']:.0f} | {row['factor']:.2f} "
            f"| {row['estimate_mib']:.0f} | {peaks} | {steady / row['tracked_mib']:.2f} | {fits} | {seconds} | {faults} "
            f"| {system} |")
    out.write_text("\n".join(lines) + "\n")
    (out.with_suffix(".json")).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
