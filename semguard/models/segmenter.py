"""Supervised segmenters as networks: the guide (source labels, part of the method), the judge
(target labels, evaluation only) and the downstream models.

All are segmentation_models_pytorch networks wrapped so that every semguard caller speaks
the same conventions: input float32 [B,3,H,W] in [-1,1] of any size (padded internally to
the encoder's stride and cropped back), output logits [B,19,H,W] at the input size. Their
checkpoints (semguard.checkpoints: save_segmenter / load_segmenter) describe themselves, so
a judge can never be mistaken for a guide. Training lives in semguard.train.segmenter.

Pretrained encoder weights ("imagenet") are read only from the local Hugging Face or
torch caches; when absent, `WeightsMissingError` names the file and where to put it.
Nothing is ever downloaded and random weights are never substituted silently.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from semguard.common import torch_hub_checkpoints
from semguard.errors import ConfigError, WeightsMissingError
from semguard.labels import NUM_CLASSES
from huggingface_hub import try_to_load_from_cache
import warnings

# guide: source labels, serves the seg-consistency loss; judge: target labels, evaluation only;
# downstream: the perception model of the downstream test (trained on any data, scored on target val).
ROLES = ("guide", "judge", "downstream")
CHECKPOINT_KIND = "segmenter"

# ImageNet statistics: smp encoders expect inputs normalised this way (pretrained or not).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _smp():
    import segmentation_models_pytorch as smp   # lazy: smp imports timm, seconds at every CLI start

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
    directory = torch_hub_checkpoints()
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
            from safetensors.torch import load_file   # lazy: only huggingface-cached weights are safetensors files

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
