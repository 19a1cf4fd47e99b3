"""Supervised segmenters: the guide (source labels, part of the method) and the judge
(target labels, evaluation only).

Both are segmentation_models_pytorch networks wrapped so that every semguard caller
speaks the same conventions: input float32 [B,3,H,W] in [-1,1] of any size (padded
internally to the encoder's stride and cropped back), output logits [B,19,H,W] at the
input size. Checkpoints describe themselves (kind, role, build arguments, weights,
metrics, data) and load with `weights_only=True`, so a judge can never be mistaken for a
guide: `load_segmenter(path, expected_role="guide")` refuses a judge checkpoint.

Pretrained encoder weights ("imagenet") are read only from the local Hugging Face or
torch caches; when absent, `WeightsMissingError` names the file and where to put it.
Nothing is ever downloaded and random weights are never substituted silently.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semguard import __version__
from semguard.data.batch import collate_samples
from semguard.data.sample import Sample
from semguard.errors import ConfigError, DataError, SemguardError, WeightsMissingError
from semguard.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID_NAMES
from semguard.metrics.confusion import confusion_matrix, iou_from_confusion, mean_iou

# guide: source labels, serves the seg-consistency loss; judge: target labels, evaluation only;
# downstream: the perception model of the downstream test (trained on any data, scored on target val).
ROLES = ("guide", "judge", "downstream")
CHECKPOINT_KIND = "segmenter"

# ImageNet statistics: smp encoders expect inputs normalised this way (pretrained or not).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _smp():
    import segmentation_models_pytorch as smp

    return smp


def _architectures() -> dict[str, Any]:
    """The architecture registry (built on first use: importing smp/timm takes seconds)."""
    smp = _smp()
    return {
        "unet": smp.Unet,
        "unetplusplus": smp.UnetPlusPlus,
        "fpn": smp.FPN,
        "linknet": smp.Linknet,
        "pspnet": smp.PSPNet,
        "deeplabv3": smp.DeepLabV3,
        "deeplabv3plus": smp.DeepLabV3Plus,
    }


# The registry's names without importing smp (a test keeps the two equal).
ARCHITECTURES: tuple[str, ...] = ("unet", "unetplusplus", "fpn", "linknet", "pspnet", "deeplabv3", "deeplabv3plus")

# Small decoders keep CPU training of the toy world (128x256) quick; smp's own default
# for Unet is (256, 128, 64, 32, 16).
DEFAULT_DECODER_CHANNELS = {"unet": (128, 64, 32, 16, 16), "unetplusplus": (128, 64, 32, 16, 16)}


class Segmenter(nn.Module):
    """An smp network behind semguard's image conventions.

    forward(image: float [B,3,H,W] in [-1,1]) -> logits float [B,num_classes,H,W].
    Any H, W: the image is padded (replicate) to a multiple of `size_multiple` and the
    logits are cropped back. `network` is the plain smp model (its `encoder` feeds
    `segmenter_features`).
    """

    def __init__(self, network: nn.Module, num_classes: int, size_multiple: int):
        super().__init__()
        self.network = network
        self.num_classes = int(num_classes)
        self.size_multiple = int(size_multiple)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def prepare(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """[-1,1] image -> ImageNet-normalised, padded image, and the original (H, W)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"segmenter image must be float [B,3,H,W] in [-1,1], got {tuple(image.shape)}")
        height, width = int(image.shape[2]), int(image.shape[3])
        x = (image.float() + 1.0) * 0.5
        x = (x - self.mean) / self.std
        pad_h = (-height) % self.size_multiple
        pad_w = (-width) % self.size_multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return x, (height, width)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x, (height, width) = self.prepare(image)
        logits = self.network(x)
        return logits[:, :, :height, :width]


def _size_multiple(network: nn.Module, arch: str) -> int:
    stride = int(getattr(network.encoder, "output_stride", 32))
    # DeepLab decoders upsample by fixed factors: keep the full 2**depth multiple.
    depth = int(getattr(network.encoder, "_depth", 5))
    return max(stride, 2 ** depth) if arch.startswith("deeplab") else stride


def _weights_file(encoder: str, weights: str) -> tuple[Path | None, str]:
    """Where the cached weight file for (encoder, weights) is, or None; plus a description
    of the expected location for the error message. Looks only at local caches."""
    smp = _smp()
    settings = smp.encoders.encoders[encoder]["pretrained_settings"]
    if weights not in settings:
        raise ConfigError(
            f"encoder {encoder!r} has no pretrained weights {weights!r}; available: {sorted(settings)} (or none)"
        )
    entry = settings[weights]
    if "repo_id" in entry:  # smp >= 0.5: Hugging Face hub repositories
        from huggingface_hub import try_to_load_from_cache

        hub_cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
            os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub"
        )
        repo_id, revision = entry["repo_id"], entry.get("revision")
        found = try_to_load_from_cache(repo_id, "model.safetensors", cache_dir=hub_cache, revision=revision)
        folder = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
        where = (
            f"model.safetensors of the Hugging Face repository {repo_id} (revision {revision}) "
            f"in the Hugging Face cache {folder} (fetch it on a connected machine with "
            f"`huggingface-cli download {repo_id} --revision {revision}` and copy {folder} over)"
        )
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found), where
        return None, where
    url = entry["url"]  # older smp: plain URLs fetched into the torch hub cache
    directory = Path(torch.hub.get_dir()) / "checkpoints"
    path = directory / os.path.basename(url)
    where = f"{path.name} (from {url}) in {directory}"
    return (path if path.is_file() else None), where


def _load_encoder_weights(network: nn.Module, encoder: str, weights: str) -> None:
    path, where = _weights_file(encoder, weights)
    if path is None:
        raise WeightsMissingError(
            f"{weights} weights for encoder {encoder!r} are not in the local cache: expected {where}; "
            "semguard never downloads weights. Put the file there, or use --encoder-weights none"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt cache file
        raise WeightsMissingError(f"cannot read encoder weights {path}: {err}; delete it and fetch it again") from None
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier.", "last_linear."))}
    # nn.Module's own loader: smp encoders override load_state_dict (dropping heads, returning None)
    missing, unexpected = nn.Module.load_state_dict(network.encoder, state, strict=False)
    shallow = int(getattr(network.encoder, "_depth", 5)) < 5  # deep stages were removed: their keys are surplus
    if missing or (unexpected and not shallow):
        raise WeightsMissingError(
            f"encoder weights {path} do not fit encoder {encoder!r} "
            f"(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}); delete the file and fetch the right one"
        )


def build_segmenter(
    arch: str = "unet",
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    num_classes: int = NUM_CLASSES,
    encoder_depth: int = 5,
    decoder_channels: Sequence[int] | None = None,
) -> Segmenter:
    """A `Segmenter` (smp `arch` with `encoder`), in training mode.

    arch: one of ARCHITECTURES; encoder: an smp encoder name (e.g. "resnet18",
    "mobilenet_v2", "efficientnet-b0"); encoder_weights: None (random) or a pretrained
    tag such as "imagenet", read from the local cache only (WeightsMissingError when
    absent); decoder_channels: Unet/Unet++ only, default DEFAULT_DECODER_CHANNELS
    (truncated to encoder_depth).
    """
    architectures = _architectures()
    if arch not in architectures:
        raise ConfigError(f"unknown segmenter architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    smp = _smp()
    valid_encoders = smp.encoders.get_encoder_names()
    if encoder not in valid_encoders:
        raise ConfigError(f"unknown segmenter encoder {encoder!r}; valid: {', '.join(valid_encoders)}")
    if encoder_weights in ("none", ""):
        encoder_weights = None
    if not 3 <= int(encoder_depth) <= 5:
        raise ConfigError(f"encoder_depth must be 3, 4 or 5, got {encoder_depth}")
    kwargs: dict[str, Any] = dict(encoder_name=encoder, encoder_weights=None, classes=int(num_classes),
                                  encoder_depth=int(encoder_depth))
    if arch in DEFAULT_DECODER_CHANNELS:
        channels = tuple(decoder_channels or DEFAULT_DECODER_CHANNELS[arch])
        if len(channels) < encoder_depth:
            raise ConfigError(f"decoder_channels {channels} needs {encoder_depth} entries (one per encoder stage)")
        kwargs["decoder_channels"] = channels[: int(encoder_depth)]
    elif decoder_channels is not None:
        raise ConfigError(f"decoder_channels applies to unet/unetplusplus only, not {arch!r}")
    if arch in ("pspnet",):
        kwargs.pop("encoder_depth")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        network = architectures[arch](**kwargs)
    if encoder_weights is not None:
        _load_encoder_weights(network, encoder, encoder_weights)
    model = Segmenter(network, num_classes=num_classes, size_multiple=_size_multiple(network, arch))
    model.build = {  # what rebuilds this model (weights come from the checkpoint)
        "arch": arch, "encoder": encoder, "num_classes": int(num_classes), "encoder_depth": int(encoder_depth),
        "decoder_channels": list(kwargs["decoder_channels"]) if "decoder_channels" in kwargs else None,
    }
    model.encoder_weights = encoder_weights
    return model


def segmenter_features(model: Segmenter, image: torch.Tensor) -> list[torch.Tensor]:
    """Encoder feature maps of `image` (float [B,3,H,W] in [-1,1]), shallow to deep.

    Returns one map per encoder stage (strides 2, 4, ..., 2**depth), each cropped to
    ceil(H/stride) x ceil(W/stride) so padding never leaks in. Gradients flow to the
    image (the guide box-perceptual loss needs them); freeze the model yourself.
    """
    x, (height, width) = model.prepare(image)
    features = model.network.encoder(x)
    out = []
    for feature in features[1:]:  # features[0] is the input itself
        stride = x.shape[2] // feature.shape[2]
        out.append(feature[:, :, : math.ceil(height / stride), : math.ceil(width / stride)])
    return out


# ---------------------------------------------------------------- training data


class _RandomCrops(torch.utils.data.Dataset):
    """Training views of samples (semguard.data.transforms.PairedTransform: random crop,
    padded with ignore when a frame is smaller, optional crops around small boxes, hflip),
    driven by (index, seed) draws so the stream does not depend on the number of workers."""

    def __init__(self, dataset: Sequence[Sample], crop: tuple[int, int] | None, hflip: bool,
                 small_box_crop_prob: float = 0.0):
        from semguard.data.transforms import PairedTransform

        self.dataset = dataset
        self.transform = PairedTransform(crop=crop, hflip=hflip, small_box_crop_prob=small_box_crop_prob)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, draw: tuple[int, int]) -> Sample:
        index, seed = draw
        sample = self.dataset[index]
        # instances are not needed to learn labels: drop them before the geometry
        sample = Sample(image=sample.image, label=sample.label, boxes=sample.boxes, name=sample.name)
        view = self.transform(sample, np.random.default_rng(seed))
        return Sample(image=np.ascontiguousarray(view.image), label=np.ascontiguousarray(view.label), name=view.name)


class _DrawSampler(torch.utils.data.Sampler):
    def __init__(self, draws: list[tuple[int, int]]):
        self.draws = draws

    def __iter__(self):
        return iter(self.draws)

    def __len__(self) -> int:
        return len(self.draws)


def _training_loader(dataset, crop, batch_size, steps, seed, workers, hflip=True, small_box_crop_prob=0.0):
    rng = np.random.default_rng(seed)
    count = steps * batch_size
    indices = np.concatenate([rng.permutation(len(dataset)) for _ in range(math.ceil(count / len(dataset)))])[:count]
    draws = [(int(i), int(s)) for i, s in zip(indices, rng.integers(0, 2**31 - 1, size=count))]
    return torch.utils.data.DataLoader(
        _RandomCrops(dataset, crop, hflip, small_box_crop_prob), batch_size=batch_size, sampler=_DrawSampler(draws),
        num_workers=workers, collate_fn=collate_samples, drop_last=False,
        persistent_workers=False,
    )


def _dataset_root(dataset) -> str | None:
    root = getattr(dataset, "root", None)
    return str(root) if root is not None else None


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_segmenter(model: Segmenter, dataset: Sequence[Sample], batch_size: int = 4,
                       device: str | torch.device | None = None) -> dict[str, Any]:
    """mIoU of `model` on labelled full frames of `dataset`.

    Returns {"miou": float (mean over classes present in the reference labels),
    "per_class_iou": {class name: IoU} for those classes, "pixel_accuracy": float,
    "images": int, "confusion": int [19,19] nested list}. Ignore (255) pixels are excluded.
    """
    if len(dataset) == 0:
        raise DataError("cannot evaluate a segmenter on an empty data set")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    confusion = torch.zeros(model.num_classes, model.num_classes, dtype=torch.int64)
    pending: list[Sample] = []

    def flush():
        batch = collate_samples(pending)
        prediction = model(batch.image.to(device)).argmax(1).cpu()
        confusion.add_(confusion_matrix(batch.label, prediction, num_classes=model.num_classes))
        pending.clear()

    for index in range(len(dataset)):
        sample = dataset[index]
        if pending and (len(pending) == batch_size or pending[0].size != sample.size):
            flush()
        pending.append(sample)
    flush()
    model.train(was_training)
    iou, present = iou_from_confusion(confusion)
    names = TRAIN_ID_NAMES if model.num_classes == NUM_CLASSES else [str(i) for i in range(model.num_classes)]
    total = int(confusion.sum())
    return {
        "miou": mean_iou(confusion),
        "per_class_iou": {names[c]: float(iou[c]) for c in range(model.num_classes) if present[c]},
        "pixel_accuracy": float(confusion.diag().sum()) / total if total else float("nan"),
        "images": len(dataset),
        "confusion": confusion.tolist(),
    }


def floor_from_evaluation(result: dict[str, Any], data: str | None) -> dict[str, Any]:
    """A judge's floor from its evaluation on a paired truth: per class c, the share of c's
    pixels it reads as another class, 1 - N[c,c] / N[c,:] (the flip rate of a perfect translation)."""
    confusion = torch.tensor(result["confusion"], dtype=torch.float64)
    totals = confusion.sum(1)
    names = TRAIN_ID_NAMES if confusion.shape[0] == NUM_CLASSES else [str(i) for i in range(confusion.shape[0])]
    per_class = {names[c]: float(1.0 - confusion[c, c] / totals[c]) for c in range(confusion.shape[0]) if totals[c] > 0}
    return {"data": data, "images": result["images"], "pixel_flip_rate": 1.0 - result["pixel_accuracy"],
            "per_class": per_class}


# ---------------------------------------------------------------- training


def class_balance_weights(dataset: Sequence[Sample], exponent: float, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """float [num_classes]: (f_c / median f)^-exponent over the classes present in the labels
    of `dataset` (pixel frequencies f_c, ignore excluded), clipped to [0.1, 10]; absent
    classes get 1 (they never appear in the loss)."""
    counts = np.zeros(num_classes, np.int64)
    for index in range(len(dataset)):
        label = dataset[index].label
        counts += np.bincount(label[label < num_classes].ravel(), minlength=num_classes)[:num_classes]
    weights = np.ones(num_classes)
    present = counts > 0
    if present.any():
        frequency = counts[present] / counts[present].sum()
        weights[present] = np.clip((frequency / np.median(frequency)) ** -float(exponent), 0.1, 10.0)
    return torch.tensor(weights, dtype=torch.float32)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device} requested but CUDA is not available; use --device cpu")
    return device


def train_segmenter(
    train_dataset: Sequence[Sample],
    val_dataset: Sequence[Sample] | None,
    role: str,
    steps: int = 500,
    batch_size: int = 8,
    crop: tuple[int, int] | None = (128, 128),
    lr: float = 1e-3,
    seed: int = 0,
    workers: int = 0,
    device: str | torch.device | None = "cpu",
    out_path: str | Path | None = None,
    arch: str = "unet",
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    encoder_depth: int = 5,
    decoder_channels: Sequence[int] | None = None,
    hflip: bool = True,
    small_box_crop_prob: float = 0.2,
    class_balance: float = 0.5,
    weight_decay: float = 0.0,
    eval_batch_size: int = 4,
    progress: bool = True,
    data_info: dict | None = None,
    model: Segmenter | None = None,
    floor_dataset: Sequence[Sample] | None = None,
) -> tuple[Segmenter, dict[str, Any]]:
    """Train a segmenter with cross-entropy (255 ignored), Adam and cosine decay.

    train_dataset, val_dataset: sequences of labelled `Sample`s; role: "guide" (source
    labels) or "judge" (target labels), recorded in the checkpoint; crop: (H, W) random
    crops (padded with ignore when a frame is smaller) or None for full frames (all of one
    size); small_box_crop_prob: share of crops placed around a traffic light or sign box
    (small, rare classes); hflip: random horizontal flips; class_balance: exponent a of
    the cross-entropy class weights w_c = (f_c / median f)^-a from the training pixel
    frequencies f_c (0 = unweighted, 0.5 = inverse square root; clipped to [0.1, 10]); `model`:
    a prebuilt Segmenter (else built from arch/encoder/...); floor_dataset (judges): a paired
    truth (source layouts in the target style) on which the judge's own flip rates, its floor,
    are measured and recorded under metrics["floor"]. Writes the checkpoint to
    `out_path` when given. Returns (model in eval mode, metrics) where metrics holds
    "train_loss" (mean of the last 10% of steps), "seconds", "steps" and, with a
    validation set, the `evaluate_segmenter` figures under "val".
    """
    if role not in ROLES:
        raise ConfigError(f"segmenter role must be one of {ROLES}, got {role!r}")
    if steps < 1 or batch_size < 1:
        raise ConfigError(f"steps and batch size must be positive, got steps={steps}, batch_size={batch_size}")
    if len(train_dataset) == 0:
        raise DataError("the segmenter training set is empty")
    device = _resolve_device(device)
    torch.manual_seed(seed)
    if model is None:
        model = build_segmenter(arch=arch, encoder=encoder, encoder_weights=encoder_weights,
                                encoder_depth=encoder_depth, decoder_channels=decoder_channels)
    model.to(device).train()
    class_weights = None
    if class_balance:
        class_weights = class_balance_weights(train_dataset, class_balance, model.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps)) * 0.95 + 0.05)
    loader = _training_loader(train_dataset, tuple(crop) if crop else None, batch_size, steps, seed, workers, hflip,
                              small_box_crop_prob)

    losses: list[float] = []
    start = time.perf_counter()
    bar = _progress(progress)
    with bar:
        task = bar.add_task(f"segmenter ({role})", total=steps, loss=float("nan"), rate=0.0)
        for step, batch in enumerate(loader, start=1):
            image, label = batch.image.to(device), batch.label.to(device)
            logits = model(image)
            loss = F.cross_entropy(logits, label, weight=class_weights, ignore_index=IGNORE_ID)
            if not torch.isfinite(loss):
                if bool((label == IGNORE_ID).all()):
                    continue  # a crop of pure ignore: nothing to learn
                raise SemguardError(f"segmenter loss became {loss.item()} at step {step}; lower --lr (now {lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            elapsed = time.perf_counter() - start
            bar.update(task, advance=1, loss=losses[-1], rate=step * batch_size / max(elapsed, 1e-9))
            _log_line(bar, progress, step, steps, f"segmenter ({role}) step {step}/{steps} loss {losses[-1]:.3f} "
                      f"{step * batch_size / max(elapsed, 1e-9):.1f} img/s")
    seconds = time.perf_counter() - start
    model.eval()
    tail = losses[-max(1, len(losses) // 10):] if losses else [float("nan")]
    metrics: dict[str, Any] = {"train_loss": float(np.mean(tail)), "steps": steps, "seconds": seconds,
                               "batch_size": batch_size, "crop": list(crop) if crop else None, "lr": lr, "seed": seed,
                               "hflip": hflip, "small_box_crop_prob": small_box_crop_prob,
                               "class_balance": class_balance,
                               "class_weights": class_weights.tolist() if class_weights is not None else None}
    if val_dataset is not None:
        metrics["val"] = evaluate_segmenter(model, val_dataset, batch_size=eval_batch_size, device=device)
    if floor_dataset is not None:
        metrics["floor"] = floor_from_evaluation(
            evaluate_segmenter(model, floor_dataset, batch_size=eval_batch_size, device=device),
            _dataset_root(floor_dataset))
    if out_path is not None:
        data = dict(data_info or {})
        data.setdefault("root", _dataset_root(train_dataset))
        data.setdefault("count", len(train_dataset))
        if val_dataset is not None:
            data.setdefault("val_root", _dataset_root(val_dataset))
            data.setdefault("val_count", len(val_dataset))
        save_segmenter(out_path, model, role=role, metrics=metrics, data=data)
    return model, metrics


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[rate]:.1f} img/s"),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False,
    )


def _log_line(bar, enabled: bool, step: int, total: int, text: str) -> None:
    """Without a terminal (logs, CI) the live bar is not drawn: print ~10 plain lines instead."""
    if enabled and not bar.console.is_terminal and (step % max(1, total // 10) == 0 or step == total):
        bar.console.print(text)


# ---------------------------------------------------------------- checkpoints


def save_segmenter(path: str | Path, model: Segmenter, role: str, metrics: dict | None = None,
                   data: dict | None = None) -> None:
    """Write a self-describing segmenter checkpoint atomically (see the module docstring)."""
    from semguard.train.checkpoint import save_checkpoint

    if role not in ROLES:
        raise ConfigError(f"segmenter role must be one of {ROLES}, got {role!r}")
    build = getattr(model, "build", None)
    if build is None:
        raise ValueError("save_segmenter needs a model made by build_segmenter (it carries .build)")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(Path(path), {
        "kind": CHECKPOINT_KIND,
        "role": role,
        "build": dict(build),
        "encoder_weights": getattr(model, "encoder_weights", None),
        "state_dict": state,
        "metrics": _plain(metrics or {}),
        "data": _plain(data or {}),
        "semguard_version": __version__,
    })


def _plain(value):
    """Only plain types go into checkpoints (weights_only=True loads them)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def load_segmenter(path: str | Path, device: str | torch.device = "cpu",
                   expected_role: str | None = None) -> tuple[Segmenter, dict[str, Any]]:
    """(model in eval mode on `device`, metadata) from a segmenter checkpoint.

    metadata: the checkpoint without its weights (kind, role, build, metrics, data,
    semguard_version). expected_role "guide"/"judge" refuses a checkpoint of the other
    role (a judge must never train a translator). Errors are SemguardErrors naming the file.
    """
    from semguard.train.checkpoint import load_checkpoint

    path = Path(path)
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != CHECKPOINT_KIND:
        kind = checkpoint.get("kind") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise SemguardError(
            f"{path} is not a segmenter checkpoint (kind {kind!r}); pass a file written by `semguard segmenter train`"
        )
    role = checkpoint.get("role")
    if expected_role is not None and role != expected_role:
        raise SemguardError(
            f"{path} is a {role!r} segmenter but a {expected_role!r} is needed; "
            + ("the judge serves evaluation only and must never guide training: train a guide on source labels "
               "with `semguard segmenter train --role guide`" if expected_role == "guide" else
               "train a judge on labelled target-domain data with `semguard segmenter train --role judge`")
        )
    try:
        build = dict(checkpoint["build"])
        model = build_segmenter(arch=build["arch"], encoder=build["encoder"], encoder_weights=None,
                                num_classes=build["num_classes"], encoder_depth=build.get("encoder_depth", 5),
                                decoder_channels=build.get("decoder_channels"))
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (KeyError, RuntimeError, TypeError, ConfigError) as err:
        raise SemguardError(
            f"segmenter checkpoint {path} is inconsistent ({type(err).__name__}: {str(err)[:300]}); "
            "retrain it with `semguard segmenter train`"
        ) from None
    model.encoder_weights = checkpoint.get("encoder_weights")
    metadata = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    metadata["path"] = str(path)
    return model.to(device).eval(), metadata
