"""Guide/judge segmenter: shapes, checkpoints, role checks, evaluation, a tiny training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semguard.data.sample import Sample
from semguard.errors import ConfigError, SemguardError, WeightsMissingError
from semguard.models.segmenter import build_segmenter, segmenter_features
from semguard.train.segmenter import evaluate_segmenter, train_segmenter
from semguard.checkpoints import load_segmenter, save_segmenter

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest single-threaded on a shared machine; restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# colour -> train id: road (grey background), vegetation (green), sky (blue), car (red)
COLOURS = {0: (128, 128, 128), 8: (40, 160, 40), 10: (60, 90, 230), 13: (220, 30, 30)}


def synthetic_samples(count: int, seed: int, size=(32, 64)) -> list[Sample]:
    """Grey frames with coloured rectangles; the colour alone determines the class."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(count):
        height, width = size
        image = np.empty((height, width, 3), np.uint8)
        image[:] = COLOURS[0]
        label = np.zeros((height, width), np.uint8)
        for class_id in (8, 10, 13):
            h, w = rng.integers(6, height // 2 + 1), rng.integers(6, width // 2 + 1)
            top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            image[top: top + h, left: left + w] = COLOURS[class_id]
            label[top: top + h, left: left + w] = class_id
        noise = rng.integers(-10, 11, size=image.shape)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        label[0, :3] = 255  # some ignore pixels
        samples.append(Sample(image=image, label=label, name=f"synthetic_{seed}_{index}"))
    return samples


def small_segmenter(**kwargs):
    torch.manual_seed(0)
    return build_segmenter("unet", "resnet18", encoder_depth=3, decoder_channels=(32, 16, 8), **kwargs)


@pytest.mark.parametrize("size", [(32, 64), (37, 51), (128, 256)])
def test_forward_shapes_at_any_size(size):
    model = small_segmenter().eval()
    image = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        logits = model(image)
    assert logits.shape == (2, 19, *size)
    features = segmenter_features(model, image)
    assert len(features) == 3
    for level, feature in enumerate(features, start=1):
        stride = 2 ** level
        assert feature.shape[2:] == (-(-size[0] // stride), -(-size[1] // stride))


@pytest.mark.parametrize("arch", ["fpn", "deeplabv3plus"])
def test_other_architectures_keep_odd_sizes(arch):
    model = build_segmenter(arch, "resnet18").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 37, 51) * 2 - 1).shape == (1, 19, 37, 51)


def test_features_carry_gradients_to_the_image():
    model = small_segmenter().eval()
    image = (torch.rand(1, 3, 32, 64) * 2 - 1).requires_grad_(True)
    sum(f.mean() for f in segmenter_features(model, image)).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_architecture_names_match_the_registry():
    from semguard.models.segmenter import ARCHITECTURES, _architectures

    assert tuple(_architectures()) == ARCHITECTURES


def test_bad_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match="unet.*fpn.*deeplabv3plus|valid:.*unet"):
        build_segmenter(arch="segnet")
    with pytest.raises(ConfigError, match="resnet18"):
        build_segmenter(encoder="resnet7")


def test_missing_imagenet_weights_raise_naming_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsMissingError) as info:
        build_segmenter(encoder="resnet18", encoder_weights="imagenet", encoder_depth=3,
                        decoder_channels=(32, 16, 8))
    message = str(info.value)
    assert "resnet18" in message and str(tmp_path / "hf") in message and "model.safetensors" in message


def test_imagenet_weights_are_read_from_the_local_cache(tmp_path, monkeypatch):
    """A file placed in the Hugging Face cache layout is found and loaded, no network."""
    import segmentation_models_pytorch as smp
    from safetensors.torch import save_file

    settings = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]
    if "repo_id" not in settings:
        pytest.skip("this smp version uses URL weights")
    hub = tmp_path / "hub"
    snapshot = hub / ("models--" + settings["repo_id"].replace("/", "--")) / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    torch.manual_seed(1)
    reference = smp.encoders.get_encoder("resnet18", depth=5, weights=None)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(snapshot / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    model = build_segmenter(encoder="resnet18", encoder_weights="imagenet")
    for key, value in reference.state_dict().items():
        assert torch.equal(model.network.encoder.state_dict()[key], value)


def test_save_load_gives_identical_outputs_and_checks_role(tmp_path):
    model = small_segmenter()
    # move batch-norm statistics away from their defaults so loading them matters
    with torch.no_grad():
        model.train()(torch.rand(2, 3, 32, 64) * 2 - 1)
    model.eval()
    path = tmp_path / "judge.pt"
    save_segmenter(path, model, role="judge", metrics={"miou": 0.5}, data={"root": "x", "count": 3})
    loaded, metadata = load_segmenter(path, expected_role="judge")
    assert metadata["kind"] == "segmenter" and metadata["role"] == "judge" and metadata["metrics"]["miou"] == 0.5
    assert not loaded.training
    image = torch.rand(2, 3, 37, 51) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(image), loaded(image))
    with pytest.raises(SemguardError, match="judge.*guide|guide.*judge") as info:
        load_segmenter(path, expected_role="guide")
    assert str(path) in str(info.value)


def test_load_refuses_wrong_kind_missing_and_corrupt_files(tmp_path):
    from semguard.checkpoints import save_checkpoint

    other = tmp_path / "translator.pt"
    save_checkpoint(other, {"kind": "translator", "step": 3})
    with pytest.raises(SemguardError, match="not a segmenter"):
        load_segmenter(other)
    with pytest.raises(SemguardError, match="does not exist"):
        load_segmenter(tmp_path / "absent.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(SemguardError, match="corrupt"):
        load_segmenter(corrupt)


class _Constant(torch.nn.Module):
    """Predicts fixed logits (the argmax is `prediction`), for a hand-computed mIoU."""

    def __init__(self, prediction: torch.Tensor):
        super().__init__()
        self.prediction = prediction
        self.num_classes = 19
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, image):
        return torch.nn.functional.one_hot(self.prediction, 19).permute(2, 0, 1).float()[None].expand(
            image.shape[0], -1, -1, -1)


def test_evaluate_segmenter_against_a_hand_computed_case():
    label = np.array([[0, 0, 1, 1], [0, 0, 1, 255]], np.uint8)
    prediction = torch.tensor([[0, 1, 1, 1], [0, 0, 2, 5]])
    sample = Sample(image=np.zeros((2, 4, 3), np.uint8), label=label, name="hand")
    result = evaluate_segmenter(_Constant(prediction), [sample, sample], batch_size=1)
    # road: tp 3, fp 0, fn 1 -> 3/4; sidewalk: tp 2, fp 1, fn 1 -> 2/4; classes 2 and 5 absent from the
    # reference (excluded from the mean); the ignore pixel predicted as 5 counts nowhere.
    assert result["per_class_iou"] == pytest.approx({"road": 0.75, "sidewalk": 0.5})
    assert result["miou"] == pytest.approx(0.625)
    assert result["pixel_accuracy"] == pytest.approx(5 / 7)
    assert result["images"] == 2


def test_tiny_training_run_beats_chance_and_writes_a_checkpoint(tmp_path):
    train, val = synthetic_samples(16, seed=0), synthetic_samples(4, seed=1)
    before = evaluate_segmenter(small_segmenter().eval(), val)["miou"]
    out = tmp_path / "guide.pt"
    model, metrics = train_segmenter(
        train, val, role="guide", steps=40, batch_size=4, crop=(32, 32), lr=3e-3, seed=0,
        workers=0, device="cpu", out_path=out, model=small_segmenter(), progress=False,
    )
    # chance over 4 classes is ~0.25 mIoU at best for a constant predictor
    assert metrics["val"]["miou"] > max(0.5, before + 0.2), (before, metrics["val"])
    loaded, metadata = load_segmenter(out, expected_role="guide")
    assert metadata["metrics"]["val"]["miou"] == pytest.approx(metrics["val"]["miou"])
    assert metadata["data"]["count"] == 16
    assert evaluate_segmenter(loaded, val)["miou"] == pytest.approx(metrics["val"]["miou"])


def test_training_is_reproducible_from_the_seed():
    train = synthetic_samples(4, seed=2)
    kwargs = dict(role="judge", steps=3, batch_size=2, crop=(16, 32), lr=1e-3, seed=5, workers=0,
                  device="cpu", progress=False)
    first, _ = train_segmenter(train, None, model=small_segmenter(), **kwargs)
    second, _ = train_segmenter(train, None, model=small_segmenter(), **kwargs)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_unknown_role_is_refused():
    with pytest.raises(ConfigError, match="guide.*judge"):
        train_segmenter(synthetic_samples(1, seed=0), None, role="teacher", steps=1, progress=False)


def test_cli_trains_and_reports_val_miou(tmp_path, capsys):
    from semguard.cli import main
    from semguard.data.folder import write_sample

    root = tmp_path / "data"
    for sample in synthetic_samples(4, seed=3):
        write_sample(root, sample)
    out = tmp_path / "judge.pt"
    code = main(["segmenter", "train", "--data", str(root), "--val", str(root), "--role", "judge",
                 "--out", str(out), "--steps", "2", "--batch-size", "2", "--crop", "16x32",
                 "--encoder-depth", "3", "--quiet"])
    assert code == 0
    assert "val mIoU" in capsys.readouterr().out
    _, metadata = load_segmenter(out, expected_role="judge")
    assert metadata["data"]["root"] == str(root) and metadata["data"]["count"] == 4


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    from semguard.cli import main

    code = main(["segmenter", "train", "--data", str(tmp_path / "absent"), "--role", "guide",
                 "--out", str(tmp_path / "x.pt")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["segmenter", "train", "--data", "x", "--role", "guide", "--out", "y", "--crop", "12by3"])


def test_class_balance_weights_by_hand():
    from semguard.train.segmenter import class_balance_weights

    label = np.array([[0, 0, 0, 0, 0, 0, 1, 1, 2, 255]], np.uint8)
    sample = Sample(image=np.zeros((1, 10, 3), np.uint8), label=label)
    weights = class_balance_weights([sample], exponent=1.0)
    # frequencies 6/9, 2/9, 1/9; median 2/9 -> weights 1/3, 1, 2; absent classes 1
    assert weights[:3].tolist() == pytest.approx([1 / 3, 1.0, 2.0])
    assert weights[3:].tolist() == pytest.approx([1.0] * 16)
    assert class_balance_weights([sample], exponent=0.0).tolist() == pytest.approx([1.0] * 19)
