"""`check_dataset` and `semguard data check`: every problem collected, one test per kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from semguard.cli import main
from semguard.data.check import check_dataset, require_usable
from semguard.data.folder import write_sample
from semguard.data.sample import Box, Sample
from semguard.errors import ConfigError, DataError

H, W = 16, 24


def make_set(root, n=3):
    rng = np.random.default_rng(0)
    for i in range(n):
        label = np.zeros((H, W), np.uint8)
        label[:4] = 10
        write_sample(root, Sample(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), label,
                                  boxes=[Box((1, 1, 5, 5), 6, attributes={"state": "red"})], name=f"f{i}"))
    return root


def kinds(report):
    return sorted(p.kind for p in report.problems)


def test_clean_set_is_usable(tmp_path):
    report = check_dataset(make_set(tmp_path), "folder")
    assert report.usable and report.frames == report.checked == 3 and kinds(report) == []


def test_the_check_counts_traffic_lights_without_a_known_state(tmp_path):
    assert Box((0, 0, 1, 1), 6, attributes={"state": "Yellow"}).light_state == 1          # an alias, any case
    assert Box((0, 0, 1, 1), 6, attributes={"state": "off"}).light_state is None
    assert Box((0, 0, 1, 1), 7, attributes={"state": "red"}).light_state is None          # not a light
    make_set(tmp_path)                                                                    # one red light a frame
    label = np.zeros((H, W), np.uint8)
    write_sample(tmp_path, Sample(np.zeros((H, W, 3), np.uint8), label, name="f3",
                                  boxes=[Box((1, 1, 5, 5), 6), Box((6, 1, 9, 5), 6, attributes={"state": "off"}),
                                         Box((10, 1, 14, 5), 6, attributes={"state": "green"})]))
    report = check_dataset(tmp_path, "folder")
    assert (report.lights, report.lights_without_state, report.checked) == (6, 2, 4)
    limited = check_dataset(tmp_path, "folder", limit=3)        # f0..f2 only
    assert (limited.lights, limited.lights_without_state) == (3, 0)


def test_image_without_label(tmp_path):
    make_set(tmp_path)
    (tmp_path / "labels" / "f1.png").unlink()
    report = check_dataset(tmp_path, "folder")
    assert kinds(report) == ["image without label"] and report.problems[0].path.endswith("images/f1.png")
    assert check_dataset(tmp_path, "folder", labels_required=False).usable


def test_label_without_image(tmp_path):
    make_set(tmp_path)
    (tmp_path / "images" / "f2.png").unlink()
    assert kinds(check_dataset(tmp_path, "folder")) == ["label without image"]


def test_size_mismatch(tmp_path):
    make_set(tmp_path)
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(tmp_path / "labels" / "f0.png")
    report = check_dataset(tmp_path, "folder")
    assert kinds(report) == ["size mismatch"] and "f0.png" in report.problems[0].path


def test_unreadable_and_truncated_files_all_collected(tmp_path):
    make_set(tmp_path)
    for name in ("f0", "f2"):
        path = tmp_path / "images" / f"{name}.png"
        path.write_bytes(path.read_bytes()[:70])
    report = check_dataset(tmp_path, "folder")
    assert kinds(report) == ["unreadable file", "unreadable file"]  # both, not only the first
    assert report.checked == 3


def test_unexpected_ids(tmp_path):
    make_set(tmp_path)
    label = np.zeros((H, W), np.uint8)
    label[0, :3] = 77
    Image.fromarray(label).save(tmp_path / "labels" / "f1.png")
    report = check_dataset(tmp_path, "folder")
    assert kinds(report) == ["unexpected ids"] and "77" in report.problems[0].detail
    assert report.ignore.unexpected[77] == 3


def test_empty_set_and_bad_annotation(tmp_path):
    (tmp_path / "images").mkdir()
    assert kinds(check_dataset(tmp_path, "folder")) == ["empty set"]
    make_set(tmp_path / "b")
    (tmp_path / "b" / "boxes" / "f0.json").write_text(json.dumps({"nope": 1}))
    assert kinds(check_dataset(tmp_path / "b", "folder")) == ["bad annotation"]


def test_require_usable_names_first_problem(tmp_path):
    make_set(tmp_path)
    (tmp_path / "labels" / "f1.png").unlink()
    with pytest.raises(DataError, match="f1.png"):
        require_usable(tmp_path, "folder")
    with pytest.raises(ConfigError):
        check_dataset(tmp_path, "carla")  # missing required version: a usage error, not a data problem


def test_cli_check_exit_codes(tmp_path, capsys):
    make_set(tmp_path)
    assert main(["data", "check", str(tmp_path), "--format", "folder"]) == 0
    assert "usable" in capsys.readouterr().out
    (tmp_path / "labels" / "f1.png").unlink()
    assert main(["data", "check", str(tmp_path), "--format", "folder"]) == 1
    out = capsys.readouterr().out
    assert "image without label" in out and "NOT usable" in out
    assert main(["data", "check", str(tmp_path), "--format", "carla"]) == 2          # version missing
    assert main(["data", "check", str(tmp_path), "--option", "novalue"]) == 2
