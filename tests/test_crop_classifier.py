"""Crop classifier: reads light states and sign pictograms off synthetic box crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semguard.data.batch import image_to_tensor
from semguard.data.sample import Box, Sample
from semguard.errors import DataError, SemguardError
from semguard.models.crop_classifier import classify_boxes, extract_crops
from semguard.train.crop_classifier import collect_tasks, evaluate_crop_classifier, train_crop_classifier
from semguard.checkpoints import load_crop_classifier

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest single-threaded on a shared machine; restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


LAMPS = {"red": ((230, 30, 30), 0), "amber": ((240, 170, 20), 1), "green": ((30, 220, 60), 2)}
PICTOGRAMS = ("arrow_left", "arrow_right", "stop")


def _draw_light(image, x, y, state):
    colour, slot = LAMPS[state]
    image[y: y + 12, x: x + 6] = (25, 25, 25)
    image[y + 1 + 4 * slot: y + 3 + 4 * slot, x + 2: x + 4] = colour
    return Box((x, y, x + 6, y + 12), 6, attributes={"state": state})


def _draw_sign(image, x, y, pictogram):
    image[y: y + 10, x: x + 10] = (240, 240, 240)
    if pictogram == "stop":
        image[y + 2: y + 8, x + 2: x + 8] = (200, 20, 20)
    else:
        for row in range(7):  # a triangle pointing left or right
            half = min(row, 6 - row)
            cols = range(x + 2, x + 3 + half) if pictogram == "arrow_right" else range(x + 8 - half, x + 9)
            for col in cols:
                image[y + 2 + row, col] = (20, 20, 160)
    return Box((x, y, x + 10, y + 10), 7, attributes={"pictogram": pictogram})


def synthetic_frames(count: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        image = np.full((32, 64, 3), 110, np.uint8)
        boxes = [
            _draw_light(image, int(rng.integers(0, 10)), int(rng.integers(0, 20)), str(rng.choice(list(LAMPS)))),
            _draw_light(image, int(rng.integers(12, 22)), int(rng.integers(0, 20)), str(rng.choice(list(LAMPS)))),
            _draw_sign(image, int(rng.integers(24, 38)), int(rng.integers(0, 22)), str(rng.choice(PICTOGRAMS))),
            _draw_sign(image, int(rng.integers(40, 54)), int(rng.integers(0, 22)), str(rng.choice(PICTOGRAMS))),
            Box((0, 28, 20, 32), 13),  # a car: no attribute to read
        ]
        noise = rng.integers(-8, 9, size=image.shape)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        frames.append(Sample(image=image, label=np.zeros((32, 64), np.uint8), boxes=boxes, name=f"f{index}"))
    return frames


def test_collect_tasks_reads_attribute_names_from_the_boxes():
    tasks = collect_tasks(synthetic_frames(12, seed=0))
    assert [(t["class_id"], t["attribute"]) for t in tasks] == [(6, "state"), (7, "pictogram")]
    assert tasks[0]["values"] == ["amber", "green", "red"]
    assert tasks[1]["values"] == sorted(PICTOGRAMS)


def test_extract_crops_resamples_the_box_with_margin():
    image = torch.zeros(3, 12, 12)
    image[:, 4:8, 4:8] = 1.0  # the half-open box (4, 4, 8, 8)
    # 2x2 samples per output pixel at pixel centres: an exact 2x downsampling
    crops = extract_crops(image, torch.tensor([[4.0, 4.0, 8.0, 8.0]]), crop_size=2, margin=0.0)
    assert crops.shape == (1, 3, 2, 2)
    assert torch.allclose(crops, torch.ones_like(crops))
    grown = extract_crops(image, torch.tensor([[4.0, 4.0, 8.0, 8.0]]), crop_size=4, margin=0.5)  # (2,2,10,10)
    expected = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.allclose(grown[0, 0], expected)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("crops") / "crops.pt"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, metrics = train_crop_classifier(
            synthetic_frames(40, seed=1), synthetic_frames(12, seed=2), epochs=12, batch_size=64, lr=4e-3,
            crop_size=16, channels=8, jitter_copies=2, seed=0, out_path=out, progress=False,
        )
    finally:
        torch.set_num_threads(before)
    return model, metrics, out


def test_crop_classifier_learns_synthetic_lights_and_signs(trained):
    _, metrics, _ = trained
    accuracy = metrics["val"]["accuracy"]
    # chance is 1/3 for both tasks
    assert accuracy["traffic_light.state"] > 0.9, metrics["val"]
    assert accuracy["traffic_sign.pictogram"] > 0.8, metrics["val"]
    assert metrics["val"]["counts"]["traffic_light.state"] == 24


def test_classify_boxes_and_save_load_round_trip(trained):
    model, metrics, path = trained
    loaded, metadata = load_crop_classifier(path)
    assert metadata["kind"] == "crop_classifier" and metadata["build"]["tasks"][0]["values"] == ["amber", "green", "red"]
    frames = synthetic_frames(6, seed=3)
    crops = torch.rand(5, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        for a, b in zip(model(crops), loaded(crops)):
            assert torch.equal(a, b)
    right = total = 0
    for frame in frames:
        predicted = classify_boxes(loaded, image_to_tensor(frame.image), frame.boxes)
        assert predicted[-1] is None  # the car
        for box, guess in zip(frame.boxes[:-1], predicted[:-1]):
            assert set(guess) == set(box.attributes)
            right += guess == box.attributes
            total += 1
    assert right / total > 0.8
    assert evaluate_crop_classifier(loaded, frames)["overall"] == pytest.approx(right / total)


def test_held_out_split_without_a_validation_set():
    frames = synthetic_frames(10, seed=4)
    _, metrics = train_crop_classifier(frames, None, epochs=1, batch_size=32, crop_size=12, channels=4,
                                       jitter_copies=0, val_fraction=0.2, progress=False)
    assert metrics["val"]["crops"] == 2 * 4 and metrics["train_crops"] == 8 * 4
    assert "held out" in metrics["val_source"]


def test_no_attributed_boxes_is_a_clear_error(tmp_path):
    frame = Sample(image=np.zeros((8, 8, 3), np.uint8), label=np.zeros((8, 8), np.uint8),
                   boxes=[Box((0, 0, 4, 4), 13)])
    with pytest.raises(DataError, match="no traffic light, traffic sign boxes with attributes"):
        train_crop_classifier([frame], epochs=1, progress=False)
    from semguard.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "seg.pt", {"kind": "segmenter"})
    with pytest.raises(SemguardError, match="not a crop classifier"):
        load_crop_classifier(tmp_path / "seg.pt")


def test_cli_train_crops_reports_held_out_accuracy(tmp_path, capsys):
    from semguard.cli import main
    from semguard.data.folder import write_sample

    root = tmp_path / "data"
    for frame in synthetic_frames(5, seed=5):
        write_sample(root, frame)
    out = tmp_path / "crops.pt"
    code = main(["segmenter", "train-crops", "--data", str(root), "--out", str(out), "--epochs", "1",
                 "--crop-size", "12", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "traffic_light.state: accuracy" in printed and "held out" in printed
    model, _ = load_crop_classifier(out)
    assert model.crop_size == 12
