"""Look at a toy world (or any data set a format loader reads): class shares, spatial priors, previews.

The semantic gap is the point of the toy world, so it must be visible and measurable:
`domain_statistics` counts, per domain, how often each class occurs and where in the
frame; `spatial_prior_image` draws those frequency maps side by side (sim vs real);
`preview_grid` shows images, label overlays and boxes so a person can check that both
styles look like streets and that labels and boxes sit on what they name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from semguard.data.folder import list_names, read_sample
from semguard.errors import DataError
from semguard.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID_COLORS, TRAIN_ID_NAMES, colorize

PRIOR_GRID = (32, 64)
"""(rows, cols) of the spatial-prior maps."""


@dataclass
class DomainStats:
    """Label statistics of one domain.

    counts: int64 [19] pixels per train id (ignore excluded); prior: float64 [19, gh, gw],
    the share of frames in which each grid cell shows each class (0..1); frames: count.
    """

    name: str
    folders: list[Path]
    counts: np.ndarray
    prior: np.ndarray
    frames: int

    @property
    def shares(self) -> np.ndarray:
        """float64 [19]: share of labelled pixels per class (sums to 1)."""
        return self.counts / max(int(self.counts.sum()), 1)


def find_domains(root: str | Path) -> dict[str, list[Path]]:
    """Domain name -> folder data sets under `root`.

    A toy world (ROOT/sim/*, ROOT/real/*, ROOT/paired/*) gives its domains with all their
    splits; a single folder data set (ROOT/images) is one domain named after the folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} does not exist; make one with 'semguard data make-toy --out {root}'")
    if (root / "images").is_dir():
        return {root.name or str(root): [root]}
    domains = {}
    for domain in ("sim", "real", "paired"):
        folders = sorted(p for p in (root / domain).glob("*") if (p / "images").is_dir())
        if folders:
            domains[domain] = folders
    if not domains:
        raise DataError(
            f"{root} holds neither a toy world (sim/, real/ with images/) nor a folder data set (images/); "
            f"make one with 'semguard data make-toy --out {root}'"
        )
    return domains


def domain_statistics(name: str, folders: list[Path], grid: tuple[int, int] = PRIOR_GRID,
                      limit: int | None = None) -> DomainStats:
    """Count classes over the label maps of `folders` (at most `limit` frames in all)."""
    labels = (read_sample(folder, sample_name).label for folder in folders for sample_name in list_names(folder))
    return label_statistics(name, list(folders), labels, grid, limit)


def dataset_statistics(name: str, dataset, grid: tuple[int, int] = PRIOR_GRID,
                       limit: int | None = None) -> DomainStats:
    """Count classes over the label maps of a format loader's data set (semguard.data.formats.open_dataset)."""
    labels = (dataset[i].label for i in range(len(dataset)))
    return label_statistics(name, [Path(dataset.root)], labels, grid, limit)


def label_statistics(name: str, folders: list[Path], labels, grid: tuple[int, int] = PRIOR_GRID,
                     limit: int | None = None) -> DomainStats:
    """Count classes over `labels` (uint8 [H,W] train-id maps; at most `limit` of them)."""
    gh, gw = grid
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    prior = np.zeros(NUM_CLASSES * gh * gw, dtype=np.int64)
    cells = np.arange(gh * gw)
    frames = 0
    for label in labels:
        if limit is not None and frames >= limit:
            break
        counts += np.bincount(label[label != IGNORE_ID].ravel(), minlength=256)[:NUM_CLASSES]
        height, width = label.shape
        small = label[(np.arange(gh) * height) // gh][:, (np.arange(gw) * width) // gw].ravel().astype(np.int64)
        keep = small < NUM_CLASSES
        prior += np.bincount(small[keep] * gh * gw + cells[keep], minlength=NUM_CLASSES * gh * gw)
        frames += 1
    return DomainStats(name, list(folders), counts, prior.reshape(NUM_CLASSES, gh, gw) / max(frames, 1), frames)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def spatial_prior_image(stats: list[DomainStats], cell_scale: int = 2) -> np.ndarray:
    """uint8 [H,W,3]: one row per class present anywhere, one column per domain; each cell
    is the class's frequency map over the frame, white (never) -> class colour (the
    row's highest frequency, shared by the domains so they compare); the corner number is
    the class's pixel share in that domain."""
    present = [c for c in range(NUM_CLASSES) if any(s.counts[c] > 0 for s in stats)]
    gh, gw = stats[0].prior.shape[1:]
    ch, cw = gh * cell_scale, gw * cell_scale
    label_w, head_h, pad = 96, 16, 4
    canvas = Image.new("RGB", (label_w + len(stats) * (cw + pad), head_h + len(present) * (ch + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for j, domain in enumerate(stats):
        draw.text((label_w + j * (cw + pad), 2), f"{domain.name} ({domain.frames} frames)", fill=(0, 0, 0), font=font)
    for i, c in enumerate(present):
        y = head_h + i * (ch + pad)
        draw.text((2, y + ch // 2 - 6), TRAIN_ID_NAMES[c], fill=(0, 0, 0), font=font)
        colour = np.asarray(TRAIN_ID_COLORS[c], dtype=np.float64)
        peak = max(float(d.prior[c].max()) for d in stats) or 1.0
        for j, domain in enumerate(stats):
            freq = np.kron(domain.prior[c] / peak, np.ones((cell_scale, cell_scale)))[..., None]
            tile = (freq * colour + (1 - freq) * 238).astype(np.uint8)
            x = label_w + j * (cw + pad)
            canvas.paste(Image.fromarray(tile), (x, y))
            draw.rectangle([x, y, x + cw - 1, y + ch - 1], outline=(160, 160, 160))
            draw.text((x + 2, y + 1), f"{100 * domain.shares[c]:.1f}%", fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def overlay(image: np.ndarray, label: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """uint8 [H,W,3]: the label colours (labels.colorize) blended over the image."""
    return (alpha * colorize(label) + (1 - alpha) * image).astype(np.uint8)


def draw_boxes(image: np.ndarray, boxes, scale: int = 1) -> Image.Image:
    """The image (upscaled by `scale`) with each box outlined in its class colour; lights
    carry their state's initial (r/a/g), signs their pictogram's (l/r/s/w/y)."""
    canvas = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for box in boxes:
        x1, y1, x2, y2 = (v * scale for v in box.xyxy)
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=TRAIN_ID_COLORS[box.class_id])
        tag = box.attributes.get("state") or box.attributes.get("pictogram", "").replace("arrow_", "")
        if tag and scale >= 2:
            draw.text((x2 + 1, y1 - 2), tag[0], fill=(255, 255, 0), font=_font())
    return canvas


def preview_grid(root: str | Path, count: int = 4, scale: int | None = None) -> np.ndarray:
    """uint8 [H,W,3]: for each domain (sim, real, paired val; or the one folder data set),
    three rows of `count` frames: image, label overlay, boxes."""
    domains = find_domains(root)
    blocks = []
    for name, folders in domains.items():
        folder = next((f for f in folders if f.name == "val"), folders[0])
        names = list_names(folder)[:count]
        if not names:
            continue
        samples = [read_sample(folder, n) for n in names]
        blocks.append((f"{name}/{folder.name}" if folder.name != name else name, samples))
    return render_grid(blocks, root, count, scale)


def dataset_preview_grid(dataset, title: str, count: int = 4, scale: int | None = None) -> np.ndarray:
    """preview_grid for a format loader's data set (semguard.data.formats.open_dataset): its
    first `count` frames as one block (image, label overlay, boxes)."""
    samples = [dataset[i] for i in range(min(count, len(dataset)))]
    return render_grid([(title, samples)] if samples else [], dataset.root, count, scale)


def render_grid(blocks: list, root, count: int, scale: int | None) -> np.ndarray:
    """blocks: (title, samples) per domain -> the preview canvas (tiles sized by the first sample)."""
    if not blocks:
        raise DataError(f"{root}: no frames to preview")
    height, width = blocks[0][1][0].size
    scale = scale or max(1, round(512 / width))
    th, tw = height * scale, width * scale
    label_w, pad = 110, 3
    rows = 3 * len(blocks)
    canvas = Image.new("RGB", (label_w + count * (tw + pad), rows * (th + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for b, (title, samples) in enumerate(blocks):
        for r, what in enumerate(("image", "labels", "boxes")):
            y = (3 * b + r) * (th + pad)
            draw.text((2, y + th // 2 - 6), f"{title}: {what}", fill=(0, 0, 0), font=font)
            for k, sample in enumerate(samples):
                if sample.size != (height, width):
                    continue
                if what == "image":
                    tile = Image.fromarray(sample.image).resize((tw, th), Image.NEAREST)
                elif what == "labels":
                    tile = Image.fromarray(overlay(sample.image, sample.label)).resize((tw, th), Image.NEAREST)
                else:
                    tile = draw_boxes(sample.image, sample.boxes, scale)
                canvas.paste(tile, (label_w + k * (tw + pad), y))
    return np.asarray(canvas)
