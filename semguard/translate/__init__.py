"""Translate: a translator checkpoint and a data set in, a translated data set out.

- translator: `Translator`, a checkpoint's generator translating batches and samples at full
  resolution (whole frames, or exact staged tiles when a frame does not fit the memory budget).
- pipeline: `translate_dataset`, a data set or a shard of it through a Translator, pipelined,
  resumable and gated by an optional judge.
- manifest: the record of verified frames that lets a rerun skip them; shards.
- tiling, memory: exact and blended tiling; per-pixel memory measurement and tile planning.
- temporal: clip-wide normalisation statistics (`--temporal clip`).
- commands: the `semguard translate` command.

For users who embed semguard in their own pipelines:

    from semguard.translate import Translator, translate_dataset
    translator = Translator.from_checkpoint("runs/toy/final.pt", device="cuda")
    translated = translator.translate_sample(sample)   # labels, instances, boxes unchanged
"""

from semguard.translate.pipeline import FrameFailed, FrameFailure, TranslateSummary, translate_dataset
from semguard.translate.translator import DEFAULT_OVERLAP, DEFAULT_TILE, Translator, flip_rates, quantize

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_TILE", "FrameFailed", "FrameFailure", "TranslateSummary", "Translator",
           "flip_rates", "quantize", "translate_dataset"]
