"""The package's shape: imports at module top, no cycle; the shared rules in semguard.common;
the translator checkpoint written and read in one place."""

import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch

from semguard.checkpoints import TRANSLATOR, load_checkpoint, load_translator, save_translator
from semguard.common import file_sha256, parse_hw, resolve_device
from semguard.config import ModelConfig, RunConfig
from semguard.errors import ConfigError, DataError
from semguard.models import build_generator

ROOT = Path(__file__).resolve().parent.parent


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", ROOT / "scripts" / "check_imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_function_level_import_and_no_cycle():
    assert _checker().problems() == []


def test_checker_finds_a_cycle_and_a_hidden_import(tmp_path, monkeypatch):
    checker = _checker()
    package = tmp_path / "semguard"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from semguard.b import f\n")
    (package / "b.py").write_text("def f():\n    from semguard.a import g\n")
    monkeypatch.setattr(checker, "ROOT", tmp_path)
    monkeypatch.setattr(checker, "PACKAGE", package)
    found = checker.problems()
    assert "semguard/b.py:2: imports semguard.a inside a function" in found
    assert "module cycle: semguard.a <-> semguard.b" in found


def test_resolve_device_one_rule(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        assert resolve_device(None) == torch.device("cpu")
        with pytest.raises(ConfigError, match="train.device cuda"):
            resolve_device("cuda", what="train.device")
    with pytest.raises(ConfigError, match="--device 'tpu'"):
        resolve_device("tpu")


def test_file_sha256_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 9000   # more than one 1 MiB block
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("text, expected", [("128x256", (128, 256)), (" 64 X 32 ", (64, 32))])
def test_parse_hw(text, expected):
    assert parse_hw(text, "--size") == expected


@pytest.mark.parametrize("text", ["128", "0x5", "axb", "12x"])
def test_parse_hw_refuses(text):
    with pytest.raises(ConfigError, match="--crop"):
        parse_hw(text, "--crop")


def test_save_and_load_translator_round_trip(tmp_path):
    config = RunConfig(model=ModelConfig(generator="spade", base_channels=8, n_blocks=1, n_downsample=1))
    generator, _ = build_generator(config.model)
    ema = {k: v + 1.0 if v.is_floating_point() else v for k, v in generator.state_dict().items()}
    path = save_translator(tmp_path / "t.pt", config, generator, generator_ema=ema, step=5)
    raw = load_checkpoint(path, kind=TRANSLATOR)
    assert raw["step"] == 5 and raw["conditioning_channels"] > 0
    loaded, spec, loaded_config, metadata = load_translator(path)
    assert metadata["weights"] == "generator_ema" and loaded_config.model == config.model
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, ema[name]), name
    raw_weights, _, _, metadata = load_translator(path, ema=False)
    assert metadata["weights"] == "generator"
    for name, value in raw_weights.state_dict().items():
        assert torch.equal(value, generator.state_dict()[name]), name


def test_load_translator_refuses_other_kinds(tmp_path):
    from semguard.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "seg.pt", {"kind": "segmenter"})
    with pytest.raises(DataError, match="expected a 'translator'"):
        load_translator(tmp_path / "seg.pt")


def test_every_cited_document_ships():
    """A docstring that cites a document names one the repository holds (docs/)."""
    import re

    cited = set()
    for path in (ROOT / "semguard").rglob("*.py"):
        cited.update(re.findall(r"\b((?:docs/)?[A-Z][A-Z_]+\.md)\b", path.read_text()))
    assert cited, "no citation found: the pattern is wrong"
    for name in cited:
        assert (ROOT / name).is_file() or (ROOT / "docs" / name).is_file(), f"{name} is cited but not shipped"


def test_box_metric_counts_the_pixels_the_conditioning_covers():
    """One box-to-pixel rule: the flip counts inside a fractional box cover exactly the pixels of
    the box map the generator is conditioned on."""
    from semguard.data.sample import Box
    from semguard.metrics.boxes import box_pixel_counts
    from semguard.models.conditioning import box_maps

    label = torch.full((10, 12), 6, dtype=torch.long)
    box = Box((2.4, 1.6, 7.7, 6.2), 6)
    pixels, flipped = box_pixel_counts(label, label, box)
    covered = box_maps([[box]], (6,), 10, 12)[0, 0] > 0
    assert pixels == int(covered.sum()) == (8 - 2) * (6 - 2) and flipped == 0


def test_bare_cuda_means_the_local_rank_everywhere(monkeypatch):
    """Settled: "cuda" (bare, or from "auto") is the process's own GPU under torchrun."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)   # an explicit index is kept


def test_training_resize_is_the_evaluation_resize():
    """Settled: one resize path (torch, antialiased bilinear; nearest for ids) for training,
    previews and evaluation."""
    import numpy as np

    from semguard.data.resize import resize_sample
    from semguard.data.sample import Box, Sample
    from semguard.data.transforms import PairedTransform

    rng = np.random.default_rng(0)
    sample = Sample(image=rng.integers(0, 256, (40, 60, 3), dtype=np.uint8),
                    label=rng.integers(0, 19, (40, 60), dtype=np.uint8),
                    boxes=[Box((10.0, 8.0, 30.0, 20.0), 7)], name="f")
    through_transform = PairedTransform(resize=(20, 30))(sample, np.random.default_rng(1))
    direct = resize_sample(sample, (20, 30))
    assert np.array_equal(through_transform.image, direct.image)
    assert np.array_equal(through_transform.label, direct.label)
    assert through_transform.boxes[0].xyxy == direct.boxes[0].xyxy == (5.0, 4.0, 15.0, 10.0)


def test_folder_dataset_reports_unknown_ids_like_the_folder_loader(tmp_path):
    """Settled: one reader of the folder format; unknown label ids go to ignore and are counted
    whether the set is opened as FolderDataset or through the `folder` format loader."""
    import numpy as np

    from semguard.data.folder import FolderDataset, write_sample
    from semguard.data.formats import open_dataset
    from semguard.data.sample import Sample

    from PIL import Image

    write_sample(tmp_path, Sample(image=np.zeros((8, 8, 3), np.uint8), label=np.zeros((8, 8), np.uint8), name="f"))
    label = np.zeros((8, 8), np.uint8)
    label[:2] = 40          # not a train id: written behind semguard's back, as a damaged copy would hold
    Image.fromarray(label).save(tmp_path / "labels" / "f.png")
    for dataset in (FolderDataset(tmp_path), open_dataset(tmp_path, "folder")):
        frame = dataset[0]
        assert (frame.label[:2] == 255).all() and (frame.label[2:] == 0).all()
    reader = FolderDataset(tmp_path)
    reader[0]
    assert reader.ignore_report.ignored[40] == 16 and reader.ignore_report.unexpected[40] == 16
