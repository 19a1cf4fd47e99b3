"""The flip report's pictures, drawn with PIL and numpy only.

The flip-table heat map, per-class flip bars (one bar per variant), the worst images with their
flipped pixels highlighted, and a grid of same-size panels (source, translation, judge reading).
Each function takes plain data (report.json's lists and dicts, uint8 arrays), writes one PNG and
returns its path.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from semguard.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID_NAMES, colorize
from semguard.metrics.report.text import VARIANT_TITLES


def _font(size: int = 11):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _heat_colour(value: float) -> tuple[int, int, int]:
    """0 -> white, 1 -> dark red (sqrt scale so small flips stay visible)."""
    t = math.sqrt(max(0.0, min(1.0, value)))
    return (int(255 - 95 * t), int(255 - 255 * t), int(255 - 255 * t))


def draw_flip_table(flip_table: list[list[int]], title: str, path: str | Path, cell: int = 26) -> Path:
    """Heat map of the c -> c' flip table: row c = share of c's source pixels read as c' (diagonal shown grey)."""
    counts = np.asarray(flip_table, dtype=np.float64)
    rows = counts.sum(1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    k = counts.shape[0]
    names = [TRAIN_ID_NAMES[i] if i < NUM_CLASSES else str(i) for i in range(k)]
    left, top = 110, 146
    image = Image.new("RGB", (left + k * cell + 20, top + k * cell + 40), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(12), _font(9)
    draw.text((8, 6), title, fill="black", font=font)
    draw.text((8, 24), "row: source label c; column: judge reads c'", fill="black", font=small)
    for i, name in enumerate(names):
        y = top + i * cell
        draw.text((4, y + cell // 3), name[:16], fill="black", font=small)
        column = Image.new("RGB", (100, 14), "white")
        ImageDraw.Draw(column).text((0, 0), name[:16], fill="black", font=small)
        rotated = column.rotate(90, expand=True)
        image.paste(rotated, (left + i * cell + cell // 4, top - 104))
        for j in range(k):
            x = left + j * cell
            if rows[i, 0] == 0:
                colour = (235, 235, 235)
            elif i == j:
                colour = (200, 200, 200)
            else:
                colour = _heat_colour(shares[i, j])
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour, outline=(225, 225, 225))
            if i != j and shares[i, j] >= 0.01:
                draw.text((x + 2, y + cell // 3), f"{100 * shares[i, j]:.0f}", fill="black" if shares[i, j] < 0.3 else "white",
                          font=small)
    draw.text((left, top + k * cell + 8), "cell: % of row class pixels; grey: diagonal / class absent", fill="black",
              font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


BAR_COLOURS = {"translated": (200, 40, 40), "source": (90, 90, 200), "paired_truth": (60, 160, 60)}


def draw_flip_bars(report: dict, path: str | Path, bar: int = 7) -> Path:
    """Per-class flip rates, one horizontal bar per variant for every class present."""
    variants = list(report["variants"])
    classes = [name for name in TRAIN_ID_NAMES
               if any(report["variants"][v]["flip"]["per_class"].get(name, {}).get("rate") is not None for v in variants)]
    left, top, width = 110, 50, 360
    group = bar * len(variants) + 6
    image = Image.new("RGB", (left + width + 70, top + group * max(1, len(classes)) + 30), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(12), _font(9)
    draw.text((8, 6), "per-class flip rate (share of source pixels the judge reads as another class)", fill="black",
              font=font)
    x = 8
    for variant in variants:
        colour = BAR_COLOURS.get(variant, (120, 120, 120))
        draw.rectangle([x, 28, x + 10, 36], fill=colour)
        draw.text((x + 14, 26), VARIANT_TITLES.get(variant, variant), fill="black", font=small)
        x += 160
    for row, name in enumerate(classes):
        y = top + row * group
        draw.text((4, y + group // 3 - 2), name, fill="black", font=small)
        for index, variant in enumerate(variants):
            rate = report["variants"][variant]["flip"]["per_class"].get(name, {}).get("rate")
            y0 = y + index * bar
            if rate is None:
                continue
            draw.rectangle([left, y0, left + int(width * rate), y0 + bar - 2], fill=BAR_COLOURS.get(variant, (120, 120, 120)))
            draw.text((left + int(width * rate) + 4, y0 - 2), f"{100 * rate:.1f}%", fill="black", font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def draw_worst_image(image: np.ndarray, source_label: np.ndarray, judge_prediction: np.ndarray, title: str,
                     path: str | Path) -> Path:
    """One row: image | source label | judge's reading | image with flipped pixels in magenta.

    image uint8 [H,W,3]; source_label, judge_prediction integer [H,W] (255 = ignore, never flipped).
    """
    flipped = (source_label != IGNORE_ID) & (judge_prediction != source_label)
    highlight = (image.astype(np.float32) * 0.45).astype(np.uint8)
    highlight[flipped] = (255, 0, 255)
    share = 100 * flipped.sum() / max(1, (source_label != IGNORE_ID).sum())
    panels = [image, colorize(source_label), colorize(judge_prediction), highlight]
    # panels between 200 and 512 pixels wide: small frames grow (nearest), large ones shrink
    scale = max(1, 200 // panels[0].shape[1]) if panels[0].shape[1] < 200 else min(1.0, 512 / panels[0].shape[1])
    if scale != 1:
        new_size = (max(1, round(panels[0].shape[1] * scale)), max(1, round(panels[0].shape[0] * scale)))
        panels = [np.asarray(Image.fromarray(np.ascontiguousarray(p)).resize(new_size, Image.NEAREST)) for p in panels]
    height, width = panels[0].shape[:2]
    captions = ["image", "source label", "judge reads", f"flipped {share:.1f}% (magenta)"]
    canvas = Image.new("RGB", (4 * width + 30, height + 36), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black", font=_font(11))
    for index, (panel, caption) in enumerate(zip(panels, captions)):
        x = index * (width + 10)
        canvas.paste(Image.fromarray(np.ascontiguousarray(panel)), (x, 30))
        draw.text((x + 2, 16), caption, fill="black", font=_font(9))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def draw_panel_grid(rows: list[list[np.ndarray]], captions: list[str], title: str, path: str | Path,
                    min_width: int = 160) -> Path:
    """A grid of same-size uint8 [H,W,3] panels, one list per row, a caption per column.

    Small frames grow by an integer factor (nearest) to at least `min_width` pixels wide.
    """
    if not rows or any(len(row) != len(captions) for row in rows):
        raise ValueError(f"every row needs {len(captions)} panels (one per caption)")
    scale = max(1, -(-min_width // rows[0][0].shape[1]))
    height, width = rows[0][0].shape[0] * scale, rows[0][0].shape[1] * scale
    canvas = Image.new("RGB", (len(captions) * (width + 6) + 4, len(rows) * (height + 6) + 34), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black", font=_font(11))
    for column, caption in enumerate(captions):
        draw.text((4 + column * (width + 6), 18), caption, fill="black", font=_font(9))
    for row_index, row in enumerate(rows):
        for column, panel in enumerate(row):
            image = Image.fromarray(np.ascontiguousarray(panel))
            if scale != 1:
                image = image.resize((width, height), Image.NEAREST)
            canvas.paste(image, (4 + column * (width + 6), 32 + row_index * (height + 6)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
