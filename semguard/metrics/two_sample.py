"""A realism figure that sees texture: a classifier two-sample test on matched content.

KID and FID read the judge's semantic features, so a translator that blurs its frames can
score close to the paired truth. A classifier two-sample test (C2ST; Lopez-Paz & Oquab,
"Revisiting classifier two-sample tests", ICLR 2017) asks instead whether *any* small
network, trained from scratch, can tell two image sets apart: held-out accuracy 0.5 means
indistinguishable, 1.0 fully separable.

Here the two sets show the same layouts (frame i of A and frame i of B are one scene, e.g.
a translated sim frame and its paired truth), so the test is on matched content: a pair
goes whole into the training half or the held-out half, and the network, trained on random
crops with random flips and pooled globally, can only tell the sets apart by how things
look (texture, noise, blur, colour), never by where they are. The interval is a bootstrap
over held-out *pairs* (the two frames of a pair share a scene, so they are not independent).

`two_sample_accuracy(a, b)` runs the test on two tensors; `two_sample_report(translated_dir,
reference_dir)` on two folder data sets matched by frame name, and records what produced it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from semguard.data.formats import open_dataset

MEANING = ("held-out accuracy of a small CNN trained from scratch to tell the two sets apart on matched "
           "layouts: 0.5 = indistinguishable, 1.0 = fully separable")
DEFAULT_STEPS = 300
DEFAULT_CROP = 32
DEFAULT_BATCH = 32
DEFAULT_RESAMPLES = 1000


class TextureCritic(nn.Module):
    """Four 3x3 convolutions (three of stride 2), global average pool, one logit: about 37k weights.

    image: float32 [B,3,H,W] in [-1,1], any H, W >= 8 -> logit float32 [B] (> 0: set B).
    The pool makes the decision a statistic of local texture over the whole input, so a
    crop-trained critic reads whole frames at test time.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        channels = (3, width, 2 * width, 3 * width, 3 * width)
        strides = (2, 2, 2, 1)
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, stride=s, padding=1) for c_in, c_out, s in zip(channels, channels[1:], strides)
        )
        self.head = nn.Linear(channels[-1], 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.head(x.mean(dim=(2, 3))).squeeze(1)


def as_image_tensor(images, what: str) -> torch.Tensor:
    """float32 [N,3,H,W] in [-1,1] from such a tensor or from a list of uint8 [H,W,3] arrays."""
    if isinstance(images, torch.Tensor):
        tensor = images.detach().float().cpu()
    else:
        arrays = list(images)
        if not arrays:
            raise ValueError(f"{what} is empty")
        for i, array in enumerate(arrays):
            if not (isinstance(array, np.ndarray) and array.dtype == np.uint8
                    and array.ndim == 3 and array.shape[2] == 3):
                raise ValueError(f"{what}[{i}] must be a uint8 [H,W,3] array, got "
                                 f"{getattr(array, 'dtype', type(array).__name__)} {getattr(array, 'shape', '')}")
        if len({a.shape for a in arrays}) > 1:
            raise ValueError(f"{what}: frames differ in size ({sorted({a.shape for a in arrays})[:2]}...)")
        tensor = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"{what} must be float [N,3,H,W] in [-1,1], got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{what} holds NaN or infinite values")
    return tensor.contiguous()


def paired_split(count: int, seed: int, train_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(train pair indices, held-out pair indices) of `count` pairs: a seeded permutation cut at
    floor(count * train_fraction). Index i of A and index i of B always land in the same half."""
    if count < 4:
        raise ValueError(f"a two-sample test needs at least 4 pairs (2 to train, 2 to test), got {count}")
    order = np.random.default_rng([int(seed), 7]).permutation(count)
    n_train = min(max(int(count * train_fraction), 2), count - 2)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def bootstrap_interval(correct: np.ndarray, resamples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of `correct` (float [P,K]: K outcomes per pair) over
    `resamples` resamplings of the P pairs with replacement."""
    rng = np.random.default_rng([int(seed), 11])
    per_pair = correct.mean(axis=1)
    draws = rng.integers(0, len(per_pair), size=(int(resamples), len(per_pair)))
    means = per_pair[draws].mean(axis=1)
    tail = (1.0 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


@contextmanager
def _torch_threads(threads: int | None):
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1 (or None: torch's current setting), got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _crops(images: torch.Tensor, crop: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """One random crop per image (same size), each flipped left-right with probability 1/2."""
    count, _, height, width = images.shape
    tops = torch.randint(0, height - crop[0] + 1, (count,), generator=generator)
    lefts = torch.randint(0, width - crop[1] + 1, (count,), generator=generator)
    flips = torch.rand(count, generator=generator) < 0.5
    out = torch.stack([images[i, :, top:top + crop[0], left:left + crop[1]]
                       for i, (top, left) in enumerate(zip(tops.tolist(), lefts.tolist()))])
    out[flips] = out[flips].flip(3)
    return out


def two_sample_accuracy(
    a,
    b,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    crop: int | tuple[int, int] = DEFAULT_CROP,
    batch: int = DEFAULT_BATCH,
    lr: float = 2e-3,
    width: int = 16,
    resamples: int = DEFAULT_RESAMPLES,
    train_fraction: float = 0.5,
    threads: int | None = None,
) -> dict:
    """Classifier two-sample test between image sets A and B on matched content.

    a, b: float32 [N,3,H,W] in [-1,1] (or lists of N uint8 [H,W,3] arrays); frame i of A and
    frame i of B show the same layout (N >= 4, same H, W). The N pairs are split by a seeded
    permutation (`paired_split`): floor(N * train_fraction) pairs train a `TextureCritic`
    from scratch (Adam, lr, `steps` steps of `batch` frames per set, each a random crop of
    `crop` px, (h, w) or square, flipped left-right at random); the other pairs are held out
    and classified whole (flipped and unflipped logits averaged), threshold 0.
    accuracy = (held-out frames of A called A + frames of B called B) / (2 * held-out pairs);
    the interval is a percentile bootstrap over held-out pairs (`resamples` draws, seeded).
    pair_accuracy: the share of held-out pairs whose B frame scores above its A frame (the
    matched-content two-alternative choice; 0.5 = chance too). Deterministic for a seed on
    CPU; threads: torch threads for the call (None: leave the setting alone).

    Returns {"accuracy", "interval": [low, high], "level": 0.95, "pair_accuracy", "n_train",
    "n_test" (frames, both sets), "pairs_train", "pairs_test", "held_out_pairs" (pair indices), "steps",
    "batch", "crop": [h, w], "seed", "resamples", "critic_parameters", "meaning"}.

    The interval covers the held-out sample only, not the training draw: a critic that calls
    every frame one class scores exactly 0.5 on every resample. Repeat over seeds (and more
    frames) to see the training's spread; at 64 frames per set the floor's accuracy varies by
    about +-0.1 between data draws.
    """
    a = as_image_tensor(a, "a")
    b = as_image_tensor(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} must have the same shape: frame i of each "
                         "shows the same layout")
    crop_hw = (int(crop), int(crop)) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))
    height, width_px = a.shape[2:]
    if not (8 <= crop_hw[0] <= height and 8 <= crop_hw[1] <= width_px):
        raise ValueError(f"crop {crop_hw[0]}x{crop_hw[1]} must be at least 8x8 and fit the {height}x{width_px} frames")
    if steps < 1 or batch < 1 or resamples < 1:
        raise ValueError(f"steps, batch and resamples must be >= 1, got {steps}, {batch}, {resamples}")
    train_pairs, test_pairs = paired_split(len(a), seed, train_fraction)
    with _torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        critic = TextureCritic(width)
        optimizer = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.999))
        generator = torch.Generator().manual_seed(int(seed) + 1)
        train_a, train_b = a[train_pairs], b[train_pairs]
        target = torch.cat([torch.zeros(batch), torch.ones(batch)])
        critic.train()
        for _ in range(int(steps)):
            pick_a = torch.randint(0, len(train_pairs), (batch,), generator=generator)
            pick_b = torch.randint(0, len(train_pairs), (batch,), generator=generator)
            inputs = torch.cat([_crops(train_a[pick_a], crop_hw, generator),
                                _crops(train_b[pick_b], crop_hw, generator)])
            loss = F.binary_cross_entropy_with_logits(critic(inputs), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        critic.eval()
        with torch.no_grad():
            test = torch.cat([a[test_pairs], b[test_pairs]])
            logits = 0.5 * (critic(test) + critic(test.flip(3)))
    logit_a, logit_b = logits[: len(test_pairs)].numpy(), logits[len(test_pairs):].numpy()
    correct = np.stack([logit_a <= 0, logit_b > 0], axis=1).astype(np.float64)      # [pairs, 2]
    accuracy = float(correct.mean())
    low, high = bootstrap_interval(correct, resamples, seed)
    pair_accuracy = float(np.mean((logit_b > logit_a) + 0.5 * (logit_b == logit_a)))
    return {
        "accuracy": accuracy,
        "interval": [low, high],
        "level": 0.95,
        "pair_accuracy": pair_accuracy,
        "n_train": 2 * len(train_pairs),
        "n_test": 2 * len(test_pairs),
        "pairs_train": len(train_pairs),
        "pairs_test": len(test_pairs),
        "held_out_pairs": [int(i) for i in test_pairs],
        "steps": int(steps),
        "batch": int(batch),
        "crop": list(crop_hw),
        "seed": int(seed),
        "resamples": int(resamples),
        "critic_parameters": sum(p.numel() for p in critic.parameters()),
        "meaning": MEANING,
    }


def _read_images(dataset, names: list[str], what: str) -> list[np.ndarray]:
    index = {name: i for i, name in enumerate(dataset.names)}
    images = [dataset[index[name]].image for name in names]
    sizes = {image.shape for image in images}
    if len(sizes) > 1:
        raise ValueError(f"{what}: frames differ in size ({', '.join(map(str, sorted(sizes)[:3]))}); "
                         "a two-sample test needs one frame size")
    return images


def two_sample_report(
    translated_dir: str | Path,
    reference_dir: str | Path,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    crop: int | tuple[int, int] = DEFAULT_CROP,
    limit: int | None = None,
    threads: int | None = None,
    **options,
) -> dict:
    """`two_sample_accuracy` between two semguard folder data sets matched by frame name.

    translated_dir: e.g. a `semguard translate` output of sim/val; reference_dir: the frames
    of the same layouts to compare with (the paired truth paired/val, a second rendering of
    it, or the untranslated sim/val). Both are read with `open_dataset(root, "folder",
    labels_required=False)`; every translated frame needs a reference frame of the same
    name and size (reference frames without a translation are left out). limit: use the
    first `limit` matched names (sorted). options: passed on to `two_sample_accuracy`
    (batch, lr, width, resamples, train_fraction). A = translated, B = reference.

    Returns the `two_sample_accuracy` dict plus "translated_dir", "reference_dir", "frames"
    (matched pairs used), "size": [H, W] and "critic": a description of the network.
    """
    translated = open_dataset(translated_dir, "folder", labels_required=False)
    reference = open_dataset(reference_dir, "folder", labels_required=False)
    known = set(reference.names)
    missing = [name for name in translated.names if name not in known]
    if missing:
        raise ValueError(f"{len(missing)} translated frame(s) have no reference frame of the same name in "
                         f"{reference_dir} (first: {missing[0]!r}); compare a translation with the frames of its own "
                         "layouts")
    names = sorted(translated.names)
    if limit is not None:
        if limit < 4:
            raise ValueError(f"limit must be >= 4 (2 pairs to train, 2 to test), got {limit}")
        names = names[:limit]
    images_a = _read_images(translated, names, str(translated_dir))
    images_b = _read_images(reference, names, str(reference_dir))
    if images_a[0].shape != images_b[0].shape:
        raise ValueError(f"translated frames are {images_a[0].shape[:2]} but reference frames {images_b[0].shape[:2]}; "
                         "compare frames of one size")
    result = two_sample_accuracy(images_a, images_b, steps=steps, seed=seed, crop=crop, threads=threads, **options)
    return {
        **result,
        "translated_dir": str(translated_dir),
        "reference_dir": str(reference_dir),
        "frames": len(names),
        "size": list(images_a[0].shape[:2]),
        "critic": f"TextureCritic: 4 conv3x3 (strides 2,2,2,1), leaky ReLU, global mean pool, linear; "
                  f"{result['critic_parameters']} weights, trained from scratch",
    }
