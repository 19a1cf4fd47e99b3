"""The toy world keeps its promises: deterministic bytes, consistent labels/instances/boxes,
a semantic gap of the stated size, readable lamp states, paired truth, and working CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semguard.cli import main
from semguard.data.folder import FolderDataset, read_dataset_info
from semguard.data.toyworld import (
    LIGHT_STATES, PICTOGRAMS, VAL_INDEX_BASE, ToyWorldDataset, make_toy_world, render_sample,
)
from semguard.data.toyworld.materials import REAL_PALETTE, SIM_PALETTE, M
from semguard.labels import BOX_CLASSES, NAME_TO_TRAIN_ID

SMALL = (32, 64)
SKY, VEGETATION, ROAD, CAR = (NAME_TO_TRAIN_ID[n] for n in ("sky", "vegetation", "road", "car"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_is_deterministic_and_well_formed():
    a = render_sample(3, 7, "real", "real", SMALL)
    b = render_sample(3, 7, "real", "real", SMALL)
    assert a.image.tobytes() == b.image.tobytes() and a.boxes == b.boxes
    assert a.image.shape == (32, 64, 3) and a.image.dtype == np.uint8
    assert a.label.dtype == np.uint8 and a.instances.dtype == np.int32
    assert a.name == "000007"
    a.validate()
    other = render_sample(3, 8, "real", "real", SMALL)
    assert other.label.tobytes() != a.label.tobytes()


def test_worker_count_does_not_change_the_bytes(tmp_path):
    make_toy_world(tmp_path / "one", train=3, val=2, size=SMALL, seed=5, workers=1)
    make_toy_world(tmp_path / "two", train=3, val=2, size=SMALL, seed=5, workers=2)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    # sim, real, paired: 3 train + 2 val each; judge/train: 3 real + 3 paired layouts (judge defaults to train)
    assert len(one) == (3 * 3 + 3 * 2 + 2 * 3) * 4 + 7   # 21 frames x 4 files + 7 dataset.json
    assert one == two
    info = read_dataset_info(tmp_path / "one" / "paired" / "val")
    assert info["layout"] == "sim" and info["style"] == "real" and info["index_base"] == VAL_INDEX_BASE
    assert info["size"] == [32, 64] and info["gap"] == 1.0 and info["seed"] == 5


def test_boxes_are_tight_around_visible_instance_pixels():
    seen = set()
    for index in range(24):
        for layout in ("sim", "real"):
            sample = render_sample(1, index, layout, "sim", (64, 128))
            ids = set(np.unique(sample.instances).tolist()) - {0}
            assert ids == {box.instance_id for box in sample.boxes}, "every visible instance has exactly one box"
            assert set(np.unique(sample.label[sample.instances > 0]).tolist()) <= set(BOX_CLASSES)
            for box in sample.boxes:
                seen.add(box.class_id)
                mine = sample.instances == box.instance_id
                rows, cols = np.flatnonzero(mine.any(1)), np.flatnonzero(mine.any(0))
                assert box.xyxy == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
                assert (sample.label[mine] == box.class_id).all()
                if box.class_id == 6:
                    assert box.attributes["state"] in LIGHT_STATES
                if box.class_id == 7:
                    assert box.attributes["pictogram"] in PICTOGRAMS
    assert seen == set(BOX_CLASSES)


def _shares(layout: str, gap: float, count: int = 200) -> np.ndarray:
    counts = np.zeros(19)
    for index in range(count):
        counts += np.bincount(render_sample(0, index, layout, "sim", (64, 128), gap).label.ravel(), minlength=19)[:19]
    return counts / counts.sum()


def test_semantic_gap_has_the_stated_size():
    sim, real = _shares("sim", 1.0), _shares("real", 1.0)
    assert sim[SKY] >= 2 * real[SKY]
    assert 0.3 < sim[SKY] < 0.5 and 0.05 < real[SKY] < 0.16
    assert real[VEGETATION] > 0.08 > 0.03 > sim[VEGETATION]
    assert real[NAME_TO_TRAIN_ID["building"]] > 4 * sim[NAME_TO_TRAIN_ID["building"]]
    assert sim[ROAD] > real[ROAD] and real[CAR] > 3 * sim[CAR]
    # gap 0: both domains share the sim prior
    flat = _shares("real", 0.0, count=60)
    assert abs(flat[SKY] - _shares("sim", 0.0, count=60)[SKY]) < 0.08


def test_lit_lamp_colour_is_in_its_box():
    lamp = {state: M[f"lamp_{state}"] for state in LIGHT_STATES}
    checked = 0
    for index in range(12):
        for style, palette in (("sim", SIM_PALETTE), ("real", REAL_PALETTE)):
            sample = render_sample(2, index, "sim", style, (64, 128))
            for box in (b for b in sample.boxes if b.class_id == 6):
                x1, y1, x2, y2 = (int(v) for v in box.xyxy)
                pixels = sample.image[y1:y2, x1:x2].reshape(-1, 3).astype(float)
                distance = {s: np.linalg.norm(pixels - palette[m].astype(float), axis=1).min() for s, m in lamp.items()}
                state = box.attributes["state"]
                if style == "sim":
                    assert distance[state] == 0
                assert distance[state] < 60 and distance[state] == min(distance.values())
                checked += 1
    assert checked >= 20


def test_sign_pictogram_colours_are_in_their_box():
    face = {"arrow_left": "sign_blue", "arrow_right": "sign_blue", "stop": "sign_red", "warning": "sign_black",
            "yield": "sign_red"}
    checked = 0
    for index in range(16):
        sample = render_sample(2, index, "sim", "sim", (64, 128))
        for box in (b for b in sample.boxes if b.class_id == 7):
            x1, y1, x2, y2 = (int(v) for v in box.xyxy)
            pixels = sample.image[y1:y2, x1:x2].reshape(-1, 3)
            for colour in (face[box.attributes["pictogram"]], "sign_white"):
                assert (pixels == SIM_PALETTE[M[colour]]).all(axis=1).any(), (index, box)
            assert min(x2 - x1, y2 - y1) >= 6   # 7 px plates; a shape may leave an edge row empty
            checked += 1
    assert checked >= 8


def test_paired_truth_shares_the_sim_labels():
    for index in (0, 1, VAL_INDEX_BASE):
        sim = render_sample(4, index, "sim", "sim", SMALL)
        paired = render_sample(4, index, "sim", "real", SMALL)
        assert np.array_equal(sim.label, paired.label) and np.array_equal(sim.instances, paired.instances)
        assert sim.boxes == paired.boxes
        assert not np.array_equal(sim.image, paired.image)


def test_styles_differ_flat_versus_textured():
    sim = render_sample(0, 0, "sim", "sim", (64, 128))
    real = render_sample(0, 0, "sim", "real", (64, 128))
    road = sim.label == ROAD
    colours = lambda im: len(np.unique(im[road], axis=0))  # noqa: E731
    assert colours(sim.image) <= 2 < 100 < colours(real.image)   # flat asphalt + lane paint vs grain
    saturation = lambda im: (im.max(-1).astype(float) - im.min(-1)).mean()  # noqa: E731
    assert saturation(sim.image) > saturation(real.image)


def test_in_memory_dataset_matches_disk(tmp_path):
    make_toy_world(tmp_path, train=2, val=2, size=SMALL, seed=1)
    disk = FolderDataset(tmp_path / "real" / "val")
    memory = ToyWorldDataset(2, split="val", layout="real", size=SMALL, seed=1)
    assert len(disk) == len(memory) == 2
    assert np.array_equal(disk[1].image, memory[1].image) and disk[1].name == memory[1].name
    assert disk[1].boxes == memory[1].boxes


def test_cli_make_toy_stats_preview(tmp_path, capsys):
    out = tmp_path / "toy"
    assert main(["data", "make-toy", "--out", str(out), "--train", "2", "--val", "1", "--size", "32x64"]) == 0
    assert len(list((out / "paired" / "val" / "images").glob("*.png"))) == 1
    assert main(["data", "stats", str(out)]) == 0
    assert (out / "stats.png").stat().st_size > 0
    text = capsys.readouterr().out
    assert "sky" in text and "sim" in text and "real" in text
    assert main(["data", "preview", str(out), "--out", str(tmp_path / "grid.png"), "--n", "2"]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    # refuses to overwrite without --overwrite; bad sizes are one clear error
    assert main(["data", "make-toy", "--out", str(out), "--train", "1", "--val", "1", "--size", "32x64"]) == 2
    assert main(["data", "make-toy", "--out", str(tmp_path / "bad"), "--size", "128by256"]) == 2
    assert "HxW" in capsys.readouterr().err
    assert main(["data", "stats", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("size", [(16, 64), (64, 8)])
def test_too_small_frames_are_refused(size):
    with pytest.raises(ValueError, match="at least"):
        render_sample(0, 0, size=size)


def test_arrows_swap_under_horizontal_flip_and_pictograms_differ():
    from semguard.data.toyworld.raster import _sign_material

    centres = (np.arange(12) + 0.5) / 12 * 2 - 1
    u, v = centres[None, :], centres[:, None]
    face = {p: _sign_material(p, u, v) for p in PICTOGRAMS}
    assert np.array_equal(face["arrow_left"][:, ::-1], face["arrow_right"])
    for symmetric in ("stop", "warning", "yield"):
        assert np.array_equal(face[symmetric][:, ::-1], face[symmetric])
    assert len({f.tobytes() for f in face.values()}) == len(PICTOGRAMS)
