"""Box-region perceptual loss: inside sign, light, person and car boxes, keep the content.

Translation tends to smear the few pixels that carry a sign's pictogram or a light's
lamp colour. This loss compares deep features of the source and the translated image
*inside the boxes only*, LPIPS-style (Zhang et al. 2018, unit-normalised channels,
squared distance, spatial average), and weights each box by its class.

For boxes k (of the classes in `box_classes`) and feature levels l:

    x~   = translated inside the union of boxes, source (detached) outside
    f_l  = normalize_c(F_l(source)),  g_l = normalize_c(F_l(x~))        [B,C_l,h_l,w_l]
    d_l  = sum_c (f_l - g_l)^2                                          [B,h_l,w_l]
    m_kl = box k's pixel mask, area-resized to (h_l, w_l) (fractional coverage, so a
           box one pixel wide still counts at stride 16)
    D_kl = sum(m_kl * d_l) / sum(m_kl)                    (mean distance inside box k)
    L    = (1 / N) * sum_k w_class(k) * sum_l D_kl        (N = boxes with weight > 0)

Pasting the translation into the source outside the boxes means nothing outside the
boxes can change the features, and the gradient w.r.t. the translated image is exactly
zero outside the boxes. Identical images give exactly 0. A batch without boxes gives 0.

Feature extractors map float [B,3,H,W] in [-1,1] to a list of feature maps:
- `lpips_feature_extractor("alex" | "vgg")`: the lpips package's AlexNet / VGG16 slices
  with torchvision's ImageNet weights, read from the torch hub cache; a missing file is a
  WeightsMissingError naming it (never random weights, never a download).
- `guide_feature_extractor(segmenter, features_fn)`: the guide segmenter's encoder
  (available offline, trained by `semguard segmenter train`).
"""

from __future__ import annotations

import warnings
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from semguard.common import torch_hub_checkpoints
from semguard.data.sample import Box
from semguard.errors import ConfigError, WeightsMissingError
from semguard.labels import BOX_CLASSES, TRAIN_ID_NAMES
from semguard.losses.class_weights import resolve_class_weights
from semguard.data.sample import box_pixel_bounds

# torchvision's ImageNet weight files (the names torch.hub caches them under).
LPIPS_WEIGHT_FILES: dict[str, str] = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


class LpipsFeatures(nn.Module):
    """LPIPS backbone: image float [B,3,H,W] in [-1,1] -> the 5 ReLU feature maps.

    Input scaling as in LPIPS: (x - shift) / scale with its ImageNet constants.
    Parameters are frozen (requires_grad False); gradients still reach the image.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.eval()
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "LpipsFeatures":
        super().train(mode)
        self.network.eval()  # frozen backbone: never in training mode
        return self

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return list(self.network((image - self.shift) / self.scale))


def lpips_feature_extractor(net: str = "alex") -> LpipsFeatures:
    """The lpips package's `net` ("alex" | "vgg") with torchvision ImageNet weights from the cache.

    Reads $TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth (alex) or vgg16-397923af.pth
    (vgg). Raises WeightsMissingError naming the file and where to put it when absent or
    unreadable; nothing is downloaded and random weights are never used.
    """
    if net not in LPIPS_WEIGHT_FILES:
        raise ConfigError(f"unknown LPIPS backbone '{net}'; valid: {', '.join(LPIPS_WEIGHT_FILES)}")
    path = torch_hub_checkpoints() / LPIPS_WEIGHT_FILES[net]
    if not path.is_file():
        raise WeightsMissingError(
            f"the box loss backbone lpips-{net} needs torchvision's ImageNet weights {path}, which is missing; "
            f"copy {LPIPS_WEIGHT_FILES[net]} into {path.parent} (semguard never downloads), "
            "or set loss.box_backbone=guide"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise WeightsMissingError(
            f"{path} could not be read as a torchvision weight file ({type(err).__name__}); replace it with a "
            f"good copy of {LPIPS_WEIGHT_FILES[net]}"
        ) from None

    import lpips.pretrained_networks as lpips_networks   # lazy: lpips imports torchvision, seconds at import

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's 'pretrained' deprecation notice
        factory = lpips_networks.alexnet if net == "alex" else lpips_networks.vgg16
        network = factory(requires_grad=False, pretrained=False)
    # lpips splits torchvision's `features` Sequential into slice1..sliceN, keeping each
    # layer's index as its name: features.<i>.<p> -> slice<k>.<i>.<p>.
    slice_of = {}
    for k in range(1, network.N_slices + 1):
        for name, _ in getattr(network, f"slice{k}").named_children():
            slice_of[name] = k
    remapped = {}
    for key, value in state.items():
        if not key.startswith("features."):
            continue
        index, rest = key[len("features."):].split(".", 1)
        if index in slice_of:
            remapped[f"slice{slice_of[index]}.{index}.{rest}"] = value
    try:
        network.load_state_dict(remapped, strict=True)
    except RuntimeError as err:
        raise WeightsMissingError(
            f"{path} does not hold torchvision's {net} ImageNet weights ({str(err).splitlines()[0]}); "
            f"replace it with a good copy of {LPIPS_WEIGHT_FILES[net]}"
        ) from None
    return LpipsFeatures(network)


class _Call(nn.Module):
    def __init__(self, model: nn.Module, features_fn: Callable) -> None:
        super().__init__()
        self.model = model
        self.features_fn = features_fn

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return list(self.features_fn(self.model, image))


class GuideFeatures(nn.Module):
    """The guide segmenter's encoder features of an image float [B,3,H,W] in [-1,1].

    The segmenter is held by reference, not registered as a submodule (it belongs to the
    trainer), and is called with detached parameters: gradients reach the image, never
    the segmenter, so a co-trained guide is not trained by the box loss.
    levels: indices of the feature list to keep (None = all).
    """

    def __init__(self, segmenter: nn.Module, features_fn: Callable[[nn.Module, torch.Tensor], Sequence[torch.Tensor]],
                 levels: Sequence[int] | None = None) -> None:
        super().__init__()
        object.__setattr__(self, "segmenter", segmenter)
        self.features_fn = features_fn
        self.levels = None if levels is None else [int(level) for level in levels]

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        call = _Call(self.segmenter, self.features_fn)
        detached = {f"model.{name}": p.detach() for name, p in self.segmenter.named_parameters()}
        features = torch.func.functional_call(call, detached, (image,))
        return features if self.levels is None else [features[level] for level in self.levels]


def guide_feature_extractor(segmenter: nn.Module,
                            features_fn: Callable[[nn.Module, torch.Tensor], Sequence[torch.Tensor]],
                            levels: Sequence[int] | None = None) -> GuideFeatures:
    """Box-loss features from a guide segmenter: features_fn(segmenter, image) -> list of maps.

    Pass semguard.models.segmenter.segmenter_features as features_fn. See `GuideFeatures`.
    """
    return GuideFeatures(segmenter, features_fn, levels)


def _normalize_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class BoxPerceptualLoss(nn.Module):
    """L = (1/N) sum_k w_class(k) sum_l D_kl: deep-feature distance inside boxes (see module doc).

    feature_extractor: module image [B,3,H,W] in [-1,1] -> list of [B,C_l,h_l,w_l].
    class_weights: {class name or train id: weight} for classes in `box_classes` (others
    weight 1; weight 0 drops a class). box_classes: train ids whose boxes count.
    level_weights: one weight per feature level (None = 1 each).
    """

    def __init__(self, feature_extractor: nn.Module, class_weights: Mapping[str | int, float] | None = None,
                 box_classes: Sequence[int] = BOX_CLASSES, level_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.feature_extractor = feature_extractor
        self.box_classes = tuple(int(c) for c in box_classes)
        weights = resolve_class_weights(class_weights, where="loss.box_class_weights")
        stray = [TRAIN_ID_NAMES[c] for c in weights if c not in self.box_classes]
        if stray:
            raise ConfigError(
                f"loss.box_class_weights: {stray} are not box classes; boxes are taken for "
                f"{[TRAIN_ID_NAMES[c] for c in self.box_classes]}"
            )
        self.class_weight = {c: weights.get(c, 1.0) for c in self.box_classes}
        self.level_weights = None if level_weights is None else [float(w) for w in level_weights]

    def _collect(self, boxes: list[list[Box]], height: int, width: int):
        rows = []  # (batch index, x0, y0, x1, y1, weight)
        for b, image_boxes in enumerate(boxes):
            for box in image_boxes:
                weight = self.class_weight.get(int(box.class_id), 0.0)
                if weight <= 0:
                    continue
                bounds = box_pixel_bounds(box.xyxy, height, width)
                if bounds is not None:
                    rows.append((b, *bounds, weight))
        return rows

    def forward(self, source: torch.Tensor, translated: torch.Tensor, boxes: list[list[Box]]) -> torch.Tensor:
        """source, translated: float [B,3,H,W] in [-1,1]; boxes: B lists of Box (pixel xyxy,
        half-open). Returns the scalar L (0, attached to the graph, when no box counts)."""
        if source.shape != translated.shape or source.ndim != 4:
            raise ValueError(f"source {tuple(source.shape)} and translated {tuple(translated.shape)} must both be [B,3,H,W]")
        if len(boxes) != source.shape[0]:
            raise ValueError(f"boxes must hold one list per image: {len(boxes)} lists for a batch of {source.shape[0]}")
        height, width = source.shape[-2:]
        rows = self._collect(boxes, height, width)
        if not rows:
            return translated.sum() * 0.0
        device = translated.device
        table = torch.tensor([r[:5] for r in rows], dtype=torch.long, device=device)
        batch_index, x0, y0, x1, y1 = table.unbind(1)
        box_weight = torch.tensor([r[5] for r in rows], dtype=torch.float32, device=device)
        # Separable box masks: row coverage [N,H] and column coverage [N,W].
        ys = torch.arange(height, device=device)
        xs = torch.arange(width, device=device)
        row_mask = ((ys >= y0[:, None]) & (ys < y1[:, None])).float()
        col_mask = ((xs >= x0[:, None]) & (xs < x1[:, None])).float()
        inside = (row_mask[:, :, None] * col_mask[:, None, :])  # [N,H,W]
        union = torch.zeros(source.shape[0], height, width, device=device)
        union.index_put_((batch_index,), inside, accumulate=True)
        union = (union > 0).unsqueeze(1)  # [B,1,H,W]

        source = source.detach()
        composite = torch.where(union, translated, source)
        with torch.no_grad():
            source_features = self.feature_extractor(source)
        composite_features = self.feature_extractor(composite)
        if len(source_features) != len(composite_features):
            raise ValueError("the feature extractor returned lists of different lengths")
        level_weights = self.level_weights or [1.0] * len(source_features)
        if len(level_weights) != len(source_features):
            raise ValueError(f"level_weights has {len(level_weights)} entries for {len(source_features)} feature levels")

        per_box = torch.zeros(len(rows), device=device)
        for level_weight, f, g in zip(level_weights, source_features, composite_features):
            distance = (_normalize_channels(f.float()) - _normalize_channels(g.float())).pow(2).sum(dim=1)  # [B,h,w]
            h, w = distance.shape[-2:]
            rows_l = _resize_coverage(row_mask, h)  # [N,h]
            cols_l = _resize_coverage(col_mask, w)  # [N,w]
            numerator = torch.einsum("nh,nhw,nw->n", rows_l, distance[batch_index], cols_l)
            area = rows_l.sum(1) * cols_l.sum(1)
            per_box = per_box + level_weight * numerator / area.clamp_min(1e-12)
        return (box_weight * per_box).sum() / len(rows)


def _resize_coverage(mask: torch.Tensor, size: int) -> torch.Tensor:
    """[N,L] 0/1 coverage -> [N,size]: area-averaged when shrinking, nearest when growing."""
    if mask.shape[1] == size:
        return mask
    if size < mask.shape[1]:
        return F.adaptive_avg_pool1d(mask[:, None, :], size)[:, 0, :]
    return F.interpolate(mask[:, None, :], size=size, mode="nearest")[:, 0, :]
