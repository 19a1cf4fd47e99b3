"""The flip-report pipeline: translate (or read) the source validation set and measure it.

For every source validation frame the judge segmenter reads three images side by side:

- "translated": the translator's output (from a checkpoint, or read from --translated DIR),
- "source": the untranslated simulator image (what flipping is measured against),
- "paired_truth": on the toy world, the same layout rendered in the real style: the floor,
  i.e. the judge's own error on a perfect translation.

Each variant gets per-class flip rates and the flip table (`FlipRate`), per-box flip
rates (`BoxPreservation`), attribute preservation (crop classifier, when given), FID/KID
against the target validation images with one named feature extractor, and PSNR/SSIM/LPIPS
to the paired truth. The judge's mIoU on the target validation set is measured in the same
run, since a flip rate means nothing without the judge's error floor. The report records
the protocol: image count, resolution, resize and filter, seeds, the sha256 of the
translator checkpoint (or of the translated images) and of the judge.

Three steps, each usable alone:

- `measure` reads and judges every frame once and reduces each meter to its result
  (`Measurements`);
- `build_report` turns those into report.json's document (`SCHEMA_VERSION`, plain JSON data):
  the judge's floor, the classes it reads reliably, headline figures with bootstrap
  intervals, the notes and the protocol;
- `draw_figures` writes the pictures under OUT/figures and lists them in the report;
  `semguard.metrics.report.write_report_files` writes report.json and report.md.

`evaluate` runs the first two (and the third with `out`). Only semguard.cli-level code
(commands.py) turns strings into these objects; this module is usable from Python:
`evaluate(EvalData(...), judge_path, checkpoint=...)`.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from semguard import __version__
from semguard.checkpoints import load_crop_classifier, load_segmenter
from semguard.common import file_sha256
from semguard.data.batch import Batch, collate_samples, image_to_tensor, tensor_to_image
from semguard.data.resize import resize_sample
from semguard.data.folder import FolderDataset, read_sample
from semguard.data.formats import open_dataset
from semguard.data.sample import Sample
from semguard.errors import DataError, SemguardError
from semguard.labels import NUM_CLASSES, TRAIN_ID_NAMES, colorize
from semguard.metrics.boxes import AttributePreservation, BoxPreservation, attribute_boxes, read_attributes
from semguard.metrics.confusion import confusion_matrix, iou_from_confusion, mean_iou
from semguard.metrics.fid import FEATURE_EXTRACTORS, ImageDistance, build_feature_extractor
from semguard.metrics.flip import FlipRate, FlipResult
from semguard.metrics.headline import headline_figures, select_reliable
from semguard.metrics.paired import PairedDistance
from semguard.metrics.report import (
    SCHEMA_VERSION,
    VARIANT_TITLES,
    draw_flip_bars,
    draw_flip_table,
    draw_panel_grid,
    draw_worst_image,
    json_safe,
)
from semguard.metrics.skvd import SemanticKID
from semguard.models.crop_classifier import classify_boxes
from semguard.translate.translator import Translator

VARIANTS: tuple[str, ...] = ("translated", "source", "paired_truth")
RESIZE_FILTER = "images: bilinear (antialiased); labels: nearest; boxes: scaled"


@dataclass(frozen=True)
class EvalData:
    """Where the evaluation images come from (data set roots and their formats).

    source_val: labelled source (simulator) validation set; target_val: labelled target (real)
    validation set (judge mIoU, FID/KID reference); paired: the source layouts rendered in the
    target style, same names as source_val (toy world), or None.
    """

    source_val: str
    target_val: str
    paired: str | None = None
    source_format: str = "folder"
    target_format: str = "folder"
    source_options: dict = field(default_factory=dict)   # format options (`--source-option K=V`)
    target_options: dict = field(default_factory=dict)

    @classmethod
    def toy(cls, root: str | Path) -> "EvalData":
        """The toy world's layout: ROOT/sim/val, ROOT/real/val, ROOT/paired/val (when present)."""
        root = Path(root)
        paired = root / "paired" / "val"
        return cls(source_val=str(root / "sim" / "val"), target_val=str(root / "real" / "val"),
                   paired=str(paired) if paired.is_dir() else None)


@dataclass(frozen=True)
class EvalSettings:
    """How to measure. features: "judge", "inception" or None (no FID/KID)."""

    features: str | None = "judge"
    batch_size: int = 4
    seed: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    resize: tuple[int, int] | None = None
    worst_k: int = 6
    top_k: int = 10
    device: str = "cpu"
    lpips: bool = True
    max_images: int | None = None
    grid_frames: int = 4


@dataclass
class _Worst:
    """The k worst images of one variant, kept while streaming (a min-heap on flip rate)."""

    k: int
    heap: list = field(default_factory=list)
    counter: int = 0

    def offer(self, rate: float, name: str, image: np.ndarray, label: np.ndarray, prediction: np.ndarray) -> None:
        if self.k <= 0 or rate != rate:
            return
        self.counter += 1
        # ties: the earlier image stays (its tiebreak -counter is larger)
        entry = (rate, -self.counter, name, image, label, prediction)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, entry)

    def ranked(self) -> list[tuple]:
        return sorted(self.heap, key=lambda e: (-e[0], -e[1]))


def sha256_images(root: str | Path, names: Sequence[str]) -> str:
    """One hash over the image files of `names` under ROOT/images (name and content)."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(file_sha256(Path(root) / "images" / f"{name}.png").encode("ascii"))
    return digest.hexdigest()


def open_labelled(root: str, fmt: str, labels_required: bool = True, **options):
    """A data set (len / getitem -> Sample, .names) of `fmt` at `root` (with format options)."""
    if not Path(root).is_dir():
        raise DataError(f"data set folder {root} does not exist")
    if fmt == "folder" and not options:
        return FolderDataset(root, labels_required=labels_required)
    return open_dataset(root, fmt, **{"labels_required": labels_required, **options})


def _batches(dataset, batch_size: int, resize, limit: int | None):
    """Consecutive frames of one size, at most batch_size at a time, in data set order."""
    pending: list[Sample] = []
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in range(count):
        sample = resize_sample(dataset[index], resize)
        if pending and (len(pending) == batch_size or pending[0].size != sample.size):
            yield pending
            pending = []
        pending.append(sample)
    if pending:
        yield pending


class _Translated:
    """Gives the translated images of a source batch: from a checkpoint or from a folder."""

    def __init__(self, checkpoint: str | None, translated_dir: str | None, device: str, resize):
        if (checkpoint is None) == (translated_dir is None):
            raise SemguardError("give exactly one of --checkpoint (translate now) or --translated DIR (images made elsewhere)")
        self.resize = resize
        if checkpoint is not None:
            if not Path(checkpoint).is_file():
                raise DataError(f"translator checkpoint {checkpoint} does not exist")

            self.translator = Translator.from_checkpoint(checkpoint, device=device)
            self.root = None
            self.info = {"mode": "checkpoint", "path": str(checkpoint), "sha256": file_sha256(checkpoint),
                         "step": (getattr(self.translator, "metadata", None) or {}).get("step")}
        else:
            root = Path(translated_dir)
            if not (root / "images").is_dir():
                raise DataError(f"--translated {root} is not a folder of translated images: {root / 'images'} is missing "
                                "(write one with `semguard translate`)")
            self.translator = None
            self.root = root
            self.info = {"mode": "translated_dir", "path": str(root), "sha256": ""}
        self.device = device

    def seeds(self) -> dict[str, int | None]:
        """The translator's training seed, when its checkpoint config records one."""
        if self.translator is None:
            return {}
        config = (getattr(self.translator, "metadata", None) or {}).get("config") or {}
        seed = (config.get("train") or {}).get("seed") if isinstance(config, dict) else None
        return {"translator_train": int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None}

    def images(self, batch: Batch, samples: Sequence[Sample]) -> torch.Tensor:
        """float [B,3,H,W] in [-1,1], the same size as the source batch."""
        if self.translator is not None:
            with torch.no_grad():
                output = self.translator.translate_batch(batch.to(self.device)).float().cpu()
            if output.shape != batch.image.shape:
                raise SemguardError(f"the translator returned {tuple(output.shape)} for a batch of {tuple(batch.image.shape)}")
            # quantised as `semguard translate` writes PNGs, so --checkpoint and --translated agree
            return output.clamp(-1, 1).add(1.0).mul(127.5).round().div(127.5).sub(1.0)
        images = []
        for sample in samples:
            path = self.root / "images" / f"{sample.name}.png"
            if not path.is_file():
                raise DataError(f"{path}: no translated image for source frame {sample.name!r}; "
                                f"translate the whole source validation set into {self.root}")
            translated = read_sample(self.root, sample.name, with_label=False)
            if self.resize is not None:
                translated = resize_sample(translated, self.resize)
            if translated.size != sample.size:
                raise DataError(f"{path}: translated image is {translated.size[0]}x{translated.size[1]}, its source frame "
                                f"{sample.size[0]}x{sample.size[1]}; translate at the source resolution or pass --resize")
            images.append(image_to_tensor(translated.image))
        return torch.stack(images)


def _judge_reads(judge, images: torch.Tensor, device: str) -> torch.Tensor:
    with torch.no_grad():
        return judge(images.to(device)).argmax(1).cpu()


@dataclass
class VariantMeasures:
    """One variant's results, each its meter's compute() (None where not measured)."""

    flip: FlipResult
    boxes: dict
    attributes: dict | None            # crop classifier readings kept (with --crop-classifier)
    paired_distance: dict | None       # PSNR/SSIM/LPIPS to the paired truth (not of the paired truth itself)
    image_distance: dict | None        # FID/KID against the target validation set
    to_paired_truth: dict | None       # FID/KID against the paired truth
    skvd: dict | None                  # KID on label-matched crops of the target validation set
    worst: _Worst                      # the worst images themselves, for the figures


@dataclass
class Measurements:
    """What `measure` found, and what produced it; `build_report` and `draw_figures` read it."""

    variants: dict[str, VariantMeasures]   # in VARIANTS order; paired_truth only with a paired truth
    image_names: list[str]                 # the source frames read, in order
    resolutions: set[tuple[int, int]]      # (H, W) of the frames as measured
    judge_confusion: torch.Tensor          # int64 [K,K]: target val labels c read as c'
    target_count: int
    judge: dict                            # {"path", "sha256"}
    judge_meta: dict                       # the judge checkpoint's metadata (role, build, data, metrics)
    translation: dict                      # {"mode", "path", "sha256"} (+ "step" from a checkpoint)
    seeds: dict[str, int | None]           # the data sets' and the translator's training seeds
    crop_classifier: dict | None           # {"path", "sha256"}
    grid_rows: list[list[np.ndarray]]      # first frames: source, translated, (paired truth,) judge's reading; uint8 [H,W,3]


class _VariantMeters:
    """One variant's meters, updated batch by batch while the source set streams by."""

    def __init__(self, settings: EvalSettings, classify: Callable | None, extractor: Callable | None,
                 paired_distance: bool):
        self.settings = settings
        self.classify = classify
        self.extractor = extractor
        self.flips = FlipRate()
        self.boxes = BoxPreservation()
        self.attributes = AttributePreservation() if classify is not None else None
        self.paired_distance = PairedDistance(lpips=settings.lpips) if paired_distance else None
        self.features: list[torch.Tensor] = []
        self.skvd = SemanticKID(seed=settings.seed, kid_subsets=settings.kid_subsets,
                                kid_subset_size=settings.kid_subset_size) if extractor is not None else None
        self.worst = _Worst(settings.worst_k)

    def update(self, images: torch.Tensor, prediction: torch.Tensor, batch: Batch, samples: Sequence[Sample],
               paired_truth: torch.Tensor | None) -> None:
        """images: float32 [B,3,H,W] in [-1,1]; prediction: int64 [B,H,W], the judge's reading of them;
        paired_truth: float32 [B,3,H,W] in [-1,1] of the same frames, or None."""
        self.flips.update(batch.label, prediction, batch.names)
        self.boxes.update(batch.label, prediction, batch.boxes)
        if self.worst.k > 0:
            for index, record in enumerate(self.flips.latest_images):
                self.worst.offer(record.flip_rate, record.name, tensor_to_image(images[index]), samples[index].label,
                                 prediction[index].numpy().astype(np.uint8))
        if self.attributes is not None:
            for index, sample in enumerate(samples):
                predicted = read_attributes(self.classify, images[index], sample.boxes)
                self.attributes.update(attribute_boxes(sample.boxes), predicted)
        if self.extractor is not None:
            with torch.no_grad():
                self.features.append(self.extractor(images.to(self.settings.device)).cpu())
            self.skvd.update_generated(images, batch.label)
        if self.paired_distance is not None:
            self.paired_distance.update(images, paired_truth)

    def compute(self, target_features: torch.Tensor | None, paired_truth_features: torch.Tensor | None) -> VariantMeasures:
        """The results; target_features / paired_truth_features: [N,D] of the FID/KID references (None: not given)."""
        image_distance = to_paired = skvd = None
        if self.extractor is not None:
            features = torch.cat(self.features)
            image_distance = _distance(self.settings, target_features, features, "target_val")
            if paired_truth_features is not None:
                to_paired = _distance(self.settings, paired_truth_features, features, "paired_truth")
            skvd = {**self.skvd.compute(self.extractor, batch_size=self.settings.batch_size, device=self.settings.device),
                    "feature_extractor": self.settings.features}
        return VariantMeasures(
            flip=self.flips.compute(), boxes=self.boxes.compute(),
            attributes=self.attributes.compute() if self.attributes is not None else None,
            paired_distance=self.paired_distance.compute() if self.paired_distance is not None else None,
            image_distance=image_distance, to_paired_truth=to_paired, skvd=skvd, worst=self.worst)


def measure(data: EvalData, judge_path: str | Path, checkpoint: str | None = None, translated_dir: str | None = None,
            crop_classifier: str | None = None, settings: EvalSettings = EvalSettings(),
            progress: Callable[[str], None] | None = None) -> Measurements:
    """Read, translate (or read the translations of) and judge every source frame, then judge the target set."""
    say = progress or (lambda message: None)
    if settings.features is not None and settings.features not in FEATURE_EXTRACTORS:
        raise SemguardError(f"unknown feature extractor {settings.features!r}; choose one of {', '.join(FEATURE_EXTRACTORS)}")
    device = settings.device
    judge, judge_meta = load_segmenter(judge_path, device=device, expected_role="judge")
    extractor = build_feature_extractor(settings.features, judge) if settings.features else None
    translated = _Translated(checkpoint, translated_dir, device, settings.resize)
    source_set = open_labelled(data.source_val, data.source_format, **data.source_options)
    target_set = open_labelled(data.target_val, data.target_format, **data.target_options)
    paired_root = Path(data.paired) if data.paired else None
    if paired_root is not None and not (paired_root / "images").is_dir():
        raise DataError(f"paired truth {paired_root} is not a folder data set ({paired_root / 'images'} is missing)")
    variants = [v for v in VARIANTS if v != "paired_truth" or paired_root is not None]
    classify = None
    crop_info = None
    if crop_classifier is not None:
        crop_model, _ = load_crop_classifier(crop_classifier, device=device)
        classify = lambda image, boxes: classify_boxes(crop_model, image, boxes)  # noqa: E731
        crop_info = {"path": str(crop_classifier), "sha256": file_sha256(crop_classifier)}
    meters = {v: _VariantMeters(settings, classify, extractor, paired_distance=paired_root is not None and
                                v != "paired_truth") for v in variants}
    resolutions: set[tuple[int, int]] = set()
    names_seen: list[str] = []
    grid_rows: list[list[np.ndarray]] = []

    say(f"reading {data.source_val} ({len(source_set)} frames) and its translations")
    for samples in _batches(source_set, settings.batch_size, settings.resize, settings.max_images):
        batch = collate_samples(samples)
        resolutions.add(samples[0].size)
        names_seen += batch.names
        images = {"source": batch.image, "translated": translated.images(batch, samples)}
        if paired_root is not None:
            images["paired_truth"] = _paired_truth_images(paired_root, samples, settings.resize)
        for variant, meter in meters.items():
            meter.update(images[variant], _judge_reads(judge, images[variant], device), batch, samples,
                         images.get("paired_truth"))
        for index in range(min(len(samples), settings.grid_frames - len(grid_rows))):
            reading = _judge_reads(judge, images["translated"][index:index + 1], device)[0].numpy().astype(np.uint8)
            grid_rows.append([tensor_to_image(images[v][index]) for v in ("source", "translated", "paired_truth")
                              if v in images] + [colorize(reading)])

    say(f"judging {data.target_val} ({len(target_set)} frames)")
    target_confusion, reference, target_count = _measure_target(target_set, judge, extractor, meters, settings)

    translation_info = dict(translated.info)
    if translated.root is not None:  # images made elsewhere: hash what was read
        translation_info["sha256"] = sha256_images(translated.root, names_seen)
    paired_truth_features = torch.cat(meters["paired_truth"].features) \
        if extractor is not None and "paired_truth" in meters else None
    return Measurements(
        variants={variant: meter.compute(reference, paired_truth_features if variant != "paired_truth" else None)
                  for variant, meter in meters.items()},
        image_names=names_seen, resolutions=resolutions, judge_confusion=target_confusion, target_count=target_count,
        judge={"path": str(judge_path), "sha256": file_sha256(judge_path)}, judge_meta=judge_meta,
        translation=translation_info, seeds={**_data_seeds(source_set, target_set), **translated.seeds()},
        crop_classifier=crop_info, grid_rows=grid_rows)


def _measure_target(target_set, judge, extractor, meters: dict[str, _VariantMeters],
                    settings: EvalSettings) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """The judge on the target validation set: its confusion int64 [K,K], the FID/KID reference
    features [N,D] (None without a feature extractor) and the frame count; every variant's sKVD
    meter gets the target crops."""
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64)
    features: list[torch.Tensor] = []
    count = 0
    for samples in _batches(target_set, settings.batch_size, settings.resize, None):
        batch = collate_samples(samples)
        confusion += confusion_matrix(batch.label, _judge_reads(judge, batch.image, settings.device))
        count += len(samples)
        if extractor is not None:
            with torch.no_grad():
                features.append(extractor(batch.image.to(settings.device)).cpu())
            for meter in meters.values():
                meter.skvd.update_target(batch.image, batch.label)
    return confusion, torch.cat(features) if extractor is not None else None, count


def _paired_truth_images(paired_root: Path, samples: Sequence[Sample], resize) -> torch.Tensor:
    """float32 [B,3,H,W] in [-1,1]: the paired truth of each source frame, under the same name."""
    paired_samples = []
    for sample in samples:
        if not (paired_root / "images" / f"{sample.name}.png").is_file():
            raise DataError(f"paired truth {paired_root} has no frame {sample.name!r}; it must hold every source "
                            "validation frame under the same name")
        paired_samples.append(resize_sample(read_sample(paired_root, sample.name, with_label=False), resize))
    return torch.stack([image_to_tensor(s.image) for s in paired_samples])


def build_report(measured: Measurements, data: EvalData, settings: EvalSettings) -> dict:
    """report.json's document (schema `SCHEMA_VERSION`, plain JSON data: NaN -> None) from the measurements.

    The judge's floor is the paired truth's flip rate per class (else the one its checkpoint
    recorded); it selects the classes the judge reads reliably and gives each variant's excess.
    "figures" is empty until `draw_figures` fills it.
    """
    iou, present = iou_from_confusion(measured.judge_confusion)
    judge_iou = torch.where(present, iou.double(), torch.full((NUM_CLASSES,), float("nan"), dtype=torch.float64))
    flips = {variant: measures.flip for variant, measures in measured.variants.items()}
    floor_rates, floor_info = _floor(flips.get("paired_truth"), measured.judge_meta, measured.judge["path"])
    reliability = select_reliable(flips["translated"].present, judge_iou, floor_rates)
    floor_counts = flips["paired_truth"].image_class_counts.numpy() if "paired_truth" in flips else None
    variants: dict[str, dict] = {}
    for variant, measures in measured.variants.items():
        flip = measures.flip.to_dict(top_k=settings.top_k, worst_k=settings.worst_k)
        flip["headline"] = headline_figures(measures.flip.image_class_counts.numpy(), reliability,
                                            floor_counts if variant != "paired_truth" else None, seed=settings.seed)
        variants[variant] = {
            "flip": flip,
            "image_distance": measures.image_distance,
            "boxes": measures.boxes,
            "attributes": measures.attributes,
            "paired_distance": measures.paired_distance,
            "realism": {"to_paired_truth": measures.to_paired_truth, "skvd": measures.skvd},
        }
    notes = ([] if floor_info["known"] else [floor_info["note"]]) + _unavailable_notes(variants)
    judge_meta = measured.judge_meta
    report = {
        "schema_version": SCHEMA_VERSION,
        "semguard_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "protocol": {
            "image_count": len(measured.image_names),
            "target_image_count": measured.target_count,
            "resolution": [list(size) for size in sorted(measured.resolutions)],
            "resize": list(settings.resize) if settings.resize else None,
            "resize_filter": RESIZE_FILTER if settings.resize else "none (native resolution)",
            "seeds": {"kid": settings.seed, **measured.seeds},
            "feature_extractor": settings.features,
            "translation": measured.translation,
            "judge": measured.judge,
            "crop_classifier": measured.crop_classifier,
            "data": {"source_val": str(data.source_val), "target_val": str(data.target_val),
                     "paired": str(Path(data.paired)) if data.paired else None},
            "judge_training": {k: judge_meta.get(k) for k in ("role", "build", "data") if k in judge_meta},
        },
        "judge": {
            "miou": mean_iou(measured.judge_confusion),
            "per_class_iou": {TRAIN_ID_NAMES[c]: float(iou[c]) for c in range(NUM_CLASSES) if present[c]},
            "image_count": measured.target_count,
            "data": str(data.target_val),
        },
        "reliability": {**reliability.to_dict(), "floor": floor_info},
        "variants": variants,
        "notes": notes,
        "figures": {},
    }
    return json_safe(report)


def draw_figures(report: dict, measured: Measurements, out: str | Path) -> dict:
    """Draw the report's pictures under OUT/figures: per variant the flip table and the worst images,
    then the flip bars and the first frames side by side. Lists them in report["figures"] (and each
    worst image beside its entry in flip.worst_images); returns `report`, changed in place."""
    out = Path(out)
    figures = report["figures"]
    for variant, measures in measured.variants.items():
        figures.update(_draw_variant_figures(out, variant, report["variants"][variant]["flip"], measures.worst))
    figures["flip_bars"] = _relative(draw_flip_bars(report, out / "figures" / "flip_bars.png"), out)
    if measured.grid_rows:
        captions = ["source", "translated"] + (["paired truth"] if "paired_truth" in measured.variants else []) + \
            ["judge reads the translation"]
        figures["comparison"] = _relative(draw_panel_grid(
            measured.grid_rows, captions, f"the first {len(measured.grid_rows)} source frames",
            out / "figures" / "comparison.png"), out)
    return report


def evaluate(data: EvalData, judge_path: str | Path, checkpoint: str | None = None, translated_dir: str | None = None,
             crop_classifier: str | None = None, settings: EvalSettings = EvalSettings(), out: str | Path | None = None,
             progress: Callable[[str], None] | None = None) -> dict:
    """Run the flip-report protocol: `measure`, then `build_report`; returns the report dict (schema
    `SCHEMA_VERSION`, plain JSON data).

    With `out`, the pictures (flip-table heat maps, flip bars, worst images) are written under
    OUT/figures and listed in report["figures"] (`draw_figures`); report.json / report.md are
    written by the caller (`semguard.metrics.report.write_report_files`).
    """
    measured = measure(data, judge_path, checkpoint=checkpoint, translated_dir=translated_dir,
                       crop_classifier=crop_classifier, settings=settings, progress=progress)
    report = build_report(measured, data, settings)
    if out is not None:
        draw_figures(report, measured, out)
    return report


def _floor(paired: FlipResult | None, judge_meta: dict, judge_path) -> tuple[torch.Tensor | None, dict]:
    """The judge's per-class floor [K] and where it comes from.

    The paired truth of this very evaluation when there is one; else the floor the judge's
    checkpoint recorded at training time (`segmenter train --role judge --floor-data PAIRED`),
    on other frames, so it selects reliable classes but gives no excess; else unknown.
    """
    if paired is not None:
        return paired.per_class_flip_rate, {"known": True, "source": "paired truth of this evaluation"}
    recorded = ((judge_meta or {}).get("metrics") or {}).get("floor")
    if isinstance(recorded, dict) and isinstance(recorded.get("per_class"), dict):
        rates = torch.full((NUM_CLASSES,), float("nan"), dtype=torch.float64)
        for name, rate in recorded["per_class"].items():
            if name in TRAIN_ID_NAMES and isinstance(rate, (int, float)):
                rates[TRAIN_ID_NAMES.index(name)] = float(rate)
        return rates, {"known": True, "source": f"recorded in the judge checkpoint (measured on {recorded.get('data')})",
                       "note": "excess flip needs a paired truth of these frames; not given"}
    note = (f"the judge's floor is unknown: there is no paired truth (--paired) and the judge checkpoint {judge_path} "
            "records none (train it with --floor-data PAIRED); reliable classes are chosen by judge IoU alone and no "
            "excess flip is given. On real data sets no paired truth exists, so this is expected there.")
    return None, {"known": False, "source": None, "note": note}


def _distance(settings: EvalSettings, reference: torch.Tensor, generated: torch.Tensor, against: str) -> dict:
    meter = ImageDistance(settings.features, kid_subsets=settings.kid_subsets, kid_subset_size=settings.kid_subset_size,
                          seed=settings.seed)
    meter.update_features(reference, real=True)
    meter.update_features(generated, real=False)
    return {**meter.compute(), "reference": against}


def _unavailable_notes(variants: dict[str, dict]) -> list[str]:
    """One line per figure that could not be computed, with the reason (shown in terminal and report.md)."""
    notes: dict[str, None] = {}
    for entry in variants.values():
        lpips = (entry.get("paired_distance") or {}).get("lpips") or {}
        if lpips and not lpips.get("available") and lpips.get("reason") != "not requested":
            notes[f"LPIPS to paired truth: unavailable, {lpips.get('reason')}"] = None
        for distance in (entry.get("image_distance"), (entry.get("realism") or {}).get("to_paired_truth")):
            if distance and distance.get("fid_unavailable"):
                notes[f"fid_{distance['feature_extractor']} vs {distance.get('reference', '').replace('_', ' ')}: "
                      f"{distance['fid_unavailable']}"] = None
        skvd = (entry.get("realism") or {}).get("skvd") or {}
        if skvd and skvd.get("reason"):
            notes[f"sKVD: {skvd['reason']}"] = None
    return list(notes)


def _data_seeds(*datasets) -> dict[str, int | None]:
    """Seeds the data sets record in dataset.json (the toy world writes its seed there)."""
    seeds = {}
    for role, dataset in zip(("source_data", "target_data"), datasets):
        info = getattr(dataset, "info", None) or {}
        seed = info.get("seed")
        seeds[role] = int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None
    return seeds


def _relative(path: Path, out: str | Path) -> str:
    return str(Path(path).relative_to(Path(out)))


def _draw_variant_figures(out: Path, variant: str, flip_dict: dict, worst: _Worst) -> dict[str, str]:
    figures = {}
    title = f"flip table: {VARIANT_TITLES.get(variant, variant)}"
    path = draw_flip_table(flip_dict["flip_table"], title, out / "figures" / f"flip_table_{variant}.png")
    figures[f"flip_table_{variant}"] = _relative(path, out)
    by_name = {entry["name"]: entry for entry in flip_dict["worst_images"]}
    for rank, (rate, _, name, image, label, prediction) in enumerate(worst.ranked(), start=1):
        path = draw_worst_image(image, label, prediction, f"{variant} #{rank}: {name} ({100 * rate:.1f}% flipped)",
                                out / "figures" / f"worst_{variant}_{rank:02d}.png")
        figures[f"worst_{variant}_{rank:02d}"] = _relative(path, out)
        if name in by_name:
            by_name[name]["figure"] = _relative(path, out)
    return figures
