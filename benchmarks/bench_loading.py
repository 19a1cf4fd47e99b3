"""Benchmark: data loading + paired transforms at 512x1024, against a plain PIL loop, same run.

    python benchmarks/bench_loading.py [--frames 32] [--size 512 1024] [--workers 2] [--out benchmarks/results/loading.md]

Writes a folder data set of synthetic street-like frames (label blocks, their colours plus
noise, boxes) into a temporary folder, then measures frames per second of:

1. a plain PIL loop (one process: open image and label PNG, np.asarray), the baseline;
   the semguard loader alone, and loader + paired transforms, in the same process;
2. `build_eval_loader` (full frames as Batches) with the given workers;
3. `build_unpaired_loader` (source + target frames, crop + flip + colour jitter +
   small-box crops, collated to Batches) with 0 and with the given workers, in steady
   state (workers started once, as in training).

Frames/s counts every frame read (the unpaired loader reads two per pair). The main
process runs torch with one thread (as the loader workers do). Each figure
is the best of `--repeats` timed passes after one warm-up pass.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semguard.data.folder import write_sample  # noqa: E402
from semguard.data.formats import open_dataset  # noqa: E402
from semguard.data.sample import Box, Sample  # noqa: E402
from semguard.data.transforms import PairedTransform  # noqa: E402
from semguard.data.unpaired import build_eval_loader, build_unpaired_loader  # noqa: E402
from semguard.labels import colorize  # noqa: E402


def synthetic_frame(index: int, size: tuple[int, int]) -> Sample:
    rng = np.random.default_rng(index)
    height, width = size
    label = np.zeros(size, np.uint8)
    label[: height * 2 // 5] = 10
    label[height * 2 // 5: height * 3 // 5] = 2
    label[height * 3 // 5: height * 2 // 3] = 1
    instances = np.zeros(size, np.int32)
    boxes = []
    for k in range(1, 9):
        class_id = int(rng.choice([6, 7, 11, 13]))
        h, w = int(rng.integers(8, height // 6)), int(rng.integers(8, width // 8))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        label[y:y + h, x:x + w], instances[y:y + h, x:x + w] = class_id, k
        boxes.append(Box((x, y, x + w, y + h), class_id, k, {"pictogram": "arrow_left"} if class_id == 7 else {}))
    image = np.clip(colorize(label).astype(np.int16) + rng.integers(-12, 13, (*size, 3)), 0, 255).astype(np.uint8)
    return Sample(image, label, instances, boxes, name=f"{index:05d}")


def best_rate(run, frames_per_pass: int, repeats: int) -> float:
    run()  # warm-up (imports, worker start, page cache)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = max(best, frames_per_pass / (time.perf_counter() - start))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--crop", type=int, nargs=2, default=(256, 512))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "loading.md"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # like the PIL loop and the loader workers; spare cores go to the workers
    size, crop = tuple(args.size), tuple(args.crop)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set"
        for i in range(args.frames):
            write_sample(root, synthetic_frame(i, size))
        names = sorted(p.stem for p in (root / "images").glob("*.png"))
        dataset = open_dataset(root, "folder")

        def pil_loop():
            for name in names:
                with Image.open(root / "images" / f"{name}.png") as image:
                    np.asarray(image.convert("RGB"))
                with Image.open(root / "labels" / f"{name}.png") as label:
                    np.asarray(label)

        def getitem_loop(transform=None):
            rng = np.random.default_rng(0)

            def run():
                for index in range(len(dataset)):
                    sample = dataset[index]
                    if transform is not None:
                        transform(sample, rng)
            return run

        def eval_loader(workers):
            def run():
                for _ in build_eval_loader(dataset, batch_size=args.batch_size, workers=workers):
                    pass
            return run

        def unpaired(workers):
            # steady state: one stream (workers started once), timed over `batches` batches per pass
            loader = build_unpaired_loader(dataset, dataset, crop=crop, batch_size=args.batch_size, workers=workers,
                                           seed=0, small_box_crop_prob=0.5, hflip=True, color_jitter=0.2)
            stream = iter(loader)
            batches = max(1, args.frames // args.batch_size)

            def run():
                for _ in islice(stream, batches):
                    pass
            return run, batches * args.batch_size * 2

        results = [("plain PIL loop (image + label, 1 process)", best_rate(pil_loop, len(names), args.repeats))]
        results.append(("semguard folder loader, dataset[i] loop (3 PNGs + boxes, ids checked), 1 process",
                        best_rate(getitem_loop(), len(names), args.repeats)))
        results.append((f"dataset[i] + PairedTransform (crop {crop[0]}x{crop[1]}, flip, jitter, small-box crops), 1 process",
                        best_rate(getitem_loop(PairedTransform(crop=crop, hflip=True, small_box_crop_prob=0.5,
                                                               color_jitter=0.2)), len(names), args.repeats)))
        results.append((f"build_eval_loader, full frames, {args.workers} workers (incl. worker start)",
                        best_rate(eval_loader(args.workers), len(names), args.repeats)))
        for workers in (0, args.workers):
            run, count = unpaired(workers)
            results.append((f"build_unpaired_loader, crop {crop[0]}x{crop[1]} + flip + jitter, {workers} workers",
                            best_rate(run, count, args.repeats)))

    command = "python benchmarks/bench_loading.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Data loading benchmark",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Frames {size[0]}x{size[1]} (semguard folder format: RGB PNG + train-id PNG + instances + boxes), "
        f"{args.frames} frames, batch size {args.batch_size}; best of {args.repeats} passes after a warm-up.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
        f"1-min load average at the end {load:.1f}; Python {platform.python_version()}.",
        "",
        "| pipeline | frames/s |",
        "|---|---|",
        *[f"| {name} | {rate:.1f} |" for name, rate in results],
        "",
        "Frames/s counts every frame decoded (the unpaired loader decodes a source and a target frame per pair);",
        "semguard reads three PNGs per frame (image, label, instances) plus the boxes JSON, the PIL loop two.",
        "The main process runs torch with one thread, like the loader workers.",
    ]
    if load > (os.cpu_count() or 1):
        lines.append(f"Caution: the load average ({load:.1f}) exceeded the {os.cpu_count()} CPUs: other processes shared "
                     "these cores, so the figures (the worker rows above all) understate a quiet machine.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
