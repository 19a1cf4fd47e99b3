"""The trainer's endless stream of (source, target) batches, with a resumable position.

`build_unpaired_loader` gives an infinite stream that can restart at any batch number
(`loader.iterate(start_batch)`, exact because everything random derives from the seed
and the position). `BatchStream` counts the batches handed out; a checkpoint records
that count and a resumed run continues with exactly the batch an uninterrupted run would
have seen next.

Loaders without `iterate` (plain finite iterables) are also accepted: they are restarted
after each pass (calling `set_epoch(epoch)` when present) and resumed by replaying from
the start of the recorded pass (exact when the loader is reproducible; costs data loading).
Fetching a batch never moves the trainer's global RNGs (see semguard.train.rng.isolated_rng).
"""

from __future__ import annotations

from typing import Any, Iterable

from semguard.train.rng import isolated_rng


class BatchStream:
    def __init__(self, loader: Iterable) -> None:
        self.loader = loader
        self.batches = 0          # batches handed out since the start of the run
        self.epoch = 0            # passes over a finite loader (always 0 for an infinite one)
        self.batch_in_epoch = 0
        self._iterator = None

    def _restart(self) -> None:
        if hasattr(self.loader, "iterate"):
            self._iterator = iter(self.loader.iterate(self.batches))
            return
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(self.epoch)
        self._iterator = iter(self.loader)

    def next(self) -> Any:
        with isolated_rng():
            return self._next()

    def _next(self) -> Any:
        if self._iterator is None:
            self._restart()
        while True:
            try:
                item = next(self._iterator)
                break
            except StopIteration:
                if self.batch_in_epoch == 0:
                    raise RuntimeError("the training data loader yielded no batch; is a data set empty?") from None
                self.epoch += 1
                self.batch_in_epoch = 0
                self._restart()
        self.batch_in_epoch += 1
        self.batches += 1
        return item

    def state_dict(self) -> dict:
        return {"batches": self.batches, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def load_state_dict(self, state: dict) -> None:
        """Continue right after the position recorded in `state`."""
        self.batches, self.epoch = int(state["batches"]), int(state["epoch"])
        if hasattr(self.loader, "iterate"):
            self.batch_in_epoch = int(state["batch_in_epoch"])
            self._restart()
            return
        skip = int(state["batch_in_epoch"])
        self.batches -= skip
        self.batch_in_epoch = 0
        with isolated_rng():
            self._restart()
            for _ in range(skip):
                next(self._iterator)
                self.batch_in_epoch += 1
                self.batches += 1
