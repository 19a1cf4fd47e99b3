"""The N+1-class adversarial loss of a segmentation discriminator (OASIS, Sushko et al. 2021).

The discriminator D gives K + 1 logits per pixel (K train ids, then "fake" = index K).
With CE_p(y) the pixel-wise cross-entropy of D's logits at pixel p against class y:

    L_D = BCE(D(real), target label) + mean_p CE_p(fake)       on real target / translated images
    L_G = BCE(D(translated), source label)                     the generator's term

where BCE is the class-balanced cross-entropy over the labelled pixels of the batch:

    w_c = N / (K_present * n_c)   for a class c present in the batch (n_c of its pixels),
    w_c = 0                       for an absent class and for ignore (255),
    BCE = sum_p w_{y_p} CE_p(y_p) / sum_p w_{y_p}

N is the number of labelled pixels and K_present the number of classes present, so
sum_p w_{y_p} = N and BCE = (1 / K_present) * sum_c mean_{p: y_p = c} CE_p(c): every class
present counts equally, whatever its size, so a traffic light counts as much as the road.
`class_balance=False` gives the plain mean over the labelled pixels instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semguard.labels import IGNORE_ID


def balanced_class_weights(label: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_ID) -> torch.Tensor:
    """float [num_classes]: w_c = N / (K_present * n_c) over the pixels of `label` (0 for absent classes).

    label: int64 [B,H,W] train ids, `ignore_index` (and any id >= num_classes) not counted.
    """
    valid = (label != ignore_index) & (label >= 0) & (label < num_classes)
    index = torch.where(valid, label, torch.zeros_like(label)).reshape(-1).long()
    # integer counts by scatter: exact, and no host sync (boolean indexing would wait for the device)
    counts = torch.zeros(num_classes, dtype=torch.int64, device=label.device)
    counts = counts.scatter_add(0, index, valid.reshape(-1).long()).to(torch.float32)
    present = counts > 0
    total = counts.sum()
    k_present = present.sum().clamp_min(1).to(torch.float32)
    return torch.where(present, total / (k_present * counts.clamp_min(1.0)), torch.zeros_like(counts))


def _check(logits: torch.Tensor, label: torch.Tensor, name: str) -> torch.Tensor:
    if logits.ndim != 4 or label.ndim != 3 or logits.shape[0] != label.shape[0]:
        raise ValueError(f"{name}: logits must be float [B,K+1,h,w] and label int64 [B,H,W] with the same B, got "
                         f"{tuple(logits.shape)} and {tuple(label.shape)}")
    if logits.shape[-2:] != label.shape[-2:]:
        logits = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
    return logits.float()


def balanced_cross_entropy(logits: torch.Tensor, label: torch.Tensor, class_balance: bool = True,
                           ignore_index: int = IGNORE_ID) -> torch.Tensor:
    """Class-balanced CE (module docstring) of logits float [B,K+1,h,w] against label int64 [B,H,W].

    The balance is over the K = logits.shape[1] - 1 real classes; logits are resized
    bilinearly to the label's size when they differ. 0 (attached) when no pixel is labelled.
    """
    logits = _check(logits, label, "balanced_cross_entropy")
    num_classes = logits.shape[1] - 1
    valid = (label != ignore_index) & (label >= 0) & (label < num_classes)
    target = torch.where(valid, label, torch.zeros_like(label)).long()
    per_pixel = F.cross_entropy(logits, target, reduction="none")   # [B,H,W]
    if class_balance:
        pixel_weight = balanced_class_weights(label, num_classes, ignore_index).to(per_pixel.device)[target]
        pixel_weight = pixel_weight * valid.to(per_pixel.dtype)
    else:
        pixel_weight = valid.to(per_pixel.dtype)
    return (per_pixel * pixel_weight).sum() / pixel_weight.sum().clamp_min(1e-12)


def fake_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """mean_p CE_p(fake) of logits float [B,K+1,h,w]: every pixel should read "fake" (index K)."""
    if logits.ndim != 4:
        raise ValueError(f"fake_cross_entropy: logits must be float [B,K+1,h,w], got {tuple(logits.shape)}")
    logits = logits.float()
    # CE against the last class = logsumexp over classes - the fake logit
    return (torch.logsumexp(logits, dim=1) - logits[:, -1]).mean()


def segmentation_discriminator_loss(real_logits: torch.Tensor, real_label: torch.Tensor, fake_logits: torch.Tensor,
                                    class_balance: bool = True) -> torch.Tensor:
    """L_D: real target images read as their target labels, translated images read as "fake"."""
    return balanced_cross_entropy(real_logits, real_label, class_balance) + fake_cross_entropy(fake_logits)


def segmentation_generator_loss(fake_logits: torch.Tensor, source_label: torch.Tensor,
                                class_balance: bool = True) -> torch.Tensor:
    """L_G: the discriminator should read each translated pixel as its *source* label."""
    return balanced_cross_entropy(fake_logits, source_label, class_balance)
