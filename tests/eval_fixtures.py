"""Tiny on-disk fixtures for the eval tests: a 32x64 toy-like world, a judge, a crop classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semguard.data.folder import write_dataset_info, write_sample
from semguard.data.sample import Box, Sample

SIZE = (32, 64)
STATES = ("red", "green")


def frame(index: int, style: str, sky_rows: int = 12) -> Sample:
    """Sky over building over road, a traffic light box and a car box; `style` changes colours only."""
    height, width = SIZE
    rng = np.random.default_rng(index)
    label = np.zeros(SIZE, dtype=np.uint8)            # road
    label[:sky_rows] = 10                             # sky
    label[sky_rows:20] = 2                            # building
    label[0, 0] = 255                                 # an ignore pixel
    left = 4 + 3 * (index % 8)
    label[6:12, left:left + 3] = 6                    # traffic light
    label[22:28, 40:52] = 13                          # car
    state = STATES[index % 2]
    palette = {0: (90, 90, 90), 10: (120, 170, 230), 2: (150, 80, 60), 6: (30, 30, 30), 13: (20, 20, 160)}
    if style == "real":
        palette = {k: tuple(min(255, c + 20) for c in v) for k, v in palette.items()}
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for class_id, colour in palette.items():
        image[label == class_id] = colour
    image[label == 255] = palette[10]
    image[7:9, left:left + 3] = (255, 0, 0) if state == "red" else (0, 255, 0)
    noise = rng.integers(0, 8, size=image.shape, dtype=np.uint8)
    image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    boxes = [Box((left, 6, left + 3, 12), 6, 1, {"state": state}), Box((40, 22, 52, 28), 13, 2, {})]
    instances = np.zeros(SIZE, dtype=np.int32)
    instances[6:12, left:left + 3] = 1
    instances[22:28, 40:52] = 2
    return Sample(image=image, label=label, instances=instances, boxes=boxes, name=f"frame_{index:03d}")


def make_world(root: Path, count: int = 6) -> Path:
    """ROOT/sim/val, ROOT/real/val, ROOT/paired/val (same names as sim/val) and ROOT/translated."""
    for split, style, offset in (("sim/val", "sim", 0), ("real/val", "real", 100), ("paired/val", "real", 0),
                                 ("translated", "real", 0)):
        for index in range(count):
            sample = frame(index + offset, style, sky_rows=12 if split != "real/val" else 8)
            write_sample(root / split, sample)
        write_dataset_info(root / split, domain=style, seed=7)
    return root


def make_judge(path: Path) -> Path:
    """A tiny untrained judge in the segmenter checkpoint format."""
    import torch

    from semguard.models.segmenter import build_segmenter
    from semguard.checkpoints import save_segmenter

    torch.manual_seed(0)
    model = build_segmenter(arch="unet", encoder="mobilenet_v2", encoder_depth=3, decoder_channels=(8, 8, 8))
    save_segmenter(path, model.eval(), role="judge", metrics={"val": {"miou": 0.0}}, data={"root": "fixture"})
    return path


def make_guide(path: Path) -> Path:
    import torch

    from semguard.models.segmenter import build_segmenter
    from semguard.checkpoints import save_segmenter

    torch.manual_seed(0)
    model = build_segmenter(arch="unet", encoder="mobilenet_v2", encoder_depth=3, decoder_channels=(8, 8, 8))
    save_segmenter(path, model.eval(), role="guide")
    return path


def make_crop_classifier(path: Path) -> Path:
    import torch

    from semguard.models.crop_classifier import CropClassifier
    from semguard.checkpoints import save_crop_classifier

    torch.manual_seed(0)
    model = CropClassifier([{"class_id": 6, "attribute": "state", "values": list(STATES)}], crop_size=8, channels=4)
    save_crop_classifier(path, model.eval())
    return path


def make_translator(path: Path) -> Path:
    """A tiny untrained SPADE translator checkpoint in the trainer's format (enough for Translator)."""
    import dataclasses

    import torch

    from semguard.config import ModelConfig, RunConfig, TrainConfig
    from semguard.models import build_generator
    from semguard.checkpoints import save_translator

    torch.manual_seed(0)
    config = dataclasses.replace(RunConfig(), model=ModelConfig(base_channels=4, n_blocks=1, n_downsample=1),
                                 train=TrainConfig(seed=3))
    generator, _ = build_generator(config.model)
    state = {k: v.detach().clone() for k, v in generator.state_dict().items()}
    save_translator(path, config, generator, generator_ema=state, step=1)
    return path
