"""What a training run tells its user: a JSONL log of every loss term, and a rich progress bar.

out/log.jsonl holds one JSON object per logged step:
    {"step": 200, "time": seconds since start, "images_per_s": ..., "lr_g": ..., "lr_d": ...,
     "terms": {"gan": ..., "nce": ..., "seg": ..., "d_real": ...}, "loss_g": ..., "loss_d": ...}
Terms are means over the steps since the previous line and over all processes.
Only rank 0 writes; the file is appended to (a resumed run continues it, after dropping
lines past the resumed step so the log never holds two histories).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class JsonlLog:
    """Append-only JSON-lines log; `truncate_after(step)` drops lines of a later step (for resume)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue   # a line cut by a kill mid-write
        self.path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=True) + "\n")


def read_log(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def format_terms(terms: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.3g}" if math.isfinite(value) else f"{name} {value}" for name, value in terms.items())


class ProgressDisplay:
    """Rich progress bar with the loss terms, img/s and ETA; inactive (prints nothing) when disabled."""

    def __init__(self, total_steps: int, start_step: int, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self._progress = None
        if not enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]train[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[terms]}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=start_step, speed="", terms="")

    def __enter__(self) -> "ProgressDisplay":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, images_per_s: float | None = None, terms: dict[str, float] | None = None) -> None:
        if self._progress is None:
            return
        fields = {}
        if images_per_s is not None:
            fields["speed"] = f"{images_per_s:.1f} img/s"
        if terms is not None:
            fields["terms"] = format_terms(terms)
        self._progress.update(self._task, completed=step, **fields)

    def print(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message)
