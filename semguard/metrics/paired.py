"""Distance of translated images to a paired truth (toy world only: the sim layout rendered real).

Real data sets never have this truth; the toy world does, so there we can say how far a
translation is from the image it should have produced: PSNR and SSIM (torchmetrics, data
range [0,1], averaged over images) and LPIPS (AlexNet) when its weights are in the torch
cache. LPIPS needs torchvision's ImageNet AlexNet file, which is never downloaded: when it
is missing, LPIPS is recorded as unavailable with the reason, never replaced by a number
from random weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from semguard.common import torch_hub_checkpoints

LPIPS_BACKBONE_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


def lpips_backbone_path() -> Path:
    """Where torchvision's AlexNet weights (LPIPS' backbone) must be: the torch hub cache."""
    return torch_hub_checkpoints() / LPIPS_BACKBONE_URL.rsplit("/", 1)[1]


def _to_unit(images: torch.Tensor, what: str) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{what} must be float [B,3,H,W] in [-1,1], got {tuple(images.shape)}")
    return images.detach().float().cpu().add(1.0).mul(0.5).clamp(0.0, 1.0)


class PairedDistance:
    """PSNR / SSIM / LPIPS between images and their paired truth, averaged over images.

    Single-process: a plain accumulator, not a torchmetrics Metric (its state is not summed across
    processes); `semguard eval` runs in one process, so every figure sees every frame.

    update(images float [B,3,H,W] in [-1,1], truth float [B,3,H,W] in [-1,1]); compute() ->
    {"psnr": dB, "ssim": [0,1], "lpips": {"available": bool, "value"|"reason"}, "image_count"}.
    lpips=False skips LPIPS (recorded as not requested).
    """

    def __init__(self, lpips: bool = True):
        from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure   # lazy: torchmetrics.image pulls in torchvision (seconds)

        self.psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), reduction="elementwise_mean")
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.lpips_model = None
        self.lpips_status: dict = {"available": False, "reason": "not requested"}
        if lpips:
            self._load_lpips()
        self.reset()

    def _load_lpips(self) -> None:
        path = lpips_backbone_path()
        if not path.is_file():
            self.lpips_status = {
                "available": False,
                "reason": f"LPIPS backbone weights {path.name} not found in {path.parent} (never downloaded)",
            }
            return
        try:
            import lpips   # lazy: lpips imports torchvision, seconds at import

            self.lpips_model = lpips.LPIPS(net="alex", verbose=False).eval()
            self.lpips_status = {"available": True, "backbone": "alex"}
        except Exception as err:  # a corrupt cache file must not end the evaluation, but is reported
            self.lpips_status = {"available": False, "reason": f"LPIPS could not be loaded: {type(err).__name__}: {err}"}

    def reset(self) -> None:
        self.psnr.reset()
        self.ssim.reset()
        self.lpips_sum = 0.0
        self.count = 0

    @torch.no_grad()
    def update(self, images: torch.Tensor, truth: torch.Tensor) -> None:
        if images.shape != truth.shape:
            raise ValueError(f"images {tuple(images.shape)} and paired truth {tuple(truth.shape)} differ in shape")
        unit_images, unit_truth = _to_unit(images, "images"), _to_unit(truth, "truth")
        self.psnr.update(unit_images, unit_truth)
        self.ssim.update(unit_images, unit_truth)
        if self.lpips_model is not None:
            distances = self.lpips_model(images.detach().float().cpu().clamp(-1, 1), truth.detach().float().cpu().clamp(-1, 1))
            self.lpips_sum += float(distances.sum())
        self.count += int(images.shape[0])

    def compute(self) -> dict:
        if self.count == 0:
            raise ValueError("PairedDistance.compute before any update")
        lpips_result = dict(self.lpips_status)
        if self.lpips_model is not None:
            lpips_result["value"] = self.lpips_sum / self.count
        return {
            "psnr": float(self.psnr.compute()),
            "ssim": float(self.ssim.compute()),
            "lpips": lpips_result,
            "image_count": self.count,
        }
