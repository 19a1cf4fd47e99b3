"""The config tree: round trip, and each error a user can make gives its clear message."""

from __future__ import annotations

import pytest
import yaml

from semguard.config import (
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from semguard.errors import ConfigError


def test_round_trip_through_yaml(tmp_path):
    config = load_config(None, ["train.steps=37", "data.crop=[64,128]", "loss.seg=0.5", "guide.checkpoint=g.pt"])
    path = tmp_path / "resolved.yaml"
    save_config(config, path)
    again = load_config(path)
    assert again == config
    assert again.train.steps == 37
    assert again.data.crop == (64, 128)
    assert again.guide.checkpoint == "g.pt"
    assert config_from_dict(config_to_dict(config)) == config


def test_defaults_are_frozen():
    config = RunConfig()
    with pytest.raises(Exception):
        config.train.steps = 5  # type: ignore[misc]


def test_unknown_key_names_file_key_and_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  stpes: 10\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "train.stpes" in message
    assert "steps" in message and "lr_g" in message


def test_unknown_section(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trian:\n  steps: 10\n")
    with pytest.raises(ConfigError, match=r"unknown key 'trian'.*valid keys: data, model, loss, guide, train"):
        load_config(path)


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("train:\n  steps: ten\n", "train.steps", "int"),
        ("train:\n  steps: 1.5\n", "train.steps", "int"),
        ("data:\n  hflip: 'yes'\n", "data.hflip", "bool"),
        ("data:\n  crop: [64]\n", "data.crop", "tuple"),
        ("loss:\n  seg: true\n", "loss.seg", "float"),
    ],
)
def test_wrong_type_names_key_value_and_type(tmp_path, text, key, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"'{key}'" in message and expected in message and str(path) in message


def test_literal_lists_valid_values(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("loss:\n  gan_mode: wasserstein\n")
    with pytest.raises(ConfigError, match=r"'loss.gan_mode'.*'hinge', 'lsgan', 'nonsaturating'"):
        load_config(path)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  steps: [1, 2\n  lr_g: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "malformed YAML" in str(info.value) and "line" in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("no/such/config.yaml")


def test_top_level_must_be_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.steps", "section.key=value"),
        ("train.stpes=3", "unknown key 'train.stpes'"),
        ("train.steps.x=3", "not a section"),
        ("train.steps=[1,", "not valid YAML"),
        ("train.steps=abc", "'train.steps'"),
        (".steps=3", "dotted key"),
    ],
)
def test_bad_overrides(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert fragment in str(info.value)


def test_override_does_not_mutate_input():
    data = {"train": {"steps": 5}}
    out = apply_overrides(data, ["train.steps=9"])
    assert data == {"train": {"steps": 5}} and out["train"]["steps"] == 9


def test_optional_values_accept_null(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"resize": None}, "guide": {"checkpoint": None}}))
    config = load_config(path)
    assert config.data.resize is None and config.guide.checkpoint is None


def test_every_range_lives_on_its_field_and_is_checked_on_configs_built_in_code():
    import dataclasses

    from semguard.config import GENERATOR_TERMS, LossConfig, RunConfig, TrainConfig
    from semguard.config_checks import check_config

    ranged_fields = {f.name for f in dataclasses.fields(TrainConfig) if "range" in f.metadata}
    assert {"steps", "lr_g", "betas", "keep_last"} <= ranged_fields and "out" not in ranged_fields
    # the generator's terms are LossConfig's `term` fields, in declaration order
    assert GENERATOR_TERMS == ("gan", "gan_patch", "nce", "nce_identity", "seg", "box", "attr")
    assert "gan_mode" not in GENERATOR_TERMS and "seg_target" not in GENERATOR_TERMS
    for train, key in ((TrainConfig(steps=10**30), "train.steps"), (TrainConfig(betas=(0.5, 1.0)), r"train.betas\[1\]"),
                       (TrainConfig(lr_g=0.0), "train.lr_g")):
        with pytest.raises(ConfigError, match=key):
            check_config(dataclasses.replace(RunConfig(), train=train))
    with pytest.raises(ConfigError, match=r"loss.box_class_weights.car' is -1"):
        check_config(dataclasses.replace(RunConfig(), loss=LossConfig(box_class_weights={"car": -1.0})))
    with pytest.raises(ConfigError, match="must be divisible by 8"):
        check_config(dataclasses.replace(RunConfig(), model=dataclasses.replace(RunConfig().model, n_downsample=3),
                                         data=dataclasses.replace(RunConfig().data, crop=(60, 128))))
