"""Paired transforms keep image, labels, instances and boxes aligned and honest."""

from __future__ import annotations

import numpy as np
import pytest

from semguard.data.sample import Box, Sample
from semguard.data.transforms import PairedTransform, swap_left_right

H, W = 48, 64


def scene(seed: int = 0) -> Sample:
    """Stuff classes plus instances (sign, light, car, person) with boxes from their pixels."""
    rng = np.random.default_rng(seed)
    label = np.zeros((H, W), np.uint8)
    label[: H // 3] = 10
    label[H // 3: H // 2, :] = 2
    label[:, :3] = 255
    instances = np.zeros((H, W), np.int32)
    boxes = []
    specs = [(7, {"pictogram": "arrow_left"}), (7, {"pictogram": "stop"}), (6, {"state": "red"}),
             (13, {}), (11, {}), (7, {"pictogram": "keep_right"})]
    for k, (class_id, attributes) in enumerate(specs, start=1):
        h, w = int(rng.integers(3, 10)), int(rng.integers(3, 12))
        y, x = int(rng.integers(0, H - h)), int(rng.integers(0, W - w))
        mask = np.zeros((H, W), bool)
        mask[y:y + h, x:x + w] = True
        mask[y, x] = False  # not a perfect rectangle
        label[mask], instances[mask] = class_id, k
    for k, (class_id, attributes) in enumerate(specs, start=1):
        ys, xs = np.nonzero(instances == k)
        if ys.size:
            boxes.append(Box((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), class_id, k, dict(attributes)))
    # a box without an instance (e.g. from a box file)
    boxes.append(Box((10.5, 20.0, 30.0, 40.0), 13, 0))
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return Sample(image, label, instances, boxes, name=f"s{seed}")


def check_consistent(sample: Sample, allowed_ids: set[int]):
    sample.validate()
    assert set(np.unique(sample.label).tolist()) <= allowed_ids          # no interpolated ids
    for box in sample.boxes:
        x1, y1, x2, y2 = box.xyxy
        assert 0 <= x1 < x2 <= sample.size[1] and 0 <= y1 < y2 <= sample.size[0]
        if box.instance_id:
            ys, xs = np.nonzero(sample.instances == box.instance_id)
            assert ys.size, "box kept for an instance that left the frame"
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
            assert set(np.unique(sample.label[ys, xs]).tolist()) == {box.class_id}
    # every instance still in the frame has its box (unless tiny)
    kept = {b.instance_id for b in sample.boxes}
    for instance_id in set(np.unique(sample.instances).tolist()) - {0} - kept:
        ys, xs = np.nonzero(sample.instances == instance_id)
        assert xs.max() + 1 - xs.min() < 2 or ys.max() + 1 - ys.min() < 2


@pytest.mark.parametrize("seed", range(6))
def test_random_crops_flips_resizes_keep_boxes_on_instances(seed):
    sample = scene(seed)
    allowed = set(np.unique(sample.label).tolist())
    transform = PairedTransform(crop=(24, 32), resize=(40, 72), hflip=True, small_box_crop_prob=0.5,
                                color_jitter=0.3)
    rng = np.random.default_rng(seed)
    for _ in range(8):
        out = transform(sample, rng)
        assert out.image.shape == (24, 32, 3) and out.image.dtype == np.uint8
        assert out.label.shape == out.instances.shape == (24, 32)
        check_consistent(out, allowed)


def test_flip_swaps_directions_and_mirrors_pixels():
    sample = scene(1)
    transform = PairedTransform(hflip=True)
    flipped = None
    for seed in range(20):
        out = transform(sample, np.random.default_rng(seed))
        if not np.array_equal(out.label, sample.label):
            flipped = out
            break
    assert flipped is not None
    np.testing.assert_array_equal(flipped.label, sample.label[:, ::-1])
    np.testing.assert_array_equal(flipped.image, sample.image[:, ::-1])
    before = {b.instance_id: b for b in sample.boxes if b.instance_id}
    for box in flipped.boxes:
        if box.instance_id:
            original = before[box.instance_id]
            assert box.xyxy == (W - original.xyxy[2], original.xyxy[1], W - original.xyxy[0], original.xyxy[3])
            pictogram = original.attributes.get("pictogram")
            if pictogram:
                assert box.attributes["pictogram"] == swap_left_right(pictogram)
    pictograms = sorted(b.attributes["pictogram"] for b in flipped.boxes if "pictogram" in b.attributes)
    assert "arrow_right" in pictograms and "keep_left" in pictograms and "stop" in pictograms
    check_consistent(flipped, set(np.unique(sample.label).tolist()))


def test_unflippable_values_prevent_the_flip():
    sample = scene(1)
    transform = PairedTransform(hflip=True, unflippable=("stop",))
    for seed in range(10):
        out = transform(sample, np.random.default_rng(seed))
        np.testing.assert_array_equal(out.label, sample.label)


def test_swap_left_right_words_only():
    assert swap_left_right("arrow_left") == "arrow_right"
    assert swap_left_right("keep_right") == "keep_left"
    assert swap_left_right("leftover") == "leftover" and swap_left_right("stop") == "stop"


def test_small_box_crops_contain_small_boxes_more_often():
    sample = scene(2)
    small = [b for b in sample.boxes if b.class_id in (6, 7)]

    def share(prob: float) -> float:
        transform = PairedTransform(crop=(12, 16), small_box_crop_prob=prob)
        rng = np.random.default_rng(0)
        hits = sum(any(b.class_id in (6, 7) for b in transform(sample, rng).boxes) for _ in range(60))
        return hits / 60

    assert small
    assert share(1.0) > 0.9 and share(1.0) > share(0.0)


def test_colour_jitter_touches_the_image_only_and_pad():
    sample = scene(3)
    out = PairedTransform(crop=(H + 8, W + 4), color_jitter=0.5)(sample, np.random.default_rng(0))
    assert out.size == (H + 8, W + 4)
    np.testing.assert_array_equal(out.label[:H, :W], sample.label)
    assert (out.label[H:] == 255).all() and (out.instances[H:] == 0).all()
    assert not np.array_equal(out.image[:H, :W], sample.image)


def test_same_seed_same_result():
    sample = scene(4)
    transform = PairedTransform(crop=(24, 32), hflip=True, small_box_crop_prob=0.5, color_jitter=0.2)
    a = transform(sample, np.random.default_rng(7))
    b = transform(sample, np.random.default_rng(7))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.boxes == b.boxes


def test_boxes_without_instance_map_are_clipped_and_tiny_ones_dropped():
    image = np.zeros((H, W, 3), np.uint8)
    label = np.zeros((H, W), np.uint8)
    boxes = [Box((0.0, 0.0, 40.0, 30.0), 13), Box((30.0, 10.0, 33.0, 14.0), 6, attributes={"state": "green"})]
    sample = Sample(image, label, None, boxes)
    transform = PairedTransform(crop=(20, 32), min_box_size=2.0)
    out = transform(sample, np.random.default_rng(0))
    # find the window the transform chose from where the big box landed
    rng = np.random.default_rng(0)
    y0, x0 = transform.choose_crop(sample, rng)
    expected = []
    for box in boxes:
        x1, y1 = max(box.xyxy[0] - x0, 0), max(box.xyxy[1] - y0, 0)
        x2, y2 = min(box.xyxy[2] - x0, 32), min(box.xyxy[3] - y0, 20)
        if x2 - x1 >= 2 and y2 - y1 >= 2:
            expected.append((x1, y1, x2, y2))
    assert len(out.boxes) == len(expected)
    np.testing.assert_allclose([b.xyxy for b in out.boxes], expected, atol=1e-3)
    assert out.instances is None
