"""Benchmark `semguard translate`: pipeline throughput vs the model-only forward pass in the
same run (the share of time I/O costs), and peak memory of one 2048x1024 frame tiled vs
untiled. Writes benchmarks/results/translate.md.

    python benchmarks/bench_translate.py [--frames 16] [--size 256 512] [--device auto]
        [--base-channels 32] [--memory-size 1024 2048] [--tile 512] [--overlap 64] [--tile-batch 1]

Random generator weights (throughput and memory do not depend on training). Memory is
measured in a fresh subprocess per mode: torch.cuda.max_memory_allocated on CUDA, the
growth of the process's peak RSS over its pre-forward level on CPU.
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

import numpy as np
import torch

from semguard.config import config_from_dict, config_to_dict
from semguard.data.batch import collate_samples
from semguard.data.folder import FolderDataset, write_sample
from semguard.data.sample import Box, Sample
from semguard.labels import colorize
from semguard.models import build_generator
from semguard.train.checkpoint import save_checkpoint
from semguard.translate import Translator, translate_dataset


def synthetic_sample(seed: int, size: tuple[int, int], name: str) -> Sample:
    rng = np.random.default_rng(seed)
    h, w = size
    label = np.zeros(size, np.uint8)
    label[: h // 3] = 10
    label[h // 3: h // 2] = 2
    label[h // 2:, : w // 5] = 1
    for _ in range(8):
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        label[y:y + rng.integers(5, 60), x:x + rng.integers(5, 60)] = rng.integers(0, 19)
    image = np.clip(colorize(label).astype(np.float32) + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    instances = np.zeros(size, np.int32)
    instances[h // 2:h // 2 + 20, w // 2:w // 2 + 30] = 1
    return Sample(image=image, label=label, instances=instances,
                  boxes=[Box((w / 2, h / 2, w / 2 + 30, h / 2 + 20), 13, 1)], name=name)


def make_checkpoint(path: Path, base_channels: int) -> None:
    config = config_from_dict({"model": {"base_channels": base_channels}})
    generator, _ = build_generator(config.model)
    state = generator.state_dict()
    save_checkpoint(path, {"kind": "translator", "semguard_version": "bench", "config": config_to_dict(config),
                           "generator": state, "generator_ema": state, "step": 0})


def memory_child(args) -> None:
    """Subprocess: one forward of a (H, W) frame, tiled or not; prints peak memory in MiB."""
    import resource

    translator = Translator.from_checkpoint(args.checkpoint, device=args.device,
                                            tile=args.tile if args.mode == "tiled" else None, overlap=args.overlap,
                                            tile_batch=args.tile_batch)
    batch = collate_samples([synthetic_sample(0, tuple(args.memory_size), "m")])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if translator.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    start = time.perf_counter()
    translator.translate_batch(batch)
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    print(json.dumps({"peak_mib": peak, "seconds": time.perf_counter() - start}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 512))
    parser.add_argument("--memory-size", type=int, nargs=2, default=(1024, 2048))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--tile-batch", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "translate.md"))
    parser.add_argument("--child", choices=("tiled", "untiled"), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        return memory_child(args)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = tmp / "translator.pt"
        make_checkpoint(checkpoint, args.base_channels)
        for index in range(args.frames):
            write_sample(tmp / "source", synthetic_sample(index, tuple(args.size), f"seq/{index:05d}"))
        translator = Translator.from_checkpoint(checkpoint, device=args.device, tile=args.tile, overlap=args.overlap,
                                                tile_batch=args.tile_batch)
        dataset = FolderDataset(tmp / "source")
        # warm-up (allocator, kernels) on one frame
        translator.translate_batch(collate_samples([dataset[0]]).to(translator.device))
        summary = translate_dataset(translator, dataset, tmp / "out", header={}, batch_size=args.batch_size,
                                    workers=args.workers, writers=args.writers, progress=False)
        pipeline_s = summary.seconds
        batches = [collate_samples([dataset[i]]).to(translator.device) for i in range(len(dataset))]
        if translator.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for batch in batches:
            translator.translate_batch(batch)
        if translator.device.type == "cuda":
            torch.cuda.synchronize()
        model_s = time.perf_counter() - start

        memory = {}
        if not args.skip_memory:
            for mode in ("tiled", "untiled"):
                command = [sys.executable, __file__, "--child", mode, "--checkpoint", str(checkpoint),
                           "--device", args.device, "--tile", str(args.tile), "--overlap", str(args.overlap),
                           "--tile-batch", str(args.tile_batch),
                           "--memory-size", *map(str, args.memory_size)]
                result = subprocess.run(command, capture_output=True, text=True, check=True)
                memory[mode] = json.loads(result.stdout.strip().splitlines()[-1])

    device = translator.device
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads")
    lines = [
        "# semguard translate benchmark",
        "",
        f"Command: `python benchmarks/bench_translate.py {' '.join(sys.argv[1:])}`",
        f"Machine: {machine}; torch {torch.__version__}; date {time.strftime('%Y-%m-%d %H:%M')}",
        f"Model: default SPADE generator (base_channels {args.base_channels}), random weights; "
        f"tile {args.tile}, overlap {args.overlap}, tile batch {args.tile_batch}, frame-statistics instance norm on.",
        "",
        f"## Throughput ({args.frames} frames of {args.size[0]}x{args.size[1]}, batch {args.batch_size}, "
        f"{args.workers} workers, {args.writers} writers)",
        "",
        "| what | seconds | img/s |",
        "| --- | ---: | ---: |",
        f"| full pipeline (read, translate, write PNG, verify) | {pipeline_s:.2f} | {args.frames / pipeline_s:.2f} |",
        f"| model only (translate_batch on preloaded batches) | {model_s:.2f} | {args.frames / model_s:.2f} |",
        "",
        f"Share of pipeline time not spent in the model (I/O and bookkeeping): {max(0.0, 1 - model_s / pipeline_s):.1%}",
    ]
    if memory:
        h, w = args.memory_size
        lines += [
            "",
            f"## Peak memory, one {w}x{h} frame "
            + ("(CUDA max_memory_allocated)" if device.type == "cuda" else "(CPU peak RSS growth)"),
            "",
            "| mode | peak MiB | seconds |",
            "| --- | ---: | ---: |",
            f"| tiled ({args.tile}/{args.overlap}) | {memory['tiled']['peak_mib']:.0f} | {memory['tiled']['seconds']:.1f} |",
            f"| untiled | {memory['untiled']['peak_mib']:.0f} | {memory['untiled']['seconds']:.1f} |",
        ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
