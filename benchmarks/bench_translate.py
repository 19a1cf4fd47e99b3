"""Benchmark `semguard translate` against the model's own speed, per frame size, in one run.

Rows per frame size (default 526x957, a common simulator size, and 1024x2048):
  - model only: the generator's forward pass on preloaded, preconditioned whole frames
    (the baseline: the model's speed);
  - translate (auto): the full pipeline (decode, condition, translate, PNG encode,
    read-back verification, manifest) with the defaults, --tile auto and the default
    --memory-budget; its share of the model-only throughput;
  - translate (auto) again, writing PNGs at --compare-png-level (default 6, Pillow's own
    default) instead of translate's default level, with the image bytes' ratio;
  - translate (tiled): the same pipeline with a memory budget below the frame's
    whole-frame need (--tiled-budget-share of it), so --tile auto tiles (staged, exact).
And, per size, the peak memory of one frame whole and tiled (a fresh subprocess each, the
frame translated --memory-passes times, first-pass and largest peak: CUDA
max_memory_allocated; CPU peak RSS growth over the process before the frame), the
planner's estimate beside it, the tile it chose, and the FLOPs of the tiled pass over
the whole-frame pass (counted on the meta device: machine-independent).

    python benchmarks/bench_translate.py [--sizes 526x957,1024x2048] [--frames 4] [--device auto]
        [--base-channels 32] [--tiled-budget-share 0.6] [--compare-png-level 6] [--rounds 1] [--memory-passes 3] [--out benchmarks/results/translate.md]

Random generator weights of the default SPADE generator (speed and memory do not depend
on training). Tiny check: --sizes 64x128 --frames 2 --base-channels 8.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from semguard.common import cpu_description
from semguard.config import config_from_dict
from semguard.data.batch import collate_samples
from semguard.data.folder import IMAGE_DIR, PNG_COMPRESS_LEVEL, FolderDataset, write_sample
from semguard.data.sample import Box, Sample
from semguard.translate.memory import describe_stage_tiles, format_bytes, reuse_freed_memory
from semguard.labels import colorize
from semguard.models import build_conditioning, build_generator
from semguard.translate.tiling import pad_to_multiple, staged_apply
from semguard.checkpoints import save_translator
from semguard.translate.pipeline import io_threads
from semguard.translate import Translator, translate_dataset


def synthetic_sample(seed: int, size: tuple[int, int], name: str) -> Sample:
    rng = np.random.default_rng(seed)
    h, w = size
    label = np.zeros(size, np.uint8)
    label[: h // 3] = 10
    label[h // 3: h // 2] = 2
    label[h // 2:, : w // 5] = 1
    for _ in range(8):
        y, x = rng.integers(0, max(1, h - 20)), rng.integers(0, max(1, w - 20))
        label[y:y + rng.integers(5, 60), x:x + rng.integers(5, 60)] = rng.integers(0, 19)
    image = np.clip(colorize(label).astype(np.float32) + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    instances = np.zeros(size, np.int32)
    instances[h // 2:h // 2 + 20, w // 2:w // 2 + 30] = 1
    return Sample(image=image, label=label, instances=instances,
                  boxes=[Box((w / 2, h / 2, min(w, w / 2 + 30), min(h, h / 2 + 20)), 13, 1)], name=name)


def make_checkpoint(path: Path, base_channels: int, spade_version: int | None = None) -> None:
    model = {"base_channels": base_channels}
    if spade_version is not None:
        model["spade_version"] = spade_version
    config = config_from_dict({"model": model})
    torch.manual_seed(0)
    generator, _ = build_generator(config.model)
    state = generator.state_dict()
    save_translator(path, config, generator, generator_ema=state, step=0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only_seconds(translator: Translator, dataset, frames: int) -> float:
    """Seconds of the generator's whole-frame forward passes on preloaded, conditioned frames."""
    device = translator.device
    inputs = []
    for index in range(frames):
        batch = collate_samples([dataset[index]]).to(device)
        condition = build_conditioning(batch.label, batch.instances, batch.boxes, translator.spec, batch.image)
        image = pad_to_multiple(batch.image.float(), translator.size_multiple)
        condition = pad_to_multiple(condition, translator.size_multiple) if condition is not None else None
        inputs.append(translator._layout(image, condition))
    with torch.inference_mode():
        translator._generate(*inputs[0])   # warm-up
        _sync(device)
        start = time.perf_counter()
        for image, condition in inputs:
            translator._generate(image, condition)
        _sync(device)
    return time.perf_counter() - start


def pipeline_seconds(translator: Translator, dataset, out: Path, workers: int, writers: int,
                     png_level: int = PNG_COMPRESS_LEVEL) -> float:
    translator.translate_batch(collate_samples([dataset[0]]).to(translator.device))   # warm-up, probe, plan
    summary = translate_dataset(translator, dataset, out, header={}, workers=workers, writers=writers, progress=False,
                                png_level=png_level)
    if summary.failed:
        raise SystemExit(f"translate failed on {summary.failed[:3]}")
    return summary.seconds


def tiled_flop_ratio(translator: Translator, size: tuple[int, int], tile) -> float:
    """FLOPs of the staged tiled pass the translator planned / whole-frame pass of one frame (meta
    device: no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    generator = copy.deepcopy(translator.generator).to("meta", memory_format=torch.contiguous_format)
    h, w = (s + (-s) % translator.size_multiple for s in size)
    image = torch.empty(1, 3, h, w, device="meta")
    condition = torch.empty(1, translator.spec.channels, h, w, device="meta") if translator.spec.channels else None
    with torch.no_grad():
        with FlopCounterMode(display=False) as whole:
            generator(image, condition)
        with FlopCounterMode(display=False) as tiled:
            staged_apply(generator.stages(), image, condition, tile, translator.size_multiple, model=generator,
                         stage_tiles=translator.stage_plan(1, *size))
    return tiled.get_total_flops() / whole.get_total_flops()


def _peak_rss_mib() -> float:
    """This process's peak resident set (MiB): VmHWM, which exec resets. (ru_maxrss is not reset by
    exec: a child started from a large parent reports the parent's peak, so its growth read 0.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def translate_passes(translator: Translator, batch, passes: int) -> list[dict]:
    """Translate `batch` `passes` times (at least once); per pass: seconds, peak_mib (the peak so far
    over the memory before the first pass: CUDA max_memory_allocated, CPU VmHWM), minor_faults and
    system_s (this process's, from getrusage). The kept heap grows over the first passes, then stays."""
    import resource

    cuda = translator.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    before = _peak_rss_mib()
    results = []
    for _ in range(max(1, passes)):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        translator.translate_batch(batch)
        _sync(translator.device)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else _peak_rss_mib() - before
        results.append({"seconds": seconds, "peak_mib": peak, "minor_faults": after.ru_minflt - usage.ru_minflt,
                        "system_s": after.ru_stime - usage.ru_stime})
    return results


def memory_child(args) -> None:
    """Subprocess: one frame of `--child-size` whole (tile 0) or with a budget; prints JSON."""
    budget = None if args.child_budget == "auto" else int(args.child_budget)
    tile = None if args.child_mode == "whole" else "auto"
    translator = Translator.from_checkpoint(args.checkpoint, device=args.device, tile=tile, memory_budget=budget)
    if translator.device.type == "cpu":
        reuse_freed_memory()   # as translate_dataset does
    size = tuple(args.child_size)
    batch = collate_samples([synthetic_sample(0, size, "m")])
    plan = translator.plan(1, *size)   # the probe runs here, before the measured frame
    estimate = translator.planned_bytes(1, *size)
    passes = translate_passes(translator, batch, args.memory_passes)
    peaks = [one["peak_mib"] for one in passes]
    print(json.dumps({"peak_mib": max(peaks), "first_peak_mib": peaks[0], "estimate_mib": estimate / 2**20,
                      "seconds": passes[0]["seconds"], "tile": list(plan) if plan else None,
                      "stage_tiles": translator.stage_plan(1, *size)}))


def _memory(args, checkpoint: Path, size, mode: str, budget) -> dict:
    command = [sys.executable, __file__, "--child-mode", mode, "--checkpoint", str(checkpoint),
               "--memory-passes", str(args.memory_passes), "--device", args.device, "--child-size", *map(str, size), "--child-budget", str(budget)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"memory child {mode} {size} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="526x957,1024x2048", help="frame sizes HxW, comma-separated")
    parser.add_argument("--frames", type=int, default=4, help="frames per size and row")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--spade-version", type=int, choices=(1, 2, 3), default=None,
                        help="SPADE version of the generator (default: the config default)")
    parser.add_argument("--tiled-budget-share", type=float, default=0.6,
                        help="tiled rows: memory budget = this share of the frame's estimated whole-frame need")
    parser.add_argument("--workers", type=int, default=None, help="decode workers (default: translate's own)")
    parser.add_argument("--writers", type=int, default=None, help="PNG writers (default: translate's own)")
    parser.add_argument("--compare-png-level", type=int, default=6,
                        help="one more default-budget row writing PNGs at this zlib level (6: Pillow's own default)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run each size's rows this many times in turn and report medians (a drifting machine)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-passes", type=int, default=3,
                        help="passes of the one frame in each memory row; the peak column is the largest (steady state)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "translate.md"))
    parser.add_argument("--child-mode", choices=("whole", "budget"), help=argparse.SUPPRESS)
    parser.add_argument("--child-size", type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-budget", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_mode:
        return memory_child(args)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")

    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    rows, memory_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = tmp / "translator.pt"
        make_checkpoint(checkpoint, args.base_channels, args.spade_version)
        for size in sizes:
            h, w = size
            source = tmp / f"source_{h}x{w}"
            for index in range(args.frames):
                write_sample(source, synthetic_sample(index, size, f"seq/{index:05d}"))
            dataset = FolderDataset(source)
            auto = Translator.from_checkpoint(checkpoint, device=args.device)
            if auto.device.type == "cpu":
                reuse_freed_memory()
            whole_need = auto.memory_profile().whole_bytes(1, *auto_padded(auto, size))
            budget = int(whole_need * args.tiled_budget_share)
            tiled = Translator.from_checkpoint(checkpoint, device=args.device, memory_budget=budget)
            # each round runs the four rows one after the other: a share is a row against the model-only
            # run of its own round, so a machine whose speed drifts between rounds does not bias it
            rounds = []
            for round_index in range(args.rounds):
                out = tmp / f"out_{h}x{w}_round{round_index}"
                rounds.append({
                    "model": model_only_seconds(auto, dataset, args.frames),
                    "auto": pipeline_seconds(auto, dataset, out / "auto", args.workers, args.writers),
                    "level": pipeline_seconds(auto, dataset, out / "level", args.workers, args.writers,
                                              args.compare_png_level),
                    "tiled": pipeline_seconds(tiled, dataset, out / "tiled", args.workers, args.writers)})
                print(f"{w}x{h} round {round_index + 1}: " + json.dumps(rounds[-1]), flush=True)
            first = tmp / f"out_{h}x{w}_round0"
            size_ratio = _image_bytes(first / "auto") / _image_bytes(first / "level")
            tile = tiled.plan(1, *size)
            flops = tiled_flop_ratio(tiled, size, tile) if tile else 1.0
            rows += [
                (f"{w}x{h}", "model only (generator forward, whole frames)", *_row_figures(rounds, "model", args.frames),
                 "whole"),
                (f"{w}x{h}", f"translate, --tile auto, default budget {format_bytes(auto.budget())}",
                 *_row_figures(rounds, "auto", args.frames), _plan_text(auto.plan(1, *size))),
                (f"{w}x{h}", f"translate, --tile auto, default budget, --png-level {args.compare_png_level} "
                             f"(default {PNG_COMPRESS_LEVEL}: images x{size_ratio:.2f} the bytes)",
                 *_row_figures(rounds, "level", args.frames), _plan_text(auto.plan(1, *size))),
                (f"{w}x{h}", f"translate, --tile auto, --memory-budget {format_bytes(budget)} "
                             f"({args.tiled_budget_share:.0%} of the whole-frame need)",
                 *_row_figures(rounds, "tiled", args.frames),
                 _plan_text(tile, tiled.stage_plan(1, *size)) + f"; FLOPs x{flops:.3f}"),
            ]
            print(json.dumps(rows[-4:]))
            if not args.skip_memory:
                for mode, mode_budget in (("whole", "auto"), ("budget", budget)):
                    result = _memory(args, checkpoint, size, mode, mode_budget)
                    label = "whole frame (--tile 0)" if mode == "whole" else f"--memory-budget {format_bytes(budget)}"
                    memory_rows.append((f"{w}x{h}", label, result))
                    print(json.dumps(memory_rows[-1]))

    device = auto.device
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{cpu_description()}, {torch.get_num_threads()} torch threads")
    lines = [
        "# semguard translate benchmark",
        "",
        f"Command: `python benchmarks/bench_translate.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {machine}; torch {torch.__version__}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Model: SPADE generator (base_channels {args.base_channels}, spade_version "
        f"{auto.generator.spade_version}), random weights; {args.frames} frames per row; pipeline with "
        "{} decode workers and {} writers.".format(*io_threads(auto.device, args.workers, args.writers)),
        "",
        "## Throughput: pipeline vs the model's own speed (same run)",
        "",
        *([f"Each frame size ran its four rows one after the other, {args.rounds} times: seconds and img/s are "
           "medians over the rounds, the share is the median of each round's share of its own model-only run "
           "(min-max over the rounds beside it).", ""] if args.rounds > 1 else []),
        "| frame | what | seconds | img/s | share of model-only | pass |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    lines += [f"| {size} | {what} | {s:.2f} | {rate:.3f} | {_share_text(shares)} | {plan} |"
              for size, what, s, rate, shares, plan in rows]
    if memory_rows:
        kind = "CUDA max_memory_allocated" if device.type == "cuda" else "CPU peak RSS growth over the process"
        lines += [
            "",
            f"## Peak memory of one frame ({kind}; estimate: semguard.translate.memory)",
            "",
            f"Each row translates one frame {args.memory_passes} times in a fresh process: first-pass peak, and the "
            "largest over the passes (the kept heap grows over the first passes, then stays).",
            "",
            "| frame | mode | pass | first-pass peak MiB | peak MiB | estimate MiB | seconds (first pass) |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [f"| {size} | {label} | {_plan_text(tuple(r['tile']) if r['tile'] else None, r.get('stage_tiles'))} | {r['first_peak_mib']:.0f} "
                  f"| {r['peak_mib']:.0f} | {r['estimate_mib']:.0f} | {r['seconds']:.1f} |" for size, label, r in memory_rows]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def _row_figures(rounds: list[dict[str, float]], key: str, frames: int) -> tuple[float, float, list[float]]:
    """(median seconds, img/s at that median, each round's share of its own model-only run)."""
    seconds = statistics.median(taken[key] for taken in rounds)
    return seconds, frames / seconds, [taken["model"] / taken[key] for taken in rounds]


def _share_text(shares: list[float]) -> str:
    if len(shares) == 1:
        return f"{shares[0]:.0%}"
    return f"{statistics.median(shares):.0%} ({min(shares):.0%}-{max(shares):.0%})"


def _image_bytes(out: Path) -> int:
    return sum(path.stat().st_size for path in (out / IMAGE_DIR).rglob("*.png"))


def auto_padded(translator: Translator, size) -> tuple[int, int]:
    return tuple(s + (-s) % translator.size_multiple for s in size)


def _plan_text(tile, stage_tiles=None) -> str:
    return "whole" if tile is None else f"staged {describe_stage_tiles(tile, stage_tiles)}"


if __name__ == "__main__":
    main()
