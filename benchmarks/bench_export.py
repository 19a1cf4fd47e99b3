"""Benchmark an exported translator: onnxruntime vs PyTorch img/s, both on CPU with the same
threads, side by side in one run. Writes benchmarks/results/export.md.

    python benchmarks/bench_export.py [--sizes 526x957,1024x2048] [--frames 3] [--warmup 1]
        [--threads 2] [--generator spade] [--base-channels 32] [--static] [--out FILE]

The default generator of `configs/toy.yaml`'s architecture with random weights (speed does not
depend on training), exported once with `semguard export`'s code as a dynamic graph (and,
with --static, one static graph per size). Frames are padded to the size multiple as
`semguard translate` pads them (526x957 runs as 528x960). Model time only: the same
prebuilt image and conditioning go to both; PyTorch and onnxruntime alternate frame by
frame so load from other processes falls on both alike. The conditioning builders (semguard's
torch one and the numpy one) are timed separately, per frame.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from semguard.config import config_from_dict
from semguard.export import conditioning_np
from semguard.export.onnx_export import frame_inputs, onnxruntime_session, export_onnx, verification_frame
from semguard.models import build_generator
from semguard.checkpoints import save_translator
from semguard.translate import Translator


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        height, width = part.lower().split("x")
        sizes.append((int(height), int(width)))
    return sizes


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="526x957,1024x2048", help="HxW,HxW,... frame sizes")
    parser.add_argument("--frames", type=int, default=3, help="timed frames per size and runtime")
    parser.add_argument("--warmup", type=int, default=1, help="untimed frames per size and runtime first")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both runtimes")
    parser.add_argument("--generator", default="spade", choices=("spade", "resnet"))
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--static", action="store_true", help="also time a static graph per size")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "export.md"))
    args = parser.parse_args()
    if args.frames < 1 or args.warmup < 0:
        parser.error("--frames must be at least 1 and --warmup at least 0")
    torch.set_num_threads(args.threads)
    sizes = parse_sizes(args.sizes)
    import onnxruntime

    rows, builder_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = config_from_dict({"model": {"generator": args.generator, "base_channels": args.base_channels}})
        torch.manual_seed(0)
        generator, _ = build_generator(config.model)
        state = generator.state_dict()
        checkpoint = tmp / "translator.pt"
        save_translator(checkpoint, config, generator, generator_ema=state, step=0)
        translator = Translator.from_checkpoint(checkpoint, device="cpu", tile=None)
        multiple = translator.size_multiple
        started = time.perf_counter()
        dynamic = export_onnx(translator, tmp / "dynamic.onnx", size=None, threads=args.threads)
        export_s = time.perf_counter() - started
        graphs = {"dynamic": onnxruntime_session(dynamic.path, args.threads)}
        spec = translator.spec
        for height, width in sizes:
            padded = (round_up(height, multiple), round_up(width, multiple))
            if args.static:
                static = export_onnx(translator, tmp / f"static_{padded[0]}x{padded[1]}.onnx", size=padded,
                                     verify_frames=1, threads=args.threads)
                graphs[f"static {padded[0]}x{padded[1]}"] = onnxruntime_session(static.path, args.threads)
            names = ["dynamic"] + ([f"static {padded[0]}x{padded[1]}"] if args.static else [])
            times: dict[str, list[float]] = {"pytorch": [], **{name: [] for name in names}}
            max_diff = {name: 0.0 for name in names}
            for index in range(args.warmup + args.frames):
                frame = verification_frame(index, *padded)
                image, condition = frame_inputs([frame], spec)
                feed = {"image": image} if condition is None else {"image": image, "condition": condition}
                torch_inputs = [torch.from_numpy(feed["image"]),
                                torch.from_numpy(condition) if condition is not None else None]
                order = ["pytorch", *names] if index % 2 == 0 else [*names, "pytorch"]
                outputs = {}
                for runtime in order:
                    start = time.perf_counter()
                    if runtime == "pytorch":
                        with torch.inference_mode():
                            outputs[runtime] = translator.generator(*torch_inputs).numpy()
                    else:
                        outputs[runtime] = graphs[runtime].run(["translated"], feed)[0]
                    if index >= args.warmup:
                        times[runtime].append(time.perf_counter() - start)
                for name in names:
                    max_diff[name] = max(max_diff[name], float(np.abs(outputs[name] - outputs["pytorch"]).max()))
            for runtime, seconds in times.items():
                mean = sum(seconds) / len(seconds)
                rows.append((f"{height}x{width}", f"{padded[0]}x{padded[1]}", runtime, mean, 1.0 / mean,
                             times["pytorch"] and sum(times["pytorch"]) / len(times["pytorch"]) / mean,
                             max_diff.get(runtime)))
            if condition is not None:
                frame = verification_frame(0, height, width)
                from semguard.data.sample import Box
                from semguard.models import build_conditioning

                label = torch.from_numpy(frame["label"].astype(np.int64))[None]
                instances = torch.from_numpy(frame["instances"].astype(np.int64))[None]
                boxes = [[Box(tuple(b["xyxy"]), b["class_id"]) for b in frame["boxes"]]]
                start = time.perf_counter()
                for _ in range(3):
                    build_conditioning(label, instances, boxes, spec)
                torch_ms = (time.perf_counter() - start) / 3 * 1000
                start = time.perf_counter()
                for _ in range(3):
                    conditioning_np.build_conditioning(frame["label"], frame["instances"], frame["boxes"],
                                                       labels=spec.labels, box_channels=spec.boxes,
                                                       boundaries=spec.boundaries, box_classes=spec.box_classes)
                numpy_ms = (time.perf_counter() - start) / 3 * 1000
                builder_rows.append((f"{height}x{width}", torch_ms, numpy_ms))

    machine = f"{platform.processor() or platform.machine()} CPU, {args.threads} threads for both runtimes"
    lines = [
        "# semguard export benchmark: onnxruntime vs PyTorch (CPU)",
        "",
        f"Command: `python benchmarks/bench_export.py {' '.join(sys.argv[1:])}`",
        f"Machine: {machine}; torch {torch.__version__}; onnxruntime {onnxruntime.__version__}; "
        f"date {time.strftime('%Y-%m-%d %H:%M')}",
        f"Model: {args.generator} generator (base_channels {args.base_channels}, otherwise the config defaults), "
        f"random weights, size multiple {multiple}; opset {dynamic.contract['opset']}; "
        f"dynamic export + verification {export_s:.1f} s.",
        f"{args.frames} timed frames (after {args.warmup} warm-up) per size and runtime, batch 1, "
        "PyTorch and onnxruntime alternating; model time only (same prebuilt inputs).",
        "",
        "| frame | runs as | runtime | s/frame | img/s | speed-up vs PyTorch | max abs diff vs PyTorch |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for size, padded, runtime, mean, rate, speedup, diff in rows:
        lines.append(f"| {size} | {padded} | {runtime} | {mean:.3f} | {rate:.3f} | {speedup:.2f}x | "
                     + ("" if diff is None else f"{diff:.2e}") + " |")
    if builder_rows:
        lines += ["", "Conditioning builders, one frame (mean of 3):", "",
                  "| frame | semguard (torch) ms | conditioning_np ms |", "| --- | ---: | ---: |"]
        lines += [f"| {size} | {t:.1f} | {n:.1f} |" for size, t, n in builder_rows]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
