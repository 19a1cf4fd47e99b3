"""Every config shipped in configs/ loads, and the toy configs say what their names promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from semguard.config import load_config
from semguard.errors import ConfigError
from semguard.config_checks import check_config, needs_guide

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


def test_the_expected_configs_exist():
    names = {path.name for path in CONFIGS}
    assert {"toy.yaml", "toy_cut.yaml", "toy_cond_only.yaml", "toy_cond_seg.yaml", "toy_cond_box.yaml",
            "gta5_to_cityscapes.yaml", "shift_to_cityscapes.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_is_consistent(path):
    config = load_config(path)
    check_config(config)   # no inconsistent settings (e.g. a seg loss without a guide)
    if needs_guide(config):
        assert config.guide.checkpoint and "judge" not in config.guide.checkpoint


def test_toy_semguard_and_baselines():
    full = load_config(CONFIG_DIR / "toy.yaml")
    assert full.model.generator == "spade" and full.model.conditioning.labels and full.model.conditioning.boxes
    assert full.loss.seg > 0 and full.loss.box > 0 and full.guide.mode == "frozen"
    cut = load_config(CONFIG_DIR / "toy_cut.yaml")
    assert cut.model.generator == "resnet" and cut.loss.seg == 0 and cut.loss.box == 0 and cut.guide.checkpoint is None
    assert not needs_guide(cut)
    only = load_config(CONFIG_DIR / "toy_cond_only.yaml")
    seg = load_config(CONFIG_DIR / "toy_cond_seg.yaml")
    box = load_config(CONFIG_DIR / "toy_cond_box.yaml")
    assert (only.loss.seg, only.loss.box) == (0, 0) and only.model.generator == "spade"
    assert seg.loss.seg > 0 and seg.loss.box == 0
    assert box.loss.seg == 0 and box.loss.box > 0
    # equal budgets: the ablations differ from semguard only in what they switch off
    for other in (cut, only, seg, box):
        assert other.train.steps == full.train.steps and other.data.batch_size == full.data.batch_size
        assert other.data.crop == full.data.crop and other.model.base_channels == full.model.base_channels
        assert other.train.out != full.train.out


def test_gpu_configs_read_the_real_formats():
    gta = load_config(CONFIG_DIR / "gta5_to_cityscapes.yaml")
    shift = load_config(CONFIG_DIR / "shift_to_cityscapes.yaml")
    assert (gta.data.source_format, gta.data.target_format) == ("gta5", "cityscapes")
    assert (shift.data.source_format, shift.data.target_format) == ("shift", "cityscapes")
    assert gta.train.amp and shift.train.amp


def test_bad_key_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text((CONFIG_DIR / "toy.yaml").read_text() + "  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'train.learning_rate'"):
        load_config(path)
    with pytest.raises(ConfigError, match="unknown key 'train.stepz'"):
        load_config(CONFIG_DIR / "toy.yaml", ["train.stepz=3"])


def test_seg_loss_without_guide_says_how_to_train_one():
    config = load_config(CONFIG_DIR / "toy.yaml", ["guide.checkpoint=null"])
    with pytest.raises(ConfigError, match="semguard segmenter train .*--role guide"):
        check_config(config)


def _differences(a, b) -> set[str]:
    """Dotted keys whose values differ between two config trees."""
    from semguard.config import config_to_dict

    def flat(node, key=""):
        if not isinstance(node, dict):
            return {key: node}
        out = {}
        for name, value in node.items():
            out.update(flat(value, f"{key}.{name}" if key else name))
        return out

    left, right = flat(config_to_dict(a)), flat(config_to_dict(b))
    return {key for key in set(left) | set(right) if left.get(key) != right.get(key)}


def test_issue_12_ablations_change_only_their_own_keys():
    full = load_config(CONFIG_DIR / "toy_v1.yaml")
    expected = {
        "toy_segdisc.yaml": {"model.discriminator.kind"},
        "toy_layout.yaml": {"data.pairing", "model.discriminator.agreement_mask"},
        "toy_guide_real.yaml": {"guide.checkpoint", "guide.perturb"},
    }
    for name, keys in expected.items():
        config = load_config(CONFIG_DIR / name)
        changed = _differences(full, config) - {"train.out"}
        assert keys <= changed, name
        # equal budgets: nothing but the option's own section changes
        others = {k for k in changed if not k.startswith(("model.discriminator.", "data.pairing", "guide."))}
        assert not others, f"{name} also changes {sorted(others)}"
        assert config.train.out != full.train.out
    v2 = load_config(CONFIG_DIR / "toy.yaml")
    assert v2.train.steps == full.train.steps and v2.data.crop == full.data.crop and v2.train.out != full.train.out


def test_gpu_configs_use_the_segmentation_discriminator():
    for name in ("gta5_to_cityscapes.yaml", "shift_to_cityscapes.yaml"):
        config = load_config(CONFIG_DIR / name)
        assert config.model.discriminator.kind == "segmentation" and config.data.target_format == "cityscapes"
