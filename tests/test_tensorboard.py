"""train.logger: tensorboard on a tiny run (32x64 images, 8-channel models, CPU).

Covers: the event files hold every log.jsonl term at the same steps with the same values,
plus learning rates, img/s and the sample grids; a resumed run shows one history per tag;
train.logger may change on resume; a missing tensorboard package stops the run before
anything is built, with the key and the fix named, while jsonl runs never need it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from semguard.config import config_to_dict
from semguard.config_checks import config_differences
from semguard.errors import ConfigError
from semguard.train.trainer import train
from test_trainer import _config as trainer_config, _write_domain

# bash scripts/test.sh installs the extra, so these run there; a bare `pytest` without it skips them
needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="pip install 'semguard[tensorboard]'")
@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy_data")
    _write_domain(root / "source", 4, seed=0, brightness=150)
    _write_domain(root / "target", 4, seed=1, brightness=40)
    return root


def _config(data_root: Path, out: Path, *extra: str):
    """test_trainer's tiny run, logging to TensorBoard too."""
    return trainer_config(data_root, out, "data.check_frames=0", "train.logger=tensorboard", *extra)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _events(out: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def _scalar(events, tag: str) -> dict[int, float]:
    """step -> value of one tag; fails on two values at one step (two histories)."""
    points = events.Scalars(tag)
    steps = [point.step for point in points]
    assert len(steps) == len(set(steps)), f"{tag} holds steps {steps}"
    return {point.step: point.value for point in points}


def _expected(records: list[dict]) -> dict[str, dict[int, float]]:
    """The TensorBoard tags and values the log.jsonl records stand for."""
    expected: dict[str, dict[int, float]] = {}
    for record in records:
        step, terms = record["step"], record["terms"]
        for name, value in terms.items():
            expected.setdefault(name if name == "loss_g" else f"loss/{name}", {})[step] = value
        expected.setdefault("loss_d", {})[step] = terms["d"] + terms.get("d_patch", 0.0)
        expected.setdefault("lr/g", {})[step] = record["lr_g"]
        expected.setdefault("lr/d", {})[step] = record["lr_d"]
        expected.setdefault("images_per_s", {})[step] = record["images_per_s"]
    return expected


def _assert_events_match_log(out: Path):
    records = _records(out)
    events = _events(out)
    tags = set(events.Tags()["scalars"])
    for tag, values in _expected(records).items():
        assert tag in tags, f"{tag} missing from the event files (tags: {sorted(tags)})"
        logged = _scalar(events, tag)
        assert sorted(logged) == sorted(values), tag
        for step, value in values.items():
            assert logged[step] == pytest.approx(value, rel=1e-5, abs=1e-7), (tag, step)   # events hold float32
    return events


@pytest.fixture(scope="module")
def tensorboard_run(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "board"
    train(_config(data_root, out), show_progress=False)
    return out


@needs_tensorboard
def test_event_files_hold_every_logged_term_at_the_same_steps(tensorboard_run):
    out = tensorboard_run
    records = _records(out)
    assert [record["step"] for record in records] == [2, 4, 6]
    assert {"gan", "nce", "d", "loss_g"} <= set(records[-1]["terms"])
    events = _assert_events_match_log(out)
    assert {"loss/gan", "loss/nce", "loss/d", "loss_g", "loss_d", "lr/g", "lr/d", "images_per_s"} \
        <= set(events.Tags()["scalars"])


@needs_tensorboard
def test_sample_grids_are_images_at_their_steps(tensorboard_run):
    from PIL import Image

    events = _events(tensorboard_run)
    assert "samples" in events.Tags()["images"]
    images = events.Images("samples")
    assert [image.step for image in images] == [3, 6]
    on_disk = Image.open(tensorboard_run / "samples" / "step_00000006.png")
    assert (images[-1].width, images[-1].height) == on_disk.size


@needs_tensorboard
def test_a_resumed_run_appends_one_history(tensorboard_run, data_root, tmp_path):
    out = tmp_path / "board"
    shutil.copytree(tensorboard_run, out)
    (out / "checkpoints" / "step_00000006.pt").unlink()   # as if killed after step 4's checkpoint
    train(_config(data_root, out), resume=True, show_progress=False)
    assert len(list((out / "tensorboard").iterdir())) == 2   # the first run's event file and the resumed one's
    assert [record["step"] for record in _records(out)] == [2, 4, 6]
    _assert_events_match_log(out)                            # step 6 once: the first run's copy is hidden
    assert [image.step for image in _events(out).Images("samples")] == [3, 6]


def test_the_logger_may_change_on_resume(data_root, tmp_path):
    jsonl = config_to_dict(_config(data_root, tmp_path, "train.logger=jsonl"))
    board = config_to_dict(_config(data_root, tmp_path))
    assert config_differences(jsonl, board) == []
    del jsonl["train"]["logger"]   # a checkpoint from before the key existed
    assert config_differences(jsonl, board) == []


def test_a_missing_tensorboard_stops_the_run_before_training(data_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # makes the import fail
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as raised:
        train(_config(data_root, out), show_progress=False)
    message = str(raised.value)
    assert "train.logger" in message and "pip install 'semguard[tensorboard]'" in message
    assert "train.logger: jsonl" in message
    assert not out.exists()   # refused before the output folder was made: no config, log or checkpoint


def test_a_jsonl_run_needs_no_tensorboard(data_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "run"
    train(_config(data_root, out, "train.logger=jsonl", "train.steps=1", "train.sample_every=0",
                  "train.checkpoint_every=0"), show_progress=False)
    assert (out / "final.pt").exists() and [record["step"] for record in _records(out)] == [1]
    assert not (out / "tensorboard").exists()
