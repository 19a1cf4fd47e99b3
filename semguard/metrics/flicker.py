"""Flicker of translated clips: what a frame-by-frame translator does to video.

Two figures, from summable counts (exact under any order of clips, across processes):

- **static-region flicker**: between consecutive frames t-1 -> t, the mean absolute change
  of the image, in 8-bit levels averaged over the 3 channels, over the *static pixels*:
  pixels p such that every pixel q of the 3x3 neighbourhood of p (clipped at the frame
  border) has the same source RGB and the same source label in both frames. A translator
  that is a function of a pixel's local content would not change there; one that
  normalises with per-frame statistics does, when something elsewhere in the frame moves.
  Given for the translated clip and, on the same pixels, for the paired truth (the sim
  layouts rendered in the real style: its figure is the floor, 0 where nothing nearby
  moves, see semguard.data.toyworld.clips) and the untranslated source (0 by definition).

      static_flicker = sum_t sum_{p static in t-1,t} mean_c |I_t(p,c) - I_{t-1}(p,c)|  /  #static

- **flip flicker**: the share of *label-stable pixels* (source label equal in t-1 and t,
  not 255) whose judge reading changes between the two frames: semantic flips that come
  and go. Given for the translated clip, the source and the paired truth (the judge's own
  temporal noise on real-looking frames).

Beside them, the single-frame pixel flip rate (share of labelled pixels the judge reads as
another class than the source label), so one report holds both the temporal and the
per-frame quality. Per clip, overall, and per step t (summed over clips: the flicker over
time). `FlickerMetric` is the update / compute / reset form; `static_region_flicker` and
`flip_flicker` the functional twins for one clip.

`evaluate_flicker` runs it on a sequence set (the clips of `semguard data make-toy --clips`,
or any folder set named CLIP/FRAME), translating with a checkpoint now (optionally with
clip statistics, semguard.translate.temporal) or reading a translated set; `write_flicker_files`
writes flicker.json, flicker.md and flicker_over_time.png (`semguard eval --flicker`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from rich.table import Table

from semguard.checkpoints import load_segmenter
from semguard.common import file_sha256
from semguard.data.batch import image_to_tensor
from semguard.data.folder import FolderDataset, read_dataset_info, read_sample, write_json
from semguard.data.toyworld.clips import clip_name, clip_of
from semguard.errors import DataError, SemguardError
from semguard.labels import IGNORE_ID
from semguard.metrics.report.figures import _font
from semguard.translate.temporal import TEMPORAL_MODES, clip_groups, translate_clip_frames
from semguard.translate.translator import Translator

FLICKER_SCHEMA = "semguard-flicker"
FLICKER_VERSION = 1
NEIGHBOURHOOD = 3
VARIANTS = ("translated", "source", "paired_truth")
_FRAME_FIELDS = ("labelled_pixels",) + tuple(f"flipped_{v}" for v in VARIANTS)
_STEP_FIELDS = ("static_pixels", "stable_label_pixels") + tuple(f"change_{v}" for v in VARIANTS) \
    + tuple(f"reading_changes_{v}" for v in VARIANTS)
FIELDS = _FRAME_FIELDS + _STEP_FIELDS
_INDEX = {name: k for k, name in enumerate(FIELDS)}


def _check_frame(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")


def static_mask(source_before: np.ndarray, source_after: np.ndarray, label_before: np.ndarray,
                label_after: np.ndarray) -> np.ndarray:
    """bool [H,W]: pixels whose 3x3 neighbourhood (clipped at the border) keeps its source RGB and label.

    source_*: uint8 [H,W,3]; label_*: uint8/int [H,W] train ids.
    """
    height, width = label_before.shape
    for name, array, shape in (("source_before", source_before, (height, width, 3)),
                               ("source_after", source_after, (height, width, 3)),
                               ("label_after", label_after, (height, width))):
        _check_frame(name, array, shape)
    changed = (source_before != source_after).any(axis=-1) | (label_before != label_after)
    padded = np.pad(changed, 1, constant_values=False)        # outside the frame: nothing changed
    near = np.zeros_like(changed)
    for dy in range(NEIGHBOURHOOD):
        for dx in range(NEIGHBOURHOOD):
            near |= padded[dy:dy + height, dx:dx + width]
    return ~near


def _abs_change(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> float:
    """Sum over mask pixels of the channel-mean |after - before| (8-bit levels)."""
    if not mask.any():
        return 0.0
    diff = np.abs(after[mask].astype(np.int16) - before[mask].astype(np.int16))
    return float(diff.sum(dtype=np.int64)) / diff.shape[-1]


@dataclass
class _Previous:
    frame: int
    source: np.ndarray
    label: np.ndarray
    images: dict[str, np.ndarray]
    readings: dict[str, np.ndarray]


@dataclass
class FlickerMetric:
    """Summable flicker counts per (clip, frame); update frames of each clip in frame order.

    counts[(clip, t)]: float64 [len(FIELDS)]; the step fields of frame t count the
    transition t-1 -> t (zero for a clip's first frame).
    """

    counts: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    _previous: dict[str, _Previous] = field(default_factory=dict, repr=False)

    def reset(self) -> None:
        self.counts.clear()
        self._previous.clear()

    def update(self, clip: str, frame: int, source: np.ndarray, label: np.ndarray, images: dict[str, np.ndarray],
               readings: dict[str, np.ndarray] | None = None) -> None:
        """Add frame `frame` of `clip`.

        source: uint8 [H,W,3] source image; label: [H,W] source train ids (255 ignore);
        images: variant -> uint8 [H,W,3] (translated, paired_truth; the source is added);
        readings: variant -> int [H,W] judge argmax of that variant's image (optional).
        Frames of one clip must come in increasing order (a gap is measured across it).
        """
        height, width = label.shape
        _check_frame("source", source, (height, width, 3))
        images = {"source": source, **images}
        readings = dict(readings or {})
        for variant, image in images.items():
            if variant not in VARIANTS:
                raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
            _check_frame(f"images[{variant!r}]", image, (height, width, 3))
        for variant, reading in readings.items():
            if variant not in VARIANTS:
                raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
            _check_frame(f"readings[{variant!r}]", reading, (height, width))
        key = (clip, int(frame))
        if key in self.counts:
            raise ValueError(f"frame {frame} of clip {clip!r} was already counted")
        row = np.zeros(len(FIELDS), dtype=np.float64)
        labelled = label != IGNORE_ID
        row[_INDEX["labelled_pixels"]] = labelled.sum()
        for variant, reading in readings.items():
            row[_INDEX[f"flipped_{variant}"]] = ((reading != label) & labelled).sum()
        previous = self._previous.get(clip)
        if previous is not None:
            if frame <= previous.frame:
                raise ValueError(f"clip {clip!r}: frame {frame} after frame {previous.frame}; give frames in order")
            if previous.label.shape != label.shape:
                raise ValueError(f"clip {clip!r}: frame {frame} is {height}x{width}, frame {previous.frame} is "
                                 f"{previous.label.shape[0]}x{previous.label.shape[1]}")
            static = static_mask(previous.source, source, previous.label, label)
            row[_INDEX["static_pixels"]] = static.sum()
            for variant, image in images.items():
                if variant in previous.images:
                    row[_INDEX[f"change_{variant}"]] = _abs_change(previous.images[variant], image, static)
            stable = (previous.label == label) & labelled
            row[_INDEX["stable_label_pixels"]] = stable.sum()
            for variant, reading in readings.items():
                if variant in previous.readings:
                    row[_INDEX[f"reading_changes_{variant}"]] = ((previous.readings[variant] != reading) & stable).sum()
        self.counts[key] = row
        self._previous[clip] = _Previous(int(frame), source, label, images, readings)

    def merge(self, other: "FlickerMetric") -> None:
        """Add another metric's counts (e.g. another process's clips)."""
        for key, row in other.counts.items():
            self.counts[key] = self.counts.get(key, 0.0) + row

    def compute(self, groups: dict[str, str] | None = None) -> dict:
        """{"overall": figures, "clips": {clip: figures}, "over_time": [{"step": t, **figures}]}, and
        with `groups` (clip -> group, e.g. its camera) "groups": {group: figures}."""
        clips: dict[str, np.ndarray] = {}
        steps: dict[int, np.ndarray] = {}
        for (clip, frame), row in sorted(self.counts.items()):
            clips[clip] = clips.get(clip, 0.0) + row
            steps[frame] = steps.get(frame, 0.0) + row
        total = sum(clips.values()) if clips else np.zeros(len(FIELDS))
        grouped: dict[str, np.ndarray] = {}
        for clip, row in clips.items():
            if groups and clip in groups:
                grouped[groups[clip]] = grouped.get(groups[clip], 0.0) + row
        return {
            **({"groups": {group: figures(row) for group, row in sorted(grouped.items())}} if groups else {}),
            "overall": {"frames": len(self.counts), "clips": len(clips), **figures(total)},
            "clips": {clip: {"frames": sum(1 for c, _ in self.counts if c == clip), **figures(row)}
                      for clip, row in clips.items()},
            "over_time": [{"step": step, **figures(row)} for step, row in sorted(steps.items()) if step > 0],
        }


def figures(row: np.ndarray) -> dict:
    """Figures from one summed counts row (None where the denominator is 0)."""
    def share(numerator: str, denominator: str):
        count = row[_INDEX[denominator]]
        return float(row[_INDEX[numerator]] / count) if count > 0 else None

    pixels = row[_INDEX["static_pixels"]] + 0.0
    return {
        "static_pixels": int(pixels),
        "stable_label_pixels": int(row[_INDEX["stable_label_pixels"]]),
        "static_flicker": {v: share(f"change_{v}", "static_pixels") for v in VARIANTS},
        "flip_flicker": {v: share(f"reading_changes_{v}", "stable_label_pixels") for v in VARIANTS},
        "flip_rate": {v: share(f"flipped_{v}", "labelled_pixels") for v in VARIANTS},
        "counts": {name: float(row[k]) for k, name in enumerate(FIELDS)},
    }


def static_region_flicker(images: np.ndarray, source: np.ndarray, label: np.ndarray) -> float | None:
    """Static-region flicker of one clip: images, source uint8 [T,H,W,3]; label [T,H,W].
    Mean channel-averaged |change| in 8-bit levels over static pixels of all steps (None: none)."""
    if images.shape != source.shape or images.ndim != 4 or label.shape != images.shape[:3]:
        raise ValueError(f"images {images.shape}, source {source.shape} must be [T,H,W,3] and label {label.shape} "
                         "[T,H,W] of the same T, H, W")
    metric = FlickerMetric()
    for t in range(images.shape[0]):
        metric.update("clip", t, source[t], label[t], {"translated": images[t]})
    return metric.compute()["overall"]["static_flicker"]["translated"]


def flip_flicker(readings: np.ndarray, label: np.ndarray) -> float | None:
    """Flip flicker of one clip: readings (judge argmax) and label int [T,H,W]; share of
    label-stable pixels whose reading changes, over all steps (None: none)."""
    if readings.shape != label.shape or readings.ndim != 3:
        raise ValueError(f"readings {readings.shape} and label {label.shape} must both be [T,H,W]")
    metric = FlickerMetric()
    blank = np.zeros((*label.shape[1:], 3), np.uint8)
    for t in range(label.shape[0]):
        metric.update("clip", t, blank, label[t], {}, {"translated": readings[t]})
    return metric.compute()["overall"]["flip_flicker"]["translated"]


# ----------------------------------------------------------------------------- evaluation


def _judge_readings(judge, rows: list[dict[str, np.ndarray]], device: str, batch: int = 8) -> list[dict]:
    """Judge argmax int64 [H,W] of every image of every row (variant -> uint8 [H,W,3]), a few per call."""
    keys = [(k, variant) for k, row in enumerate(rows) for variant in row]
    out: list[dict] = [{} for _ in rows]
    with torch.no_grad():
        for first in range(0, len(keys), batch):
            chunk = keys[first:first + batch]
            images = torch.stack([image_to_tensor(rows[k][variant]) for k, variant in chunk]).to(device)
            for (k, variant), reading in zip(chunk, judge(images).argmax(1).cpu().numpy()):
                out[k][variant] = reading
    return out


def evaluate_flicker(source_root: str | Path, judge_path: str | Path, *, checkpoint: str | None = None,
                     translated_root: str | Path | None = None, paired_root: str | Path | None = None,
                     temporal: str = "none", device: str = "cpu", max_clips: int | None = None,
                     progress: Callable[[str], None] | None = None) -> dict:
    """The flicker report of a sequence set (dict; `write_flicker_files` writes it).

    source_root: folder set named CLIP/FRAME (e.g. TOYDIR/clips/sim); paired_root: the
    paired truth with the same names (optional); exactly one of checkpoint (translate now,
    `temporal` "none" | "clip") and translated_root (read, e.g. `semguard translate` output).
    """
    say = progress or (lambda message: None)
    if (checkpoint is None) == (translated_root is None):
        raise SemguardError("give exactly one of a translator checkpoint or a translated sequence set")
    if temporal not in TEMPORAL_MODES:
        raise SemguardError(f"unknown temporal mode {temporal!r}; choose one of {', '.join(TEMPORAL_MODES)}")
    source = FolderDataset(source_root)
    groups = clip_groups(list(source.names))
    if "" in groups or not groups:
        raise DataError(f"{source_root} is not a sequence set: frame names must be CLIP/FRAME "
                        "(e.g. clip_0003/000012, from `semguard data make-toy --clips N`)")
    clips = sorted(groups)[:max_clips] if max_clips else sorted(groups)
    judge, judge_meta = load_segmenter(judge_path, device=device, expected_role="judge")
    translator = None
    if checkpoint is not None:
        translator = Translator.from_checkpoint(checkpoint, device=device)
    metric = FlickerMetric()
    sizes = set()
    for number, clip in enumerate(clips, start=1):
        say(f"clip {clip} ({number}/{len(clips)}, {len(groups[clip])} frames)")
        frames = [read_sample(source_root, name) for name in groups[clip]]
        if translator is not None:
            translated = translate_clip_frames(translator, frames, temporal)
        else:
            translated = [read_sample(translated_root, name, with_label=False) for name in groups[clip]]
        for frame, out in zip(frames, translated):
            sizes.add(frame.size)
            if out.image.shape != frame.image.shape:
                raise DataError(f"{translated_root}: {frame.name} is {out.image.shape[1]}x{out.image.shape[0]}, "
                                f"the source {frame.size[1]}x{frame.size[0]}")
        images = [{"translated": out.image} for out in translated]
        if paired_root is not None:
            for frame, row in zip(frames, images):
                row["paired_truth"] = read_sample(paired_root, frame.name, with_label=False).image
        readings = _judge_readings(judge, [{**row, "source": frame.image} for frame, row in zip(frames, images)],
                                   device)
        for t, (frame, row, reading) in enumerate(zip(frames, images, readings)):
            metric.update(clip, t, frame.image, frame.label, row, reading)
    info = read_dataset_info(source_root)
    cameras = dict(zip(_clip_names(info), info.get("cameras", [])))
    result = metric.compute(groups={clip: cameras[clip] for clip in clips if clip in cameras})
    return {
        "schema": FLICKER_SCHEMA, "version": FLICKER_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "protocol": {
            "source": str(source_root), "paired_truth": str(paired_root) if paired_root else None,
            "translated": str(translated_root) if translated_root else None,
            "checkpoint": str(checkpoint) if checkpoint else None,
            "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
            "temporal": temporal if checkpoint else (_translated_temporal(translated_root)),
            "judge": str(judge_path), "judge_sha256": file_sha256(judge_path),
            "judge_role": judge_meta.get("role"),
            "clips": len(clips), "frames": result["overall"]["frames"],
            "resolutions": sorted([list(s) for s in sizes]), "fps": info.get("fps"),
            "neighbourhood": f"{NEIGHBOURHOOD}x{NEIGHBOURHOOD} (clipped at the frame border)",
            "units": "static_flicker: mean |change| in 8-bit levels, averaged over RGB; flip_flicker, flip_rate: shares",
            "cameras": {clip: cameras[clip] for clip in clips if clip in cameras},
        },
        **result,
    }


def _clip_names(info: dict) -> list[str]:
    return [clip_of(clip_name(k, 0)) for k in range(int(info.get("clips", 0) or 0))]


def _translated_temporal(root) -> str | None:
    try:
        return read_dataset_info(root).get("temporal")
    except Exception:  # noqa: BLE001 - a set made elsewhere has no such record
        return None


def _fmt(value, digits: int = 3, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.{max(digits - 2, 1)}f}%" if percent else f"{value:.{digits}f}"


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """(figure, value) rows of the headline figures; shared by flicker.md, the terminal and --compare."""
    overall = report["overall"]
    rows = []
    for v in VARIANTS:
        rows.append((f"static flicker, {v}", _fmt(overall["static_flicker"][v])))
    for v in VARIANTS:
        rows.append((f"flip flicker, {v}", _fmt(overall["flip_flicker"][v], 2, percent=True)))
    for v in VARIANTS:
        rows.append((f"flip rate, {v}", _fmt(overall["flip_rate"][v], 3, percent=True)))
    for group, row in (report.get("groups") or {}).items():
        rows.append((f"static flicker, translated, {group} camera", _fmt(row["static_flicker"]["translated"])))
        rows.append((f"flip flicker, translated, {group} camera", _fmt(row["flip_flicker"]["translated"], 2, True)))
    rows.append(("static pixels per step", _fmt(overall["static_pixels"] / max(1, overall["frames"] - overall["clips"]), 0)))
    return rows


def markdown_flicker(report: dict) -> str:
    protocol = report["protocol"]
    lines = [
        "# Flicker report", "",
        f"{protocol['clips']} clips, {protocol['frames']} frames of {protocol['source']}; translated: "
        + (f"checkpoint {protocol['checkpoint']} (sha256 {str(protocol['checkpoint_sha256'])[:12]}), "
           f"temporal {protocol['temporal']}" if protocol["checkpoint"] else f"{protocol['translated']}")
        + f"; judge {protocol['judge']} (sha256 {protocol['judge_sha256'][:12]}); paired truth "
        f"{protocol['paired_truth'] or 'none'}.", "",
        "Static-region flicker: mean |change| between consecutive frames (8-bit levels, RGB mean) over pixels "
        f"whose source RGB and label are unchanged in their whole neighbourhood, {protocol['neighbourhood']}. "
        "Flip flicker: share of pixels with an unchanged source label whose judge reading changes. "
        "The paired truth's figures are the floor.", "",
        "| figure (static flicker in 8-bit levels) | value |", "|---|---:|",
        *[f"| {name} | {value} |" for name, value in summary_rows(report)], "",
        *_group_lines(report),
        "## Per clip", "",
        "| clip | camera | frames | static flicker translated | paired truth | flip flicker translated | "
        "paired truth | source | flip rate translated |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cameras = protocol.get("cameras") or {}
    for clip, row in report["clips"].items():
        lines.append(
            f"| {clip} | {cameras.get(clip, '-')} | {row['frames']} | {_fmt(row['static_flicker']['translated'])} | "
            f"{_fmt(row['static_flicker']['paired_truth'])} | {_fmt(row['flip_flicker']['translated'], 2, True)} | "
            f"{_fmt(row['flip_flicker']['paired_truth'], 2, True)} | {_fmt(row['flip_flicker']['source'], 2, True)} | "
            f"{_fmt(row['flip_rate']['translated'], 3, True)} |")
    lines += ["", "![flicker over time](flicker_over_time.png)", ""]
    return "\n".join(lines)


def _group_lines(report: dict) -> list[str]:
    if not report.get("groups"):
        return []
    lines = ["## Per camera", "", "| camera | static flicker translated | paired truth | flip flicker translated | "
             "paired truth | source | flip rate translated |", "|---|---:|---:|---:|---:|---:|---:|"]
    for group, row in report["groups"].items():
        lines.append(
            f"| {group} | {_fmt(row['static_flicker']['translated'])} | {_fmt(row['static_flicker']['paired_truth'])} | "
            f"{_fmt(row['flip_flicker']['translated'], 2, True)} | {_fmt(row['flip_flicker']['paired_truth'], 2, True)} | "
            f"{_fmt(row['flip_flicker']['source'], 2, True)} | {_fmt(row['flip_rate']['translated'], 3, True)} |")
    return lines + [""]


def draw_flicker_over_time(report: dict, path: str | Path, width: int = 520, height: int = 300) -> Path:
    """Line chart: static flicker (translated, paired truth) and flip flicker x 100 per step."""
    steps = report["over_time"]
    series = [
        ("static flicker, translated", (200, 40, 40), [s["static_flicker"]["translated"] for s in steps]),
        ("static flicker, paired truth", (40, 120, 200), [s["static_flicker"]["paired_truth"] for s in steps]),
        ("flip flicker x100, translated", (230, 150, 20),
         [None if s["flip_flicker"]["translated"] is None else 100 * s["flip_flicker"]["translated"] for s in steps]),
    ]
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = _font(11)
    left, right, top, bottom = 50, width - 15, 30, height - 70
    values = [v for _, _, ys in series for v in ys if v is not None]
    peak = max(values + [1e-6]) * 1.1
    draw.text((left, 8), "flicker over time (per step t-1 -> t, all clips)", fill="black", font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black")
    for k in range(5):
        y = bottom - (bottom - top) * k / 4
        draw.text((4, y - 6), f"{peak * k / 4:.2f}", fill="black", font=font)
    count = max(1, len(steps) - 1)

    def point(i, v):
        return left + (right - left) * i / count, bottom - (bottom - top) * v / peak

    for name, colour, ys in series:
        points = [point(i, v) for i, v in enumerate(ys) if v is not None]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    for k, (name, colour, _) in enumerate(series):
        y = bottom + 22 + 14 * k
        draw.line([(left, y + 6), (left + 20, y + 6)], fill=colour, width=2)
        draw.text((left + 26, y), name, fill="black", font=font)
    if steps:
        draw.text((left, bottom + 4), f"step {steps[0]['step']}", fill="black", font=font)
        draw.text((right - 50, bottom + 4), f"step {steps[-1]['step']}", fill="black", font=font)
    path = Path(path)
    image.save(path)
    return path


def write_flicker_files(report: dict, out: str | Path) -> dict[str, Path]:
    """OUT/flicker.json, OUT/flicker.md, OUT/flicker_over_time.png (atomic JSON)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "flicker.json"
    write_json(json_path, report)
    markdown = out / "flicker.md"
    markdown.write_text(markdown_flicker(report), encoding="utf-8")
    picture = draw_flicker_over_time(report, out / "flicker_over_time.png")
    return {"json": json_path, "markdown": markdown, "picture": picture}


def is_flicker_report(data) -> bool:
    return isinstance(data, dict) and data.get("schema") == FLICKER_SCHEMA


def read_flicker_report(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable flicker report ({err})") from None
    if not is_flicker_report(data) or "overall" not in data:
        raise DataError(f"{path} is not a flicker report (no \"schema\": \"{FLICKER_SCHEMA}\"); "
                        "write one with `semguard eval --flicker`")
    return data


def print_flicker(report: dict, console) -> None:
    print_flicker_comparison([("flicker", report)], console)


def report_label(path: str, all_paths: list[str]) -> str:
    """A short column title: the folder of OUT/flicker.json (the full path when ambiguous)."""
    def short(p: str) -> str:
        return Path(p).parent.name if Path(p).name == "flicker.json" and Path(p).parent.name else Path(p).stem

    return short(path) if [short(p) for p in all_paths].count(short(path)) == 1 else path


def print_flicker_comparison(reports: list[tuple[str, dict]], console) -> None:
    """The headline flicker figures of several reports side by side."""
    table = Table(title="flicker: static (8-bit levels), flip flicker (share of label-stable pixels)")
    table.add_column("figure")
    for label, _ in reports:
        table.add_column(label, justify="right")
    rows = [dict(summary_rows(report)) for _, report in reports]
    names = list(dict.fromkeys(name for row in rows for name in row))
    for name in names:
        table.add_row(name, *(row.get(name, "-") for row in rows))
    table.add_row("temporal", *(str(report["protocol"].get("temporal")) for _, report in reports))
    console.print(table)
