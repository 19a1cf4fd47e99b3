"""The downstream detector (semguard.detect) on tiny hand-made data and a tiny toy world."""

from __future__ import annotations

import json
import math
import socket
from collections import Counter

import numpy as np
import pytest
import torch

from semguard.cli import main
from semguard.config import config_from_dict
from semguard.data.folder import write_sample
from semguard.data.formats import open_dataset
from semguard.data.sample import Box, Sample
from semguard.data.toyworld import make_toy_world
from semguard.detect import (
    DETECTOR_CLASSES, build_detector, dataset_has_boxes, detection_scores, detection_target, evaluate_detector,
    has_boxes, load_detector, train_detector,
)
from semguard.detect.targets import hflip_target
from semguard.models import build_generator
from semguard.translate import Translator

LIGHT, SIGN, PERSON, CAR, ROAD, RIDER = 6, 7, 11, 13, 0, 12


def _frame(boxes: list[Box], size=(32, 64), seed: int = 0, name: str = "f") -> Sample:
    rng = np.random.default_rng(seed)
    return Sample(image=rng.integers(0, 256, (*size, 3), dtype=np.uint8),
                  label=rng.integers(0, 19, size, dtype=np.uint8), boxes=boxes, name=name)


def _hand_targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[2.0, 3.0, 5.0, 9.0], [20.0, 4.0, 27.0, 11.0], [40.0, 10.0, 52.0, 30.0]]),
         "labels": torch.tensor([0, 1, 3])},
        {"boxes": torch.tensor([[10.0, 5.0, 14.0, 20.0], [30.0, 12.0, 50.0, 28.0]]), "labels": torch.tensor([2, 3])},
    ]


def _perfect(targets):
    return [{**t, "scores": torch.ones(len(t["labels"]))} for t in targets]


def _nothing(targets):
    return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
            for _ in targets]


# ---------------------------------------------------------------- scoring


def test_perfect_predictions_score_one_and_none_score_zero():
    targets = _hand_targets()
    perfect = detection_scores(_perfect(targets), targets)
    assert perfect["map"] == 1.0 and perfect["map_50"] == 1.0 and perfect["map_75"] == 1.0
    assert perfect["ap_per_class"] == {"traffic light": 1.0, "traffic sign": 1.0, "person": 1.0, "car": 1.0}
    assert perfect["ap_50_per_class"] == perfect["ap_per_class"]
    assert perfect["boxes_per_class"] == {"traffic light": 1, "traffic sign": 1, "person": 1, "car": 2}
    none = detection_scores(_nothing(targets), targets)
    assert none["map"] == 0.0 and none["map_50"] == 0.0
    assert set(none["ap_per_class"].values()) == {0.0}


def test_a_class_without_boxes_has_no_ap_and_a_set_without_boxes_no_score():
    targets = [{"boxes": torch.tensor([[2.0, 3.0, 5.0, 9.0]]), "labels": torch.tensor([0])}]
    scores = detection_scores(_perfect(targets), targets)
    assert scores["map"] == 1.0 and scores["ap_per_class"]["traffic light"] == 1.0
    assert scores["ap_per_class"]["car"] is None and scores["boxes_per_class"]["car"] == 0
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    assert detection_scores(_nothing(empty), empty)["map"] is None


class _Replay(torch.nn.Module):
    """A stand-in detector that answers each frame with a prepared prediction, in order."""

    def __init__(self, predictions):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.predictions = list(predictions)

    def forward(self, images):
        return [self.predictions.pop(0) for _ in images]


def test_evaluate_detector_scores_perfect_and_empty_predictions_through_samples():
    frames = [_frame([Box((2.0, 3.0, 5.0, 9.0), LIGHT), Box((20.0, 4.0, 27.0, 11.0), SIGN),
                      Box((40.0, 10.0, 52.0, 30.0), CAR), Box((0.0, 20.0, 64.0, 32.0), ROAD)], seed=1),
              _frame([Box((10.0, 5.0, 14.0, 20.0), PERSON), Box((30.0, 12.0, 50.0, 28.0), CAR)], seed=2)]
    targets = [detection_target(frame) for frame in frames]
    report = evaluate_detector(_Replay(_perfect(targets)), frames, batch_size=1)
    assert report["images"] == 2 and report["map"] == 1.0 and report["map_50"] == 1.0
    assert report["boxes_per_class"] == {"traffic light": 1, "traffic sign": 1, "person": 1, "car": 2}
    assert evaluate_detector(_Replay(_nothing(targets)), frames)["map"] == 0.0
    # the 3x6 light found a pixel low: IoU 15/21 = 0.71 passes the IoU thresholds 0.50 ... 0.70, 5 of 10
    shifted = _perfect(targets)
    shifted[0]["boxes"] = shifted[0]["boxes"].clone()
    shifted[0]["boxes"][0] += torch.tensor([0.0, 1.0, 0.0, 1.0])
    report = evaluate_detector(_Replay(shifted), frames)
    assert report["ap_50_per_class"]["traffic light"] == 1.0 and report["ap_per_class"]["traffic light"] == 0.5
    assert report["ap_per_class"]["car"] == 1.0 and report["map"] == pytest.approx((0.5 + 3) / 4)


# ---------------------------------------------------------------- the adapter


def test_adapter_keeps_detector_classes_and_handles_degenerate_boxes():
    boxes = [
        Box((1.0, 2.0, 4.0, 8.0), LIGHT, 0, {"state": "red"}),
        Box((10.0, 2.0, 17.0, 9.0), SIGN),
        Box((20.0, 5.0, 23.0, 20.0), PERSON, 4),
        Box((30.0, 10.0, 50.0, 25.0), CAR, 7),
        Box((0.0, 20.0, 64.0, 32.0), ROAD),            # not a detector class: left out, not counted
        Box((5.0, 5.0, 9.0, 15.0), RIDER),             # idem
        Box((60.0, 20.0, 66.0, 33.0), CAR),            # past the frame: clipped to [60, 20, 64, 32]
        Box((12.0, 12.0, 12.0, 18.0), CAR),            # empty
        Box((30.0, 9.0, 25.0, 3.0), PERSON),           # inverted
        Box((63.5, 0.0, 70.0, 4.0), SIGN),             # half a pixel inside the frame after clipping
        Box((float("nan"), 0.0, 3.0, 3.0), LIGHT),     # non-finite
    ]
    dropped = Counter()
    target = detection_target(_frame(boxes), dropped=dropped)
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    assert target["labels"].tolist() == [0, 1, 2, 3, 3]
    assert [DETECTOR_CLASSES[k] for k in target["labels"].tolist()] == [LIGHT, SIGN, PERSON, CAR, CAR]
    assert target["boxes"].tolist() == [[1, 2, 4, 8], [10, 2, 17, 9], [20, 5, 23, 20], [30, 10, 50, 25],
                                        [60, 20, 64, 32]]
    assert dropped == Counter({"car": 1, "person": 1, "traffic sign": 1, "traffic light": 1})
    empty = detection_target(_frame([Box((0.0, 20.0, 64.0, 32.0), ROAD)]))
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    mirrored = hflip_target(target, width=64)
    assert mirrored["boxes"][0].tolist() == [60, 2, 63, 8]
    assert torch.equal(hflip_target(mirrored, 64)["boxes"], target["boxes"])


def test_boxes_are_carried_through_translation_unchanged():
    config = config_from_dict({"model": {"generator": "spade", "base_channels": 4, "n_blocks": 1, "n_downsample": 1}})
    torch.manual_seed(0)
    generator, spec = build_generator(config.model)
    translator = Translator(generator, spec, device="cpu", tile=None)
    source = _frame([Box((2.0, 3.0, 5.0, 9.0), LIGHT, 0, {"state": "green"}), Box((20.0, 4.0, 27.0, 11.0), SIGN),
                     Box((10.0, 5.0, 14.0, 20.0), PERSON, 2), Box((30.0, 12.0, 50.0, 28.0), CAR, 3),
                     Box((0.0, 20.0, 64.0, 32.0), ROAD)], seed=3)
    translated = translator.translate_sample(source)
    assert not np.array_equal(translated.image, source.image)
    assert translated.boxes == source.boxes
    before, after = detection_target(source), detection_target(translated)
    assert torch.equal(before["boxes"], after["boxes"]) and torch.equal(before["labels"], after["labels"])


# ---------------------------------------------------------------- sets without boxes


def test_a_set_without_boxes_is_refused_in_one_line(tmp_path, capsys):
    bare = [_frame([], seed=k, name=f"f{k}") for k in range(3)]
    usable, reason = has_boxes(bare, what="sim/train")
    assert not usable and "\n" not in reason
    assert reason.startswith("sim/train has no boxes of traffic light, traffic sign, person, car in its 3 frames")
    road_only = [_frame([Box((0.0, 20.0, 64.0, 32.0), ROAD)], name="r")]
    usable, reason = has_boxes(road_only, what="x")
    assert not usable and "only boxes of road" in reason
    assert has_boxes([*bare, _frame([Box((1.0, 1.0, 4.0, 7.0), LIGHT)], name="l")]) == (True, "")
    assert not has_boxes([])[0]

    root = tmp_path / "bare"
    for sample in bare:
        write_sample(root, sample)
    usable, reason = dataset_has_boxes(root, "folder")
    assert not usable and reason.startswith(f"{root} has no boxes of traffic light")
    code = main(["detector", "train", "--data", str(root), "--out", str(tmp_path / "d.pt"), "--steps", "2",
                 "--threads", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "has no boxes of traffic light" in err and "Traceback" not in err
    assert len([line for line in err.strip().splitlines() if line.strip()]) <= 2  # one message (rich may wrap it)
    assert not (tmp_path / "d.pt").exists()


# ---------------------------------------------------------------- the model and training


def test_detector_builds_without_any_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the detector tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    for backbone in ("tiny", "resnet18"):
        model = build_detector(num_classes=4, size=(32, 64), backbone=backbone,
                               channels=(16, 32, 64, 128) if backbone == "tiny" else (128, 256, 512),
                               fpn_channels=32).eval()
        with torch.no_grad():
            out = model([torch.rand(3, 32, 64)])
        assert out[0]["boxes"].shape[1] == 4


def test_cell_centre_points_reach_boxes_smaller_than_a_stride():
    model = build_detector(num_classes=4, size=(32, 64))
    images, _ = model.transform([torch.rand(3, 32, 64)])
    features = list(model.backbone(images.tensors).values())
    points = model.anchor_generator(images, features)[0]
    centres = (points[:, :2] + points[:, 2:]) / 2
    # the finest level (stride 2) has its points at cell centres 1, 3, 5, ... px
    assert centres[0].tolist() == [1.0, 1.0] and centres[1].tolist() == [3.0, 1.0]
    box = torch.tensor([4.0, 4.0, 7.0, 10.0])  # a 3x6 traffic light between two corners of the grid
    inside = (centres[:, 0] > box[0]) & (centres[:, 0] < box[2]) & (centres[:, 1] > box[1]) & (centres[:, 1] < box[3])
    assert inside.any()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    make_toy_world(root, train=8, val=4, size=(32, 64), seed=0, judge=0)
    return root


def test_training_is_deterministic_for_a_seed(toy):
    frames = open_dataset(toy / "real" / "train", "folder")
    first, metrics = train_detector(frames, steps=3, batch_size=2, seed=5)
    second, _ = train_detector(frames, steps=3, batch_size=2, seed=5)
    other, _ = train_detector(frames, steps=3, batch_size=2, seed=6)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in first.state_dict().items())
    assert metrics["steps"] == 3 and math.isfinite(metrics["train_loss"])
    assert set(metrics["losses"]) == {"classification", "bbox_regression", "bbox_ctrness"}


def test_cli_trains_a_checkpoint_that_eval_reads(toy, tmp_path, capsys):
    checkpoint, report_path = tmp_path / "detector.pt", tmp_path / "report.json"
    assert main(["detector", "train", "--data", str(toy / "real" / "train"), "--val", str(toy / "real" / "val"),
                 "--out", str(checkpoint), "--steps", "5", "--batch-size", "4", "--seed", "1", "--threads", "1",
                 "--quiet"]) == 0
    model, metadata = load_detector(checkpoint)
    assert metadata["kind"] == "detector" and metadata["role"] == "downstream" and metadata["step"] == 5
    assert metadata["build"]["size"] == [32, 64] and metadata["class_ids"] == list(DETECTOR_CLASSES)
    assert metadata["training"]["seed"] == 1 and metadata["data"]["count"] == 8
    assert set(metadata["metrics"]["val"]["ap_per_class"]) == {"traffic light", "traffic sign", "person", "car"}
    again, _ = train_detector(open_dataset(toy / "real" / "train", "folder"), steps=5, batch_size=4, seed=1)
    for key, value in again.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key

    assert main(["detector", "eval", "--checkpoint", str(checkpoint), "--data", str(toy / "real" / "val"),
                 "--out", str(report_path), "--threads", "1"]) == 0
    report = json.loads(report_path.read_text())
    assert report["images"] == 4 and 0.0 <= report["map"] <= 1.0 and 0.0 <= report["map_50"] <= 1.0
    assert sum(report["boxes_per_class"].values()) > 0
    assert report["protocol"]["checkpoint_sha256"] and report["protocol"]["frame_size"] == [32, 64]
    assert report["protocol"]["training"]["steps"] == 5
    assert "mAP" in capsys.readouterr().out


def test_cli_refuses_another_kind_of_checkpoint(toy, tmp_path, capsys):
    fake = tmp_path / "segmenter.pt"
    torch.save({"kind": "segmenter", "state_dict": {}}, fake)
    assert main(["detector", "eval", "--checkpoint", str(fake), "--data", str(toy / "real" / "val")]) == 2
    assert "expected a 'detector' checkpoint" in capsys.readouterr().err
