"""The translator trainer on tiny folder data sets (32x64 images, 8-channel models, CPU).

Covers: outputs of a run, save -> load -> identical outputs, exact resume after a kill,
NaN stop with a loadable last checkpoint, refusal of an existing run, of a missing guide
and of the judge, frozen vs co-trained guide, the CLI, and a 2-process gloo DDP run.
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from semguard.config import load_config
from semguard.data.folder import write_dataset_info, write_sample
from semguard.data.sample import Box, Sample
from semguard.errors import ConfigError, SemguardError
from semguard.checkpoints import latest_step_checkpoint, load_checkpoint, load_translator
from semguard.train.trainer import NonFiniteLossError, Trainer, train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "toy_v1.yaml"  # the plain semguard; toy.yaml's options have their own test below
HEIGHT, WIDTH = 32, 64


def _write_domain(root: Path, count: int, seed: int, brightness: int) -> None:
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = np.full((HEIGHT, WIDTH), 10, np.uint8)          # sky
        label[HEIGHT // 3:] = 2                                  # building
        label[2 * HEIGHT // 3:] = 0                              # road
        label[HEIGHT // 2:, 16:32] = 13                          # a car
        label[0, 0] = 255
        instances = np.zeros((HEIGHT, WIDTH), np.int32)
        instances[HEIGHT // 2:, 16:32] = 1
        noise = rng.integers(0, 60, (HEIGHT, WIDTH, 3))
        image = np.clip(brightness + noise + label[..., None] * 3, 0, 255).astype(np.uint8)
        boxes = [Box((16.0, HEIGHT / 2, 32.0, float(HEIGHT)), 13, 1),
                 Box((40.0, 4.0, 44.0, 12.0), 6, 0, {"state": "red"})]
        write_sample(root, Sample(image=image, label=label, instances=instances, boxes=boxes, name=f"frame_{index:03d}"))
    write_dataset_info(root, domain=root.name)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy_data")
    _write_domain(root / "source", 6, seed=0, brightness=150)
    _write_domain(root / "target", 6, seed=1, brightness=40)
    return root


@pytest.fixture(scope="module")
def guide_path(tmp_path_factory) -> Path:
    """A tiny, untrained guide segmenter checkpoint (role guide)."""
    from semguard.models.segmenter import build_segmenter
    from semguard.checkpoints import save_segmenter

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("guide") / "guide.pt"
    save_segmenter(path, build_segmenter("unet", "resnet18", encoder_depth=3, decoder_channels=(16, 8, 8)), role="guide")
    return path


def _config(data_root: Path, out: Path, *extra: str):
    overrides = [
        f"data.source={data_root / 'source'}", f"data.target={data_root / 'target'}", f"data.crop=[{HEIGHT},{WIDTH}]",
        "data.batch_size=2", "data.workers=0", "data.small_box_crop_prob=0.5",
        "model.base_channels=8", "model.n_blocks=2", "model.discriminator.base_channels=8",
        "model.discriminator.n_scales=2", "model.discriminator.n_layers=2",
        "loss.nce_layers=[0,1,2,4]", "loss.nce_patches=16", "loss.nce_mlp_channels=16",
        "loss.seg=0.0", "loss.box=0.0", "guide.checkpoint=null",
        f"train.out={out}", "train.steps=6", "train.log_every=2", "train.sample_every=3",
        "train.checkpoint_every=2", "train.keep_last=2", "train.sample_count=2", "train.ema_decay=0.9",
        "train.device=cpu", "train.grad_clip=5.0",
    ]
    return load_config(CONFIG, overrides + list(extra))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(config, **kwargs):
    return train(config, show_progress=False, **kwargs)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    torch.set_num_threads(1)
    result = _run(_config(data_root, out))
    return out, result


def test_a_run_writes_config_log_samples_and_checkpoints(finished_run):
    out, result = finished_run
    assert result.step == 6 and result.final_checkpoint == out / "final.pt"
    assert load_config(out / "config.yaml").train.steps == 6
    records = _records(out)
    assert [r["step"] for r in records] == [2, 4, 6]
    assert set(records[-1]["terms"]) == {"gan", "nce", "d", "loss_g"}
    assert all(math.isfinite(v) for r in records for v in r["terms"].values())
    assert records[0]["images_per_s"] > 0 and records[-1]["lr_g"] == 0.0   # linear decay reaches 0
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_00000003.png", "step_00000006.png"]
    from PIL import Image

    grid = np.asarray(Image.open(out / "samples" / "step_00000006.png"))
    assert grid.shape == (2 * HEIGHT + 2, 3 * WIDTH + 4, 3)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000004.pt", "step_00000006.pt"]
    final = load_checkpoint(out / "final.pt", kind="translator")
    assert final["step"] == 6 and final["config"]["train"]["steps"] == 6
    assert {"generator", "generator_ema", "discriminator", "patch_sampler", "optimizers", "rng", "loader"} <= set(final)
    assert final["loader"]["batches"] == 6


def test_save_load_gives_identical_outputs(data_root, tmp_path):
    from semguard.config import config_from_dict
    from semguard.models import build_generator

    config = _config(data_root, tmp_path / "run", "train.steps=2")
    trainer = Trainer(config, show_progress=False)
    try:
        trainer.run()
        checkpoint = load_checkpoint(tmp_path / "run" / "final.pt", kind="translator")
        rebuilt, spec = build_generator(config_from_dict(checkpoint["config"]).model)
        rebuilt.load_state_dict(checkpoint["generator_ema"])
        rebuilt.eval()
        torch.manual_seed(1)
        image = torch.rand(2, 3, HEIGHT, WIDTH) * 2 - 1
        label = torch.randint(0, 19, (2, HEIGHT, WIDTH))
        from semguard.models.conditioning import build_conditioning

        condition = build_conditioning(label, torch.zeros_like(label), [[], []], spec)
        # the same weights in the trainer's memory layout give the same bits (train.channels_last auto
        # on CPU: the generator in NCHW, the discriminator in channels-last)
        assert trainer.channels_last and not trainer.generator_channels_last
        assert _conv_weight(trainer.discriminator).is_contiguous(memory_format=torch.channels_last)
        assert not _conv_weight(trainer.generator).is_contiguous(memory_format=torch.channels_last)
        layout = torch.contiguous_format
        rebuilt = rebuilt.to(memory_format=layout)
        image, condition = image.contiguous(memory_format=layout), condition.contiguous(memory_format=layout)
        with torch.no_grad():
            assert torch.equal(rebuilt(image, condition), trainer.ema.model(image, condition))
    finally:
        trainer.close()


def _conv_weight(module: torch.nn.Module) -> torch.Tensor:
    return next(p for p in module.parameters() if p.ndim == 4 and p.shape[-1] > 1)


@pytest.mark.parametrize("setting, generator_nhwc, others_nhwc", [("true", True, True), ("false", False, False)])
def test_channels_last_true_and_false_set_every_network(data_root, tmp_path, setting, generator_nhwc, others_nhwc):
    config = _config(data_root, tmp_path / "run", f"train.channels_last={setting}")
    trainer = Trainer(config, show_progress=False)
    try:
        assert (trainer.generator_channels_last, trainer.channels_last) == (generator_nhwc, others_nhwc)
        assert _conv_weight(trainer.generator).is_contiguous(memory_format=torch.channels_last) == generator_nhwc
        assert _conv_weight(trainer.discriminator).is_contiguous(memory_format=torch.channels_last) == others_nhwc
        source, _ = trainer.stream.next()
        image = trainer._to_device(source).image
        assert image.is_contiguous(memory_format=torch.channels_last) == generator_nhwc
    finally:
        trainer.close()


def test_channels_last_refuses_other_values(data_root, tmp_path):
    with pytest.raises(ConfigError, match="train.channels_last"):
        _config(data_root, tmp_path / "run", "train.channels_last=sideways")


def test_resume_after_a_kill_equals_an_uninterrupted_run(finished_run, data_root, tmp_path, monkeypatch):
    reference_out, _ = finished_run
    out = tmp_path / "killed"
    config = _config(data_root, out)
    original_step = Trainer.train_step

    def killed_at_step_5(self):
        if self.step == 4:   # steps 1..4 done, step-4 checkpoint written: the process dies in step 5
            raise KeyboardInterrupt
        return original_step(self)

    monkeypatch.setattr(Trainer, "train_step", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        _run(config)
    assert not (out / "final.pt").exists()
    monkeypatch.setattr(Trainer, "train_step", original_step)
    with pytest.raises(SemguardError, match="already holds a training run; pass --resume"):
        _run(config)
    result = _run(config, resume=True)
    assert result.step == 6
    resumed, reference = load_checkpoint(out / "final.pt"), load_checkpoint(reference_out / "final.pt")
    for part in ("generator", "generator_ema", "discriminator", "patch_sampler"):
        for name, value in reference[part].items():
            assert torch.equal(resumed[part][name], value), f"{part}.{name} differs after resume"
    for name in ("generator", "discriminator"):
        moments = reference["optimizers"][name]["state"]
        for index, state in moments.items():
            assert torch.equal(resumed["optimizers"][name]["state"][index]["exp_avg"], state["exp_avg"])
    # the log holds one history: the resumed run rewrote nothing twice
    assert [r["step"] for r in _records(out)] == [2, 4, 6]
    assert _records(out)[-1]["terms"] == pytest.approx(_records(reference_out)[-1]["terms"])


def test_nan_loss_stops_with_the_term_and_step_and_keeps_a_good_checkpoint(data_root, tmp_path, monkeypatch):
    from semguard.train.objective import GeneratorObjective

    original_forward = GeneratorObjective.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        translated, terms = original_forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            terms["nce"] = terms["nce"] * float("nan")
        return translated, terms

    monkeypatch.setattr(GeneratorObjective, "forward", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"loss term 'nce' is nan at step 3; .*step_00000002\.pt"):
        _run(_config(data_root, out))
    last = latest_step_checkpoint(out / "checkpoints")
    assert last.name == "step_00000002.pt" and not (out / "final.pt").exists()
    checkpoint = load_checkpoint(last, kind="translator")
    assert checkpoint["step"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["generator"].values() if v.is_floating_point())


def test_seg_or_box_loss_without_guide_fails_with_the_command_to_run(data_root, tmp_path):
    with pytest.raises(ConfigError, match=r"guide\.checkpoint is not set.*semguard segmenter train .*--role guide"):
        _run(_config(data_root, tmp_path / "r", "loss.seg=1.0"))
    with pytest.raises(ConfigError, match="box_backbone 'guide'"):
        _run(_config(data_root, tmp_path / "r", "loss.box=1.0"))


def test_the_judge_is_refused_as_guide(data_root, tmp_path):
    from semguard.models.segmenter import build_segmenter
    from semguard.checkpoints import save_segmenter

    judge = tmp_path / "judge.pt"
    save_segmenter(judge, build_segmenter("unet", "resnet18", encoder_depth=3, decoder_channels=(16, 8, 8)), role="judge")
    with pytest.raises(ConfigError, match="judge"):
        _run(_config(data_root, tmp_path / "r", "loss.seg=1.0", f"guide.checkpoint={judge}"))
    assert not (tmp_path / "r").exists()


def test_attribute_term_reads_the_guide_crop_classifier_and_is_weighted(data_root, tmp_path):
    from semguard.checkpoints import save_crop_classifier
    from semguard.models.crop_classifier import CropClassifier

    torch.manual_seed(0)
    crop_guide = tmp_path / "crop_guide.pt"
    save_crop_classifier(crop_guide, CropClassifier([{"class_id": 6, "attribute": "state",
                                                       "values": ["amber", "green", "red"]}], crop_size=12, channels=4))
    out = tmp_path / "attr"
    _run(_config(data_root, out, "loss.attr=2.0", f"guide.crop_classifier={crop_guide}", "train.steps=2",
                 "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0"))
    for record in _records(out):   # the fixture's red light is in every crop
        terms = record["terms"]
        assert terms["attr"] > 0
        assert terms["loss_g"] == pytest.approx(terms["gan"] + terms["nce"] + 2.0 * terms["attr"], rel=1e-5)
    # eval refuses to report attributes with the classifier the translator trained against, or a copy of it
    from semguard.metrics.commands import _refuse_trained_against

    copy = tmp_path / "copy.pt"
    copy.write_bytes(crop_guide.read_bytes())
    for reader in (crop_guide, copy):
        with pytest.raises(ConfigError, match="trained against"):
            _refuse_trained_against(str(out / "final.pt"), str(reader))
    other = tmp_path / "other.pt"
    save_crop_classifier(other, CropClassifier([{"class_id": 6, "attribute": "state",
                                                  "values": ["amber", "green", "red"]}], crop_size=12, channels=8))
    _refuse_trained_against(str(out / "final.pt"), str(other))   # another classifier: allowed
    with pytest.raises(ConfigError, match="train-crops"):
        _run(_config(data_root, tmp_path / "none", "loss.attr=1.0"))
    assert not (tmp_path / "none").exists()
    with pytest.raises(SemguardError, match="not a crop classifier"):
        _run(_config(data_root, tmp_path / "wrong", "loss.attr=1.0", f"guide.crop_classifier={out / 'final.pt'}"))


@pytest.mark.parametrize("mode", ["frozen", "cotrain"])
def test_seg_and_box_losses_with_a_guide(data_root, guide_path, tmp_path, mode):
    out = tmp_path / mode
    _run(_config(data_root, out, "loss.seg=1.0", "loss.box=1.0", f"guide.checkpoint={guide_path}",
                 f"guide.mode={mode}", "train.steps=2", "train.sample_every=0", "train.checkpoint_every=0"))
    terms = _records(out)[-1]["terms"]
    assert {"gan", "nce", "seg", "box", "d"} <= set(terms)
    assert ("guide_seg" in terms) == (mode == "cotrain")
    final = load_checkpoint(out / "final.pt")
    original = load_checkpoint(guide_path)["state_dict"]
    if mode == "frozen":
        assert "guide" not in final
    else:
        changed = any(not torch.equal(final["guide"][name], value) for name, value in original.items()
                      if value.is_floating_point())
        assert changed and "guide" in final["optimizers"]


def test_cli_train_and_resume(data_root, tmp_path):
    from semguard.cli import main

    out = tmp_path / "cli"
    config_path = tmp_path / "run.yaml"
    from semguard.config import save_config

    save_config(_config(data_root, tmp_path / "ignored", "train.steps=2"), config_path)
    assert main(["train", "--config", str(config_path), "--out", str(out), "--no-progress"]) == 0
    assert (out / "final.pt").exists() and (out / "config.yaml").exists()
    assert main(["train", "--config", str(config_path), "--out", str(out), "--no-progress"]) == 2   # refuses to clobber
    assert main(["train", "--config", str(config_path), "--out", str(out), "--no-progress", "--resume",
                 "--set", "train.steps=3"]) == 0
    assert load_checkpoint(out / "final.pt")["step"] == 3
    assert main(["train", "--config", str(config_path), "--set", "train.stepz=3"]) == 2


# ---------------------------------------------------------------------- DDP (2 processes, gloo)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, config) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    trainer = Trainer(config, show_progress=False)
    try:
        assert trainer.context.world_size == world_size
        trainer.run()
        state = {f"generator.{k}": v for k, v in trainer.generator.state_dict().items()}
        state.update({f"discriminator.{k}": v for k, v in trainer.discriminator.state_dict().items()})
        state.update({f"ema.{k}": v for k, v in trainer.ema.state_dict().items()})
        if trainer.texture_discriminator is not None:
            state.update({f"texture.{k}": v for k, v in trainer.texture_discriminator.state_dict().items()})
        torch.save(state, Path(config.train.out) / f"rank{rank}_weights.pt")
    finally:
        trainer.close()


@pytest.mark.ddp
def test_two_process_gloo_ddp_keeps_ranks_identical(data_root, tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "ddp"
    config = _config(data_root, out, "train.steps=3", "train.sample_every=0", "train.checkpoint_every=0",
                     "train.log_every=1")
    mp.spawn(_ddp_worker, args=(2, _free_port(), config), nprocs=2, join=True)
    rank0 = torch.load(out / "rank0_weights.pt", weights_only=True)
    rank1 = torch.load(out / "rank1_weights.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), f"{name} differs between ranks"
    records = _records(out)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(v) for r in records for v in r["terms"].values())
    assert records[0]["images_per_s"] > 0
    final = load_checkpoint(out / "final.pt")
    assert final["world_size"] == 2 and len(final["rng"]) == 2   # every rank's RNG, for an exact resume
    assert torch.equal(final["generator"][next(iter(final["generator"]))],
                       rank0[f"generator.{next(iter(final['generator']))}"])


def test_ema_follows_the_formula_with_warm_up():
    from semguard.train.ema import ModelEma

    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEma(model, decay=0.999)
    assert ema.decay_at(1) == pytest.approx(2 / 11) and ema.decay_at(10**6) == 0.999
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=1)
    assert torch.allclose(ema.model.weight, torch.full_like(model.weight, 1 - 2 / 11))
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_linear_decay_schedule():
    from semguard.train.schedule import lr_factor

    factor = lr_factor("linear_decay", steps=10, decay_start=0.5)
    assert [factor(s) for s in (0, 4, 5, 6, 9, 10)] == pytest.approx([1, 1, 1, 0.8, 0.2, 0])
    assert lr_factor("constant", 10, 0.5)(9) == 1.0


def test_a_broken_source_set_is_refused_before_training(data_root, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(data_root / "source", broken)
    (broken / "labels" / "frame_001.png").unlink()                      # image without label
    (broken / "images" / "frame_002.png").write_bytes(b"\x89PNG\r\n")   # truncated image
    config = _config(data_root, tmp_path / "run", f"data.source={broken}")
    with pytest.raises(SemguardError) as info:
        _run(config)
    message = str(info.value)
    assert "frame_001" in message and "semguard data check" in message
    assert not (tmp_path / "run" / "final.pt").exists()


# ---------------------------------------------------------------------- issue 12: label-aware adversary,
# layout-matched pairs, guides that read real images

SEGMENTATION_D = ("model.discriminator.kind=segmentation", "model.discriminator.seg_base_channels=4",
                  "model.discriminator.seg_levels=2")


@pytest.fixture(scope="module")
def target_guide_path(tmp_path_factory, data_root) -> Path:
    """A second tiny guide, recorded as trained on the target labels of the target images."""
    from semguard.models.segmenter import build_segmenter
    from semguard.checkpoints import save_segmenter

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("guide_target") / "guide_real.pt"
    save_segmenter(path, build_segmenter("unet", "resnet18", encoder_depth=3, decoder_channels=(16, 8, 8)),
                   role="guide", data={"root": str(data_root / "target"), "format": "folder", "domain": "target"})
    return path


NEW_OPTIONS = {
    "segmentation+texture+matched": (*SEGMENTATION_D, "model.discriminator.texture_patch=true",
                                     "model.discriminator.n_scales=1", "data.pairing=layout_matched",
                                     "data.pairing_candidates=3", "data.pairing_grid=8",
                                     "model.discriminator.agreement_mask=true"),
    "matched-mask+ensemble+perturb": ("data.pairing=layout_matched", "data.pairing_candidates=3",
                                      "model.discriminator.agreement_mask=true", "loss.seg=1.0", "guide.perturb=0.3",
                                      "GUIDE", "ENSEMBLE"),
    "segmentation+cotrain_target": (*SEGMENTATION_D, "loss.seg=1.0", "guide.mode=cotrain_target", "TARGET_GUIDE"),
    # issue 28: the seg term as a constraint (its multiplier is checkpoint state) and the worst guide's reading
    "seg_target+ensemble_max": (*SEGMENTATION_D, "loss.seg=1.0",
                                "loss.seg_target=0.05", "loss.seg_target_rate=0.5", "guide.ensemble_reduce=max",
                                "GUIDE", "ENSEMBLE"),
    # issue 28: the projection discriminator (class embeddings) with the agreement weight of matched pairs
    "projection+matched-mask": ("model.discriminator.kind=projection", "model.discriminator.n_scales=1",
                                "data.pairing=layout_matched", "data.pairing_candidates=3", "data.pairing_grid=8",
                                "model.discriminator.agreement_mask=true"),
}


def _options(name: str, guide_path: Path, target_guide_path: Path) -> list[str]:
    replace = {"GUIDE": f"guide.checkpoint={guide_path}", "ENSEMBLE": f"guide.ensemble=[{target_guide_path}]",
               "TARGET_GUIDE": f"guide.checkpoint={target_guide_path}"}
    return [replace.get(option, option) for option in NEW_OPTIONS[name]]


def _assert_same_state(resumed: dict, reference: dict) -> None:
    for part in ("generator", "generator_ema", "discriminator", "patch_sampler", "texture_discriminator", "guide"):
        assert (part in resumed) == (part in reference), part
        for name, value in (reference.get(part) or {}).items():
            assert torch.equal(resumed[part][name], value), f"{part}.{name} differs after resume"
    for name, optimizer in reference["optimizers"].items():
        for index, state in optimizer["state"].items():
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(resumed["optimizers"][name]["state"][index][key], state[key]), f"{name} {key}"


@pytest.mark.parametrize("name", sorted(NEW_OPTIONS))
def test_every_new_option_resumes_bitwise(name, data_root, guide_path, target_guide_path, tmp_path, monkeypatch):
    extra = _options(name, guide_path, target_guide_path) + ["train.sample_every=0"]
    reference_out, out = tmp_path / "reference", tmp_path / "killed"
    _run(_config(data_root, reference_out, *extra))
    original_step = Trainer.train_step

    def killed_at_step_5(self):
        if self.step == 4:
            raise KeyboardInterrupt
        return original_step(self)

    monkeypatch.setattr(Trainer, "train_step", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        _run(_config(data_root, out, *extra))
    monkeypatch.setattr(Trainer, "train_step", original_step)
    _run(_config(data_root, out, *extra), resume=True)
    _assert_same_state(load_checkpoint(out / "final.pt"), load_checkpoint(reference_out / "final.pt"))
    assert _records(out)[-1]["terms"] == _records(reference_out)[-1]["terms"]


def test_new_options_log_their_terms_and_record_the_guides(data_root, guide_path, target_guide_path, tmp_path):
    out = tmp_path / "run"
    _run(_config(data_root, out, *_options("segmentation+texture+matched", guide_path, target_guide_path),
                 "train.steps=2", "train.sample_every=0", "train.checkpoint_every=0", "loss.gan_patch=0.5"))
    terms = _records(out)[-1]["terms"]
    assert {"gan", "gan_patch", "d", "d_patch", "pair_agreement", "pair_match_rate"} <= set(terms)
    assert 0.0 <= terms["pair_match_rate"] <= 1.0 and 0.0 <= terms["pair_agreement"] <= 1.0
    assert terms["loss_g"] == pytest.approx(terms["gan"] + 0.5 * terms["gan_patch"] + terms["nce"])
    final = load_checkpoint(out / "final.pt")
    assert final["discriminator"]["head.weight"].shape[0] == 20 and "texture_discriminator" in final

    out = tmp_path / "guides"
    _run(_config(data_root, out, *_options("matched-mask+ensemble+perturb", guide_path, target_guide_path),
                 "train.steps=1", "train.sample_every=0", "train.checkpoint_every=0"))
    guides = load_checkpoint(out / "final.pt")["guides"]
    assert [g["checkpoint"] for g in guides] == [str(guide_path), str(target_guide_path)]
    assert guides[1]["domain"] == "target" and guides[1]["data"]["root"] == str(data_root / "target")


def test_the_seg_multiplier_is_logged_and_moves_with_the_guides_reading(data_root, guide_path, target_guide_path,
                                                                        tmp_path):
    """The weight each step used is logged; it follows ConstraintMultiplier's rule from the logged seg term."""
    import math

    out = tmp_path / "run"
    _run(_config(data_root, out, *_options("seg_target+ensemble_max", guide_path, target_guide_path),
                 "train.steps=3", "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0"))
    records = [record["terms"] for record in _records(out)]
    assert records[0]["seg_weight"] == 1.0                      # the starting weight is loss.seg
    average = records[0]["seg"]
    expected = math.exp(0.5 * (average - 0.05))
    assert records[1]["seg_weight"] == pytest.approx(expected, rel=1e-9)
    average = 0.9 * average + 0.1 * records[1]["seg"]
    assert records[2]["seg_weight"] == pytest.approx(expected * math.exp(0.5 * (average - 0.05)), rel=1e-9)
    assert records[0]["seg"] > 0.05 and records[2]["seg_weight"] > records[1]["seg_weight"] > 1.0
    for terms in records:   # loss_g weights the seg term by the step's multiplier
        assert terms["loss_g"] == pytest.approx(terms["gan"] + terms["nce"] + terms["seg_weight"] * terms["seg"])
    assert load_checkpoint(out / "final.pt")["seg_multiplier"]["value"] > records[2]["seg_weight"]


def test_a_target_without_labels_is_refused_with_the_option_to_use_instead(data_root, tmp_path):
    import shutil

    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(data_root / "target", unlabelled)
    shutil.rmtree(unlabelled / "labels")
    for extra in (SEGMENTATION_D, ("data.pairing=layout_matched",)):
        config = _config(data_root, tmp_path / "run", f"data.target={unlabelled}", *extra)
        with pytest.raises(ConfigError, match=r"needs a labelled target set.*kind: patch, data\.pairing: random"):
            _run(config)
    with pytest.raises(ConfigError, match="labels_required: false"):
        _run(_config(data_root, tmp_path / "run", *SEGMENTATION_D, "data.target_options={labels_required: false}"))
    assert not (tmp_path / "run").exists()
    _run(_config(data_root, tmp_path / "patch", f"data.target={unlabelled}", "train.steps=1",
                 "train.sample_every=0", "train.checkpoint_every=0"))   # the patch adversary needs images only


def test_a_projection_discriminator_trains_and_needs_target_labels(data_root, tmp_path):
    import shutil

    projection = ("model.discriminator.kind=projection", "model.discriminator.n_scales=1")
    result = _run(_config(data_root, tmp_path / "run", *projection, "train.steps=2", "train.sample_every=0",
                          "train.checkpoint_every=0"))
    records = _records(tmp_path / "run")
    assert result.step == 2 and all(math.isfinite(r["terms"]["d"]) and math.isfinite(r["terms"]["gan"]) for r in records)
    state = load_checkpoint(tmp_path / "run" / "final.pt")["discriminator"]
    assert any(key.startswith("embedding.0.") for key in state)   # the class embeddings are saved
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(data_root / "target", unlabelled)
    shutil.rmtree(unlabelled / "labels")
    with pytest.raises(ConfigError, match=r"model\.discriminator\.kind: projection needs a labelled target set"):
        _run(_config(data_root, tmp_path / "refused", f"data.target={unlabelled}", *projection))


def test_check_run_is_the_one_pass_before_anything_is_built(data_root, tmp_path, monkeypatch):
    """config_checks.check_run refuses on its own (nothing written), and `semguard train` and train()
    both go through it exactly once: the trainer does not check the files a second time."""
    import shutil
    from semguard import config_checks
    from semguard.cli import main
    from semguard.config import save_config
    from semguard.train import trainer as trainer_module

    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(data_root / "target", unlabelled)
    shutil.rmtree(unlabelled / "labels")
    with pytest.raises(ConfigError, match=r"needs a labelled target set"):
        config_checks.check_run(_config(data_root, tmp_path / "refused", f"data.target={unlabelled}", *SEGMENTATION_D))
    with pytest.raises(SemguardError, match=r"data\.source .*does not exist"):
        config_checks.check_run(_config(data_root, tmp_path / "refused", f"data.source={tmp_path / 'nowhere'}"))
    assert not (tmp_path / "refused").exists()

    calls = []
    counting = config_checks.check_run
    monkeypatch.setattr(trainer_module, "check_run", lambda config, **kw: (calls.append(config), counting(config, **kw)))
    monkeypatch.setattr(config_checks, "require_usable", lambda *a, **k: calls.append("frames read"))
    _run(_config(data_root, tmp_path / "python", "train.steps=1", "train.sample_every=0", "train.checkpoint_every=0"))
    assert len(calls) == 2 and calls[1] == "frames read"   # check_run once; the source's frames once (no target labels used)
    calls.clear()
    config = tmp_path / "run.yaml"
    save_config(_config(data_root, tmp_path / "cli", "train.steps=1", "train.sample_every=0",
                        "train.checkpoint_every=0", *SEGMENTATION_D), config)
    assert main(["train", "--config", str(config), "--no-progress"]) == 0
    assert len(calls) == 3 and calls.count("frames read") == 2   # check_run once; the source's and the target's frames
    assert (tmp_path / "cli" / "final.pt").exists()


def test_inconsistent_new_options_are_refused(data_root, guide_path, tmp_path):
    from semguard.models.segmenter import build_segmenter
    from semguard.checkpoints import save_segmenter

    with pytest.raises(ConfigError, match="agreement_mask needs data.pairing: layout_matched"):
        _run(_config(data_root, tmp_path / "r", "model.discriminator.agreement_mask=true"))
    with pytest.raises(ConfigError, match="texture_patch"):
        _run(_config(data_root, tmp_path / "r", "model.discriminator.texture_patch=true"))
    with pytest.raises(ConfigError, match="patch, projection, segmentation"):
        _run(_config(data_root, tmp_path / "r", "model.discriminator.kind=oasis"))
    judge = tmp_path / "judge.pt"
    save_segmenter(judge, build_segmenter("unet", "resnet18", encoder_depth=3, decoder_channels=(16, 8, 8)), role="judge")
    with pytest.raises(ConfigError, match="judge"):
        _run(_config(data_root, tmp_path / "r", "loss.seg=1.0", f"guide.checkpoint={guide_path}",
                     f"guide.ensemble=[{judge}]"))
    assert not (tmp_path / "r").exists()


@pytest.mark.ddp
def test_two_process_ddp_with_a_segmentation_and_a_texture_discriminator(data_root, tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "ddp_seg"
    config = _config(data_root, out, *NEW_OPTIONS["segmentation+texture+matched"], "train.steps=2",
                     "train.sample_every=0", "train.checkpoint_every=0", "train.log_every=1")
    mp.spawn(_ddp_worker, args=(2, _free_port(), config), nprocs=2, join=True)
    rank0 = torch.load(out / "rank0_weights.pt", weights_only=True)
    rank1 = torch.load(out / "rank1_weights.pt", weights_only=True)
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), f"{name} differs between ranks"
    final = load_checkpoint(out / "final.pt")
    assert "texture_discriminator" in final and {"d", "d_patch", "pair_match_rate"} <= set(_records(out)[-1]["terms"])


def test_a_guide_trained_on_target_labels_is_accepted_and_its_domain_recorded(data_root, tmp_path):
    from semguard.cli import main

    guide = tmp_path / "guide_real.pt"
    assert main(["segmenter", "train", "--role", "guide", "--data", str(data_root / "target"), "--out", str(guide),
                 "--steps", "1", "--batch-size", "2", "--crop", f"{HEIGHT}x{WIDTH}", "--encoder-depth", "3",
                 "--quiet"]) == 0
    assert load_checkpoint(guide)["data"]["domain"] == "target"      # from the set's dataset.json
    out = tmp_path / "run"
    _run(_config(data_root, out, "loss.seg=1.0", f"guide.checkpoint={guide}", "guide.perturb=0.2", "train.steps=1",
                 "train.sample_every=0", "train.checkpoint_every=0"))
    record = load_checkpoint(out / "final.pt")["guides"][0]
    assert record["role"] == "guide" and record["domain"] == "target" and record["checkpoint"] == str(guide)


def test_the_shipped_semguard_config_trains_with_every_label_aware_option(data_root, tmp_path):
    """configs/toy.yaml: segmentation discriminator + texture patch, layout-matched pairs, SPADE v3."""
    config = load_config(CONFIG.parent / "toy.yaml", [
        f"data.source={data_root / 'source'}", f"data.target={data_root / 'target'}", f"data.crop=[{HEIGHT},{WIDTH}]",
        "data.batch_size=2", "model.base_channels=8", "model.n_blocks=1", "model.discriminator.seg_base_channels=8",
        "model.discriminator.base_channels=8", "loss.nce_layers=[0,1,2]", "loss.nce_patches=16",
        "loss.seg=0.0", "loss.box=0.0", "loss.seg_target=null", "guide.checkpoint=null", "guide.ensemble=[]",
        "guide.ensemble_reduce=mean", "guide.perturb=0.0", f"train.out={tmp_path / 'run'}", "train.steps=2", "train.log_every=1", "train.sample_every=0",
        "train.checkpoint_every=0", "train.device=cpu"])
    assert config.model.discriminator.kind == "segmentation" and config.data.pairing == "layout_matched"
    assert config.model.spade_version == 3
    shipped = load_config(CONFIG.parent / "toy.yaml")   # issue 28: a bounded adversary, a constraint, three guides
    assert shipped.model.discriminator.seg_levels == 2 and shipped.loss.seg_target is not None
    assert len(shipped.guide.ensemble) == 2 and shipped.guide.ensemble_reduce == "max"
    assert config.model.conditioning.light_states and config.model.conditioning.box_image
    result = _run(config)
    generator, spec, _, _ = load_translator(tmp_path / "run" / "final.pt")
    assert spec.box_image and generator.condition_channels == 29 + 3 + 3
    terms = _records(tmp_path / "run")[-1]["terms"]
    assert {"gan", "gan_patch", "nce", "d", "d_patch", "pair_match_rate"} <= set(terms)
    assert 0.0 <= terms["pair_match_rate"] <= 1.0 and result.step == 2
