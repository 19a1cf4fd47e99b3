"""`semguard eval` end to end on a tiny on-disk world with a tiny judge and crop classifier."""

from __future__ import annotations

import pytest

from semguard.cli import main
from semguard.common import file_sha256
from semguard.metrics.report import read_report

from eval_fixtures import make_crop_classifier, make_guide, make_judge, make_world


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions on a shared CPU run far faster on one thread than on contended several."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    make_world(root, count=4)
    make_judge(root / "judge.pt")
    make_crop_classifier(root / "crops.pt")
    return root


def test_flip_report_end_to_end(world, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["eval", "--translated", str(world / "translated"), "--data", str(world), "--judge", str(world / "judge.pt"),
                 "--crop-classifier", str(world / "crops.pt"), "--flip-report", "--out", str(out), "--worst", "2",
                 "--kid-subsets", "3", "--batch-size", "3"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "fid_judge" in printed and "per-class flip rate" in printed
    report = read_report(out / "report.json")   # validates against the schema
    protocol = report["protocol"]
    assert protocol["image_count"] == 4 and protocol["target_image_count"] == 4
    assert protocol["resolution"] == [[32, 64]] and protocol["feature_extractor"] == "judge"
    assert protocol["judge"]["sha256"] == file_sha256(world / "judge.pt")
    assert protocol["crop_classifier"]["sha256"] == file_sha256(world / "crops.pt")
    assert protocol["translation"]["mode"] == "translated_dir" and len(protocol["translation"]["sha256"]) == 64
    assert protocol["seeds"]["source_data"] == 7
    assert set(report["variants"]) == {"translated", "source", "paired_truth"}
    translated, truth = report["variants"]["translated"], report["variants"]["paired_truth"]
    # the fixture's translations are the paired truth itself: identical readings, SSIM 1
    assert translated["flip"]["flip_table"] == truth["flip"]["flip_table"]
    assert translated["paired_distance"]["ssim"] == pytest.approx(1.0)
    assert truth["paired_distance"] is None
    assert translated["image_distance"]["feature_extractor"] == "judge" and "fid_judge" in translated["image_distance"]
    assert translated["attributes"]["state"]["total"] == 4
    assert translated["boxes"]["traffic light"]["boxes"] == 4 and translated["boxes"]["car"]["boxes"] == 4
    assert 0.0 <= report["judge"]["miou"] <= 1.0
    for name in ("flip_table_translated", "flip_table_source", "flip_table_paired_truth", "flip_bars",
                 "worst_translated_01", "worst_source_02"):
        assert (out / report["figures"][name]).is_file(), name
    assert (out / report["figures"]["comparison"]).is_file()
    assert "semguard flip report" in (out / "report.md").read_text()
    # the headline: excess over the paired truth, with intervals, and the classes it averages
    headline = report["variants"]["translated"]["flip"]["headline"]
    floor = report["variants"]["paired_truth"]["flip"]["headline"]
    assert headline["excess_pixel_flip_rate"]["value"] == pytest.approx(
        headline["pixel_flip_rate"]["value"] - floor["pixel_flip_rate"]["value"])
    assert len(headline["pixel_flip_rate"]["ci"]) == 2 and floor["excess_pixel_flip_rate"] is None
    assert report["reliability"]["floor"]["source"] == "paired truth of this evaluation"
    classes = set(report["reliability"]["reliable"]) | set(report["reliability"]["unreliable"])
    assert classes == {name for name, entry in report["variants"]["translated"]["flip"]["per_class"].items()
                       if entry["rate"] is not None}
    realism = report["variants"]["translated"]["realism"]
    assert realism["to_paired_truth"]["reference"] == "paired_truth" and "match_rate" in realism["skvd"]

    # several reports side by side
    capsys.readouterr()
    assert main(["eval", "--compare", str(out / "report.json"), str(out / "report.json")]) == 0
    assert "side by side" in capsys.readouterr().out


def test_summary_only_writes_nothing(world, tmp_path, capsys):
    code = main(["eval", "--translated", str(world / "translated"), "--source", str(world / "sim" / "val"),
                 "--target-val", str(world / "real" / "val"), "--judge", str(world / "judge.pt"), "--features", "none",
                 "--max-images", "2", "--out", str(tmp_path / "unused")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean flip (all classes)" in printed and "fid_" not in printed
    # no paired truth and a judge that recorded no floor: said so, in one place, not a traceback
    assert "the judge's floor is unknown" in printed and "--floor-data" in printed
    assert not (tmp_path / "unused").exists()


def test_user_errors_are_one_line(world, tmp_path, capsys, monkeypatch):
    guide = make_guide(tmp_path / "guide.pt")
    base = ["eval", "--data", str(world), "--features", "none"]
    assert main(base + ["--translated", str(world / "translated"), "--judge", str(guide)]) == 2
    assert "'guide' segmenter but a 'judge' is needed" in capsys.readouterr().err

    partial = tmp_path / "partial"
    (partial / "images").mkdir(parents=True)
    assert main(base + ["--translated", str(partial), "--judge", str(world / "judge.pt")]) == 2
    assert "no translated image for source frame" in capsys.readouterr().err

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert main(["eval", "--data", str(world), "--translated", str(world / "translated"), "--judge",
                 str(world / "judge.pt"), "--features", "inception"]) == 2
    assert "weights-inception-2015-12-05-6726825d.pth" in capsys.readouterr().err

    assert main(["eval", "--data", str(world), "--judge", str(world / "judge.pt")]) == 2
    assert "exactly one of --checkpoint" in capsys.readouterr().err
    assert main(["eval", "--data", str(world), "--translated", str(world / "translated"), "--judge",
                 str(world / "judge.pt"), "--flip-report"]) == 2
    assert "--out" in capsys.readouterr().err


def test_checkpoint_mode_uses_the_translator_contract(world, tmp_path, monkeypatch):
    """--checkpoint: Translator.from_checkpoint(path, device).translate_batch(batch) -> [B,3,H,W]."""
    calls = []

    class FakeTranslator:
        metadata = {"step": 12, "config": {"train": {"seed": 5}}}

        @classmethod
        def from_checkpoint(cls, path, device="cpu", ema=True):
            calls.append(("load", str(path), device))
            return cls()

        def translate_batch(self, batch):
            calls.append(("batch", len(batch)))
            return batch.image.flip(-1)    # a "translation" that mirrors the frame

    monkeypatch.setattr("semguard.metrics.evaluate.Translator", FakeTranslator)
    checkpoint = tmp_path / "translator.pt"
    checkpoint.write_bytes(b"not read by the fake")
    from semguard.metrics.evaluate import EvalData, EvalSettings, evaluate

    report = evaluate(EvalData.toy(world), world / "judge.pt", checkpoint=str(checkpoint),
                      settings=EvalSettings(features=None, batch_size=3, lpips=False))
    assert calls[0] == ("load", str(checkpoint), "cpu") and [c[1] for c in calls[1:]] == [3, 1]
    assert report["protocol"]["translation"] == {"mode": "checkpoint", "path": str(checkpoint),
                                                 "sha256": file_sha256(checkpoint), "step": 12}
    assert report["protocol"]["seeds"]["translator_train"] == 5
    assert report["variants"]["translated"]["image_distance"] is None


def test_checkpoint_mode_with_a_real_translator(world, tmp_path):
    from eval_fixtures import make_translator

    from semguard.metrics.evaluate import EvalData, EvalSettings, evaluate
    from semguard.metrics.report import json_safe, validate_report

    checkpoint = make_translator(tmp_path / "translator.pt")
    report = evaluate(EvalData.toy(world), world / "judge.pt", checkpoint=str(checkpoint),
                      settings=EvalSettings(features="judge", batch_size=4, lpips=False, kid_subsets=2, worst_k=0),
                      out=tmp_path / "out")
    validate_report(json_safe(report))
    assert report["protocol"]["translation"]["step"] == 1 and report["protocol"]["seeds"]["translator_train"] == 3
    assert report["variants"]["translated"]["flip"]["image_count"] == 4
