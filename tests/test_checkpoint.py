"""Checkpoint files: atomic writes, safe loads, clear errors, rotation."""

from __future__ import annotations

import pytest
import torch

from semguard.errors import DataError
from semguard.checkpoints import (latest_step_checkpoint, list_step_checkpoints, load_checkpoint,
                                       rotate_checkpoints, save_checkpoint, step_checkpoint_name)


def _state() -> dict:
    return {"kind": "translator", "step": 3, "weights": {"w": torch.arange(6.0).reshape(2, 3)},
            "rng": [{"python": {"state": [1, 2, 3], "gauss": None}}], "config": {"train": {"steps": 10}}}


def test_save_load_roundtrip_leaves_no_temporary_file(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "a.pt", _state())
    loaded = load_checkpoint(path, kind="translator")
    assert torch.equal(loaded["weights"]["w"], _state()["weights"]["w"])
    assert loaded["rng"][0]["python"]["state"] == [1, 2, 3] and loaded["step"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["a.pt"]


def test_save_replaces_atomically(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, {"step": 1})
    save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 2


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match="nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("content", [b"", b"garbage bytes", None])
def test_corrupt_or_truncated_file_names_it(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:   # a checkpoint cut in half by a kill
        save_checkpoint(tmp_path / "good.pt", _state())
        content = (tmp_path / "good.pt").read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"bad\.pt is corrupt"):
        load_checkpoint(path)


class _NotPlainData:
    pass


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"object": _NotPlainData()}, path)
    with pytest.raises(DataError, match=r"code\.pt holds a pickled object .*_NotPlainData"):
        load_checkpoint(path)


def test_wrong_kind_and_non_dict_are_refused(tmp_path):
    save_checkpoint(tmp_path / "seg.pt", {"kind": "segmenter"})
    with pytest.raises(DataError, match="'segmenter' checkpoint, expected a 'translator'"):
        load_checkpoint(tmp_path / "seg.pt", kind="translator")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataError, match="not a semguard checkpoint"):
        load_checkpoint(tmp_path / "list.pt")


def test_rotation_keeps_the_last_k(tmp_path):
    for step in (5, 10, 15, 20):
        save_checkpoint(tmp_path / step_checkpoint_name(step), {"step": step})
    (tmp_path / "final.pt").write_bytes(b"x")   # not a step checkpoint: never rotated away
    removed = rotate_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in removed] == [step_checkpoint_name(5), step_checkpoint_name(10)]
    assert [step for step, _ in list_step_checkpoints(tmp_path)] == [15, 20]
    assert latest_step_checkpoint(tmp_path).name == step_checkpoint_name(20)
    assert (tmp_path / "final.pt").exists()
    assert rotate_checkpoints(tmp_path, keep_last=0) == []
    assert latest_step_checkpoint(tmp_path / "missing") is None
