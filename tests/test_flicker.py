"""The flicker metric against closed forms, and `semguard eval --flicker` on a tiny clip set."""

import json

import numpy as np
import pytest

from eval_fixtures import make_judge, make_translator
from semguard.cli import main
from semguard.data.toyworld import make_toy_world
from semguard.metrics.flicker import (FlickerMetric, flip_flicker, read_flicker_report, static_mask,
                                      static_region_flicker)

H, W = 32, 64


def _moving_square_clip(frames=4, side=6):
    """Flat grey frames (label 0) with a square (label 13, colour 200) moving right 1 px per frame."""
    source = np.full((frames, H, W, 3), 90, np.uint8)
    label = np.zeros((frames, H, W), np.uint8)
    for t in range(frames):
        source[t, 10:10 + side, 5 + t:5 + t + side] = 200
        label[t, 10:10 + side, 5 + t:5 + t + side] = 13
    return source, label


def test_static_mask_is_the_unchanged_pixels_eroded_by_the_3x3_neighbourhood():
    source, label = _moving_square_clip(side=6)
    mask = static_mask(source[0], source[1], label[0], label[1])
    # the square at columns 5..10 moves to 6..11: columns 5 and 11 change on rows 10..15;
    # their 3x3 neighbourhood covers columns 4..6 and 10..12 on rows 9..16
    expected = np.ones((H, W), bool)
    expected[9:17, 4:7] = False
    expected[9:17, 10:13] = False
    assert np.array_equal(mask, expected)
    # a change in the corner: the neighbourhood is clipped at the border
    corner = source[0].copy()
    corner[0, 0] = 0
    mask = static_mask(source[0], corner, label[0], label[0])
    assert (~mask).sum() == 4 and not mask[:2, :2].any()
    with pytest.raises(ValueError, match="source_after"):
        static_mask(source[0], source[0][:, :10], label[0], label[0])


def test_a_set_has_zero_flicker_against_itself():
    source, label = _moving_square_clip()
    assert static_region_flicker(source, source, label) == 0.0
    assert flip_flicker(label.astype(np.int64), label) == 0.0


def test_known_perturbations_give_their_closed_form():
    source, label = _moving_square_clip(frames=5)
    k = 7
    # every odd frame brightened by k everywhere: each static pixel changes by exactly k each step
    flicker = source.astype(np.int16)
    flicker[1::2] += k
    assert static_region_flicker(flicker.astype(np.uint8), source, label) == pytest.approx(k)
    # only a block R of rows 20..29, columns 30..49 brightened on odd frames: k |R & static| / |static|
    block = source.astype(np.int16)
    block[1::2, 20:30, 30:50] += k
    static = [static_mask(source[t - 1], source[t], label[t - 1], label[t]) for t in range(1, 5)]
    in_block = sum(int(m[20:30, 30:50].sum()) for m in static)
    expected = k * in_block / sum(int(m.sum()) for m in static)
    assert static_region_flicker(block.astype(np.uint8), source, label) == pytest.approx(expected)
    # a ramp of c levels per frame on one channel only: c / 3 (the RGB mean)
    ramp = source.astype(np.int16)
    ramp[..., 0] += 3 * np.arange(5)[:, None, None]
    assert static_region_flicker(ramp.astype(np.uint8), source, label) == pytest.approx(1.0)


def test_flip_flicker_counts_reading_changes_where_the_label_stays():
    source, label = _moving_square_clip(frames=3)
    readings = label.astype(np.int64).copy()
    readings[1, 0, :10] = 5                     # 10 pixels read wrongly in frame 1 only: 2 changes each
    stable = sum(int(((label[t - 1] == label[t]) & (label[t] != 255)).sum()) for t in (1, 2))
    assert flip_flicker(readings, label) == pytest.approx(20 / stable)
    readings[:, 20, :4] = 8                     # wrong in every frame: a flip, but no flicker
    assert flip_flicker(readings, label) == pytest.approx(20 / stable)


def test_counts_are_summable_across_clips_and_order():
    source, label = _moving_square_clip(frames=3)
    noisy = np.clip(source.astype(np.int16) + np.arange(3)[:, None, None, None] * 4, 0, 255).astype(np.uint8)
    together, part_a, part_b = FlickerMetric(), FlickerMetric(), FlickerMetric()
    for clip, images, part in (("a", noisy, part_a), ("b", source, part_b)):
        for t in range(3):
            together.update(clip, t, source[t], label[t], {"translated": images[t]})
            part.update(clip, t, source[t], label[t], {"translated": images[t]})
    part_b.merge(part_a)
    assert part_b.compute() == together.compute()
    result = together.compute()
    assert result["clips"]["a"]["static_flicker"]["translated"] == pytest.approx(4.0)
    assert result["clips"]["b"]["static_flicker"]["translated"] == 0.0
    assert result["overall"]["static_flicker"]["source"] == 0.0
    assert [step["step"] for step in result["over_time"]] == [1, 2]
    with pytest.raises(ValueError, match="already counted"):
        together.update("a", 1, source[1], label[1], {"translated": source[1]})
    part_a.counts.pop(("a", 0))
    with pytest.raises(ValueError, match="in order"):
        part_a.update("a", 0, source[0], label[0], {"translated": source[0]})


def test_eval_flicker_writes_report_and_compares(tmp_path, capsys):
    make_toy_world(tmp_path / "toy", train=0, val=0, judge=0, size=(H, W), seed=2, clips=2, clip_length=2)
    judge = make_judge(tmp_path / "judge.pt")
    checkpoint = make_translator(tmp_path / "translator.pt")
    reports = {}
    for temporal in ("none", "clip"):
        out = tmp_path / f"flicker_{temporal}"
        assert main(["eval", "--flicker", "--checkpoint", str(checkpoint), "--clips", str(tmp_path / "toy" / "clips"),
                     "--judge", str(judge), "--temporal", temporal, "--out", str(out)]) == 0
        assert (out / "flicker.md").is_file() and (out / "flicker_over_time.png").is_file()
        reports[temporal] = read_flicker_report(out / "flicker.json")
    report = reports["clip"]
    assert report["protocol"]["temporal"] == "clip" and report["protocol"]["clips"] == 2
    assert report["protocol"]["cameras"] == {"clip_0000": "static", "clip_0001": "forward"}
    assert report["groups"]["static"] == {k: v for k, v in report["clips"]["clip_0000"].items() if k != "frames"}
    assert set(report["clips"]) == {"clip_0000", "clip_0001"} and len(report["over_time"]) == 1
    overall = report["overall"]
    assert overall["static_flicker"]["source"] == 0.0 and overall["static_flicker"]["paired_truth"] < 0.5
    assert all(0.0 <= overall["flip_rate"][v] <= 1.0 for v in ("translated", "source", "paired_truth"))
    json.dumps(report)
    capsys.readouterr()
    assert main(["eval", "--compare", str(tmp_path / "flicker_none" / "flicker.json"),
                 str(tmp_path / "flicker_clip" / "flicker.json")]) == 0
    printed = capsys.readouterr().out
    assert "static flicker" in printed and "flicker_c" in printed
    # a translated set (here: the paired truth itself) instead of a checkpoint
    assert main(["eval", "--flicker", "--translated", str(tmp_path / "toy" / "clips" / "paired"),
                 "--clips", str(tmp_path / "toy" / "clips"), "--judge", str(judge),
                 "--out", str(tmp_path / "flicker_truth")]) == 0
    truth = read_flicker_report(tmp_path / "flicker_truth" / "flicker.json")["overall"]
    assert truth["static_flicker"]["translated"] == truth["static_flicker"]["paired_truth"]


def test_eval_flicker_refuses_a_set_without_clips(tmp_path):
    make_toy_world(tmp_path / "toy", train=1, val=1, judge=0, size=(H, W), seed=2)
    judge = make_judge(tmp_path / "judge.pt")
    checkpoint = make_translator(tmp_path / "translator.pt")
    assert main(["eval", "--flicker", "--checkpoint", str(checkpoint), "--clips", str(tmp_path / "toy" / "sim" / "val"),
                 "--judge", str(judge), "--out", str(tmp_path / "out")]) == 2
    assert main(["eval", "--flicker", "--checkpoint", str(checkpoint), "--judge", str(judge),
                 "--out", str(tmp_path / "out")]) == 2
