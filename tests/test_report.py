"""report.json against its schema; the small validator; box measures; md, terminal and picture writers."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from rich.console import Console

from semguard.data.sample import Box
from semguard.metrics import report as report_module
from semguard.metrics.boxes import AttributePreservation, BoxPreservation, box_pixel_counts, normalise_predictions
from semguard.metrics.fid import ImageDistance
from semguard.metrics.flip import flip_rates
from semguard.metrics.headline import headline_figures, select_reliable


def build_report(extractor: str = "judge") -> dict:
    """A complete report made by the real metric classes on tiny inputs."""
    label = torch.zeros(2, 4, 6, dtype=torch.long)
    label[:, :2] = 10
    label[:, 3, 4:] = 6
    prediction = label.clone()
    prediction[0, 0] = 8   # sky read as vegetation in the first frame
    boxes = [[Box((4, 3, 6, 4), 6, 1, {"state": "red"})], [Box((4, 3, 6, 4), 6, 1, {"state": "green"})]]
    variants = {}
    floor = flip_rates(label, label, names=["a", "b"])
    judge_iou = torch.full((19,), float("nan"), dtype=torch.float64)
    judge_iou[[0, 6, 10]] = torch.tensor([1.0, 0.4, 0.5], dtype=torch.float64)
    reliability = select_reliable(floor.present, judge_iou, floor.per_class_flip_rate)
    for variant in ("translated", "source", "paired_truth"):
        flips = flip_rates(label, prediction if variant != "paired_truth" else label, names=["a", "b"])
        box_meter = BoxPreservation()
        box_meter.update(label, prediction, boxes)
        attributes = AttributePreservation()
        attributes.update([b for bs in boxes for b in bs], [{"state": "red"}, {"state": "red"}])
        distance = ImageDistance(extractor, kid_subsets=3, kid_subset_size=4)
        distance.update_features(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), real=True)
        distance.update_features(torch.randn(5, 3, generator=torch.Generator().manual_seed(1)), real=False)
        flip_dict = flips.to_dict()
        flip_dict["headline"] = headline_figures(flips.image_class_counts.numpy(), reliability,
                                                 None if variant == "paired_truth" else floor.image_class_counts.numpy(),
                                                 resamples=50)
        variants[variant] = {
            "flip": flip_dict,
            "image_distance": {**distance.compute(), "reference": "target_val"},
            "realism": {"to_paired_truth": None if variant == "paired_truth" else
                        {**distance.compute(), "reference": "paired_truth"}, "skvd": None},
            "boxes": box_meter.compute(),
            "attributes": attributes.compute(),
            "paired_distance": None if variant == "paired_truth" else {
                "psnr": 20.0, "ssim": 0.5, "lpips": {"available": False, "reason": "weights missing"}, "image_count": 2},
        }
    return report_module.json_safe({
        "schema_version": 2,
        "semguard_version": "0.0.test",
        "created": "2026-01-01T00:00:00Z",
        "protocol": {
            "image_count": 2, "target_image_count": 2, "resolution": [[4, 6]], "resize": None,
            "resize_filter": "none", "seeds": {"kid": 0, "source_data": None}, "feature_extractor": extractor,
            "translation": {"mode": "translated_dir", "path": "t", "sha256": "ab" * 32},
            "judge": {"path": "judge.pt", "sha256": "cd" * 32}, "crop_classifier": None,
            "data": {"source_val": "s", "target_val": "t", "paired": None},
        },
        "judge": {"miou": 0.75, "per_class_iou": {"sky": 0.5, "road": 1.0}, "image_count": 2},
        "reliability": {**reliability.to_dict(), "floor": {"known": True, "source": "paired truth"}},
        "variants": variants,
        "notes": ["LPIPS to paired truth: unavailable, weights missing"],
        "figures": {},
    })


def test_report_validates_against_its_schema():
    report = build_report()
    assert report_module.schema_errors(report) == []
    assert report["variants"]["translated"]["flip"]["per_class"]["sky"]["rate"] == pytest.approx(6 / 24)
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN/inf left


def test_validator_reports_violations():
    report = build_report()
    broken = copy.deepcopy(report)
    del broken["protocol"]["judge"]
    broken["variants"]["translated"]["flip"]["mean_flip_rate"] = 1.5
    broken["variants"]["source"]["image_distance"]["fid_inception"] = 3.0   # extractors never mixed
    broken["variants"]["bogus"] = broken["variants"]["source"]
    broken["schema_version"] = 1
    errors = "\n".join(report_module.schema_errors(broken))
    assert "missing required key 'judge'" in errors
    assert "1.5 > maximum 1" in errors
    assert "unexpected key 'bogus'" in errors
    assert "schema_version: 1 is not one of [2]" in errors
    assert "fid_inception" in errors and "feature extractor" in errors
    nan_report = copy.deepcopy(report)
    nan_report["judge"]["miou"] = float("nan")
    assert any("not a finite number" in e for e in report_module.schema_errors(nan_report))
    with pytest.raises(ValueError, match="does not fit its schema"):
        report_module.validate_report(broken)


def test_validator_agrees_with_jsonschema_when_installed():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(build_report(), report_module.report_schema())


def test_files_markdown_and_terminal(tmp_path):
    report = build_report()
    path = report_module.write_report_json(report, tmp_path / "report.json")
    assert report_module.read_report(path)["schema_version"] == 2
    text = report_module.markdown_report(report)
    assert "fid_judge" in text and "fid_inception" not in text and "| sky |" in text
    assert "sky | vegetation" in text
    # the headline: excess over the floor (the paired truth flips nothing; 6 of 48 labelled pixels flip)
    assert "| excess pixel flip | +12.5% [" in text
    assert "- left out: traffic light: judge IoU 0.40 < 0.50 on target val" in text
    assert "- left out: sky" not in text and "reliable classes" in text
    assert "## Figures not given" in text and "LPIPS to paired truth: unavailable, weights missing" in text
    console = Console(record=True, width=240)
    report_module.print_summary(report, console)
    output = console.export_text()
    assert "fid_judge vs target (2nd)" in output and "kid_judge to paired truth" in output and "traffic light" in output
    assert "not given: LPIPS to paired truth: unavailable, weights missing" in output
    other = build_report("inception")
    console = Console(record=True, width=240)
    report_module.print_comparison([("a", report), ("b", other)], console)
    output = console.export_text()
    assert "fid_judge" in output and "fid_inception" in output and "not comparable" in output


def test_markdown_and_terminal_show_the_same_rows():
    report = build_report()
    text = report_module.markdown_report(report)
    console = Console(record=True, width=240)
    report_module.print_summary(report, console)
    terminal = console.export_text().splitlines()
    rows = [[name, *values] for name, values in report_module.summary_rows(report)]
    rows += report_module.per_class_rows(report) + report_module.top_flip_rows(report, "translated")
    assert [row[0] for row in report_module.per_class_rows(report)] == ["road", "traffic light", "sky"]
    for row in rows:
        assert "| " + " | ".join(row) + " |" in text, row
        assert any(all(cell in line for cell in row) for line in terminal), row


def test_read_report_refuses_other_files(tmp_path):
    from semguard.errors import DataError

    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 99}')
    with pytest.raises(DataError, match="schema version 2"):
        report_module.read_report(bad)
    with pytest.raises(DataError, match="does not exist"):
        report_module.read_report(tmp_path / "missing.json")


def test_pictures(tmp_path):
    from PIL import Image

    report = build_report()
    table = report_module.draw_flip_table(report["variants"]["translated"]["flip"]["flip_table"], "t", tmp_path / "t.png")
    bars = report_module.draw_flip_bars(report, tmp_path / "b.png")
    label = np.zeros((8, 16), dtype=np.uint8)
    prediction = label.copy()
    prediction[:2] = 8
    worst = report_module.draw_worst_image(np.zeros((8, 16, 3), np.uint8), label, prediction, "w", tmp_path / "w.png")
    for path in (table, bars, worst):
        assert Image.open(path).size[0] > 100
    pixels = np.asarray(Image.open(worst))
    assert ((pixels == (255, 0, 255)).all(-1)).sum() > 0   # flipped pixels highlighted


def test_box_flip_counts_by_hand():
    label = torch.zeros(1, 6, 6, dtype=torch.long)
    label[0, 1:4, 1:3] = 6          # a 3x2 light
    prediction = label.clone()
    prediction[0, 1, 1:3] = 10      # its top row read as sky: 2 of 6 pixels
    light = Box((1, 1, 3, 4), 6)
    assert box_pixel_counts(label[0], prediction[0], light) == (6, 2)
    occluded = Box((4, 4, 6, 6), 6)  # no light pixel inside: skipped
    car = Box((0, 4, 6, 6), 13)      # no car pixels: skipped
    lost = Box((1, 1, 3, 2), 6)      # only the flipped row: lost
    meter = BoxPreservation()
    meter.update(label, prediction, [[light, occluded, lost]])
    meter.update(label, prediction, [[car]])
    result = meter.compute()
    assert result["traffic light"]["boxes"] == 2 and result["traffic light"]["skipped"] == 1
    assert result["traffic light"]["mean_flip_rate"] == pytest.approx((2 / 6 + 1.0) / 2)
    assert result["traffic light"]["pixel_flip_rate"] == pytest.approx(4 / 8)
    assert result["traffic light"]["lost_share"] == pytest.approx(0.5)
    assert result["car"] == {"boxes": 0, "skipped": 1, "mean_flip_rate": None, "pixel_flip_rate": None, "lost_share": None}


def test_attribute_preservation_and_classifier_outputs():
    boxes = [Box((0, 0, 2, 2), 6, attributes={"state": "red"}), Box((0, 0, 2, 2), 7, attributes={"pictogram": "stop"})]
    predicted = normalise_predictions(boxes, ["red", {"pictogram": "warning"}])
    assert predicted == [{"state": "red"}, {"pictogram": "warning"}]
    meter = AttributePreservation()
    meter.update(boxes, predicted)
    meter.update(boxes[:1], [{}])   # unreadable box: not counted
    assert meter.compute() == {"pictogram": {"correct": 0, "total": 1, "accuracy": 0.0},
                               "state": {"correct": 1, "total": 1, "accuracy": 1.0}}


def test_paired_distance_closed_form_and_lpips_never_faked(tmp_path, monkeypatch):
    from semguard.metrics.paired import PairedDistance

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))   # an empty cache: LPIPS must say unavailable
    meter = PairedDistance(lpips=True)
    truth = torch.zeros(2, 3, 16, 16)
    meter.update(truth + 0.1, truth)                  # 0.05 in [0,1] units: MSE 0.0025
    result = meter.compute()
    assert result["psnr"] == pytest.approx(10 * np.log10(1 / 0.0025), rel=1e-4)
    assert result["ssim"] == pytest.approx(1.0, abs=0.02)
    assert result["lpips"]["available"] is False and "alexnet" in result["lpips"]["reason"]
    assert "value" not in result["lpips"] and result["image_count"] == 2


def test_resize_keeps_labels_nearest_and_scales_boxes():
    from semguard.data.sample import Sample
    from semguard.data.resize import resize_sample

    label = np.zeros((8, 16), dtype=np.uint8)
    label[:4] = 10
    label[0, 0] = 255
    sample = Sample(image=np.zeros((8, 16, 3), np.uint8), label=label, boxes=[Box((2, 2, 6, 4), 6)], name="x")
    resized = resize_sample(sample, (16, 32))
    assert resized.size == (16, 32) and set(np.unique(resized.label).tolist()) == {0, 10, 255}
    assert resized.boxes[0].xyxy == (4.0, 4.0, 12.0, 8.0)
