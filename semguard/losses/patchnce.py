"""PatchNCE (Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation", CUT).

A patch of the translated image should be closer, in the generator's own encoder
features, to the source patch at the same place than to the other source patches of
the same image. For layer l, sample P positions; project the features at those
positions through a per-layer MLP head and L2-normalise:

    q_i = normalize(H_l(E_l(translated))_i),   k_i = normalize(H_l(E_l(source))_i)

and score each query against its positive k_i and the P - 1 other keys of the same
image (InfoNCE with temperature tau):

    L = mean_i  -log( exp(q_i.k_i / tau) / sum_j exp(q_i.k_j / tau) )

Keys are detached (as in CUT): gradients reach the generator and the heads through the
queries. Usage in a trainer:

    sampler = PatchSampler(generator.encode_channels(layers))      # heads exist up front
    src = generator.encode(source, condition, layers)
    fake = generator.encode(translated, condition, layers)
    loss = multilayer_patchnce_loss(sampler, src, fake, num_patches=256, temperature=0.07)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    return x / (x.norm(p=2, dim=-1, keepdim=True) + eps)


class PatchSampler(nn.Module):
    """Samples positions of feature maps and projects them with a 2-layer MLP head per layer.

    in_channels: channel count per layer (prefer `generator.encode_channels(layers)`, so the
    heads exist before the optimizer and DDP wrap them); None creates the heads lazily at
    the first forward, on the features' device; then build the optimizer after that call.
    mlp_channels: output width of each head; 0 = no heads (plain normalised features).
    """

    def __init__(self, in_channels: Sequence[int] | None = None, mlp_channels: int = 256) -> None:
        super().__init__()
        self.mlp_channels = mlp_channels
        self.heads = nn.ModuleList()
        self.in_channels: list[int] | None = None
        if in_channels is not None:
            self._create_heads(list(in_channels))

    def _create_heads(self, in_channels: list[int], device: torch.device | None = None) -> None:
        self.in_channels = in_channels
        if self.mlp_channels > 0:
            for channels in in_channels:
                self.heads.append(nn.Sequential(
                    nn.Linear(channels, self.mlp_channels), nn.ReLU(inplace=True),
                    nn.Linear(self.mlp_channels, self.mlp_channels),
                ).to(device))

    def forward(self, features: Sequence[torch.Tensor], num_patches: int = 256,
                patch_ids: Sequence[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Project sampled positions of each feature map.

        features: list of float [B,C_l,h_l,w_l]. num_patches: P positions per layer (the same
        positions in every image of the batch); 0 or >= h_l*w_l = all positions.
        patch_ids: positions from an earlier call (to sample the translated image where the
        source was sampled); else drawn with torch.randperm on the CPU (`generator`: a CPU
        torch.Generator, or None for the global RNG).
        Returns (samples: list of float [B,P_l,D] L2-normalised, patch_ids: list of int64 [P_l]).
        """
        if self.in_channels is None:
            self._create_heads([f.shape[1] for f in features], device=features[0].device)
        if len(features) != len(self.in_channels):
            raise ValueError(f"PatchSampler was built for {len(self.in_channels)} layers, got {len(features)} feature maps")
        samples, ids_out = [], []
        for index, feature in enumerate(features):
            if feature.shape[1] != self.in_channels[index]:
                raise ValueError(f"PatchSampler layer {index}: expected {self.in_channels[index]} channels, "
                                 f"got {feature.shape[1]}")
            batch, channels, height, width = feature.shape
            flat = feature.flatten(2).transpose(1, 2)  # [B, h*w, C]
            if patch_ids is not None:
                ids = patch_ids[index]
            elif 0 < num_patches < height * width:
                # Drawn on the CPU (a CPU generator, or the global CPU RNG) so runs are
                # reproducible from the seed whatever the device.
                ids = torch.randperm(height * width, generator=generator)[:num_patches].to(feature.device)
            else:
                ids = torch.arange(height * width, device=feature.device)
            picked = flat[:, ids, :]  # [B, P, C]
            if self.mlp_channels > 0:
                picked = self.heads[index](picked)
            samples.append(_l2_normalize(picked))
            ids_out.append(ids)
        return samples, ids_out


def patchnce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07,
                  detach_key: bool = True) -> torch.Tensor:
    """InfoNCE over patches of one layer, negatives from the same image (CUT's default).

    query: float [B,P,D] (translated patches), key: float [B,P,D] (source patches at the
    same positions), both L2-normalised. Returns the scalar mean over B*P of
    -log softmax([q_i.k_i, q_i.k_j (j != i)] / tau)[0].
    """
    if query.shape != key.shape or query.ndim != 3:
        raise ValueError(f"query and key must both be [B,P,D], got {tuple(query.shape)} and {tuple(key.shape)}")
    if detach_key:
        key = key.detach()
    batch, patches, _ = query.shape
    # Scores q_i.k_j for all pairs of one image; the diagonal holds the positives.
    scores = torch.bmm(query, key.transpose(1, 2)) / temperature  # [B, P, P]
    target = torch.arange(patches, device=query.device).expand(batch, patches)
    return F.cross_entropy(scores.flatten(0, 1).float(), target.reshape(-1))


def multilayer_patchnce_loss(sampler: PatchSampler, source_features: Sequence[torch.Tensor],
                             translated_features: Sequence[torch.Tensor], num_patches: int = 256,
                             temperature: float = 0.07,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean over layers of `patchnce_loss`, sampling the same positions in source and translation.

    source_features / translated_features: lists of float [B,C_l,h_l,w_l] from
    `generator.encode(...)` at the same layers.
    """
    if len(source_features) != len(translated_features) or not source_features:
        raise ValueError("source_features and translated_features must be non-empty lists of equal length")
    keys, ids = sampler(source_features, num_patches, generator=generator)
    queries, _ = sampler(translated_features, num_patches, patch_ids=ids)
    losses = [patchnce_loss(q, k, temperature) for q, k in zip(queries, keys)]
    return torch.stack(losses).mean()
