"""Benchmark: PNG encoding time and size per zlib level, against Pillow's default level 6, same run.

    python benchmarks/bench_png.py [--size 1024 2048] [--levels 1 6] [--repeats 3] [--out benchmarks/results/png.md]

Frames (RGB uint8): a real-style toy world frame (`render_sample(0, 0, "sim", "real")`, textures,
noise and blur, as a translation should look), a smooth gradient with +-3 noise, and uniform
noise (a random-weight generator's output is close to it). Each figure is the best of
`--repeats` encodes into memory with `semguard.data.folder.write_png`'s encoder (Pillow), one
thread; the decoded pixels are checked equal to the frame at every level.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from semguard.data.folder import PNG_COMPRESS_LEVEL
from semguard.data.toyworld import render_sample


def frames(size: tuple[int, int]) -> dict[str, np.ndarray]:
    h, w = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = np.stack([(xx // 8) % 256, (yy // 4) % 256, ((xx + yy) // 16) % 256], -1)
    smooth = np.clip(smooth + rng.integers(-3, 4, smooth.shape), 0, 255).astype(np.uint8)
    return {"real-style toy world frame": render_sample(0, 0, "sim", "real", size=size).image,
            "smooth gradient": smooth,
            "uniform noise": rng.integers(0, 256, (h, w, 3), dtype=np.uint8)}


def encode(frame: np.ndarray, level: int, repeats: int) -> tuple[float, int]:
    best, data = float("inf"), b""
    for _ in range(repeats):
        buffer = io.BytesIO()
        start = time.perf_counter()
        Image.fromarray(frame).save(buffer, format="PNG", compress_level=level)
        best = min(best, time.perf_counter() - start)
        data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        if not np.array_equal(np.asarray(decoded), frame):
            raise SystemExit(f"level {level}: the decoded PNG differs from the frame")
    return best, len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    parser.add_argument("--levels", type=int, nargs="+", default=[PNG_COMPRESS_LEVEL, 6])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "png.md"))
    args = parser.parse_args()
    baseline = 6
    levels = sorted(set(args.levels) | {baseline})
    lines = [
        "# PNG encoding per zlib level",
        "",
        f"Command: `python benchmarks/bench_png.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, Pillow {Image.__version__}; "
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Frames {args.size[1]}x{args.size[0]} RGB; best of {args.repeats}; baseline level {baseline} (Pillow's "
        f"default); semguard writes level {PNG_COMPRESS_LEVEL}.",
        "",
        "| frame | level | seconds | x level 6 time | MB | x level 6 bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, frame in frames(tuple(args.size)).items():
        results = {level: encode(frame, level, args.repeats) for level in levels}
        base_s, base_bytes = results[baseline]
        lines += [f"| {name} | {level} | {s:.3f} | {s / base_s:.2f} | {n / 1e6:.2f} | {n / base_bytes:.2f} |"
                  for level, (s, n) in results.items()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
