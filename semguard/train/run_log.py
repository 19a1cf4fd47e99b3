"""What a training run tells its user: a JSONL log of every loss term, TensorBoard events when asked,
and a rich progress bar.

out/log.jsonl holds one JSON object per logged step:
    {"step": 200, "time": seconds since start, "images_per_s": ..., "lr_g": ..., "lr_d": ...,
     "terms": {"gan": ..., "nce": ..., "seg": ..., "d": ..., "loss_g": ...}}
Terms are means over the steps since the previous line and over all processes.
Only rank 0 writes; the file is appended to (a resumed run continues it, after dropping
lines past the resumed step so the log never holds two histories).

With train.logger: tensorboard, TensorBoardLog also writes each record, and each sample grid,
as TensorBoard events under out/tensorboard/ (tags: loss/<term> for every term but loss_g, which
is `loss_g`; `loss_d`, the discriminator step's loss; lr/g, lr/d, images_per_s; the grid as image
`samples`). A resumed run adds an event file to the same folder that hides the events past the
resumed step, as the JSONL log drops its lines.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from semguard.console import output_console
from semguard.errors import ConfigError


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


def _summary_writer_class():
    """torch.utils.tensorboard.SummaryWriter; a ConfigError naming train.logger when tensorboard is missing."""
    try:
        # imported here, not at the top: tensorboard is an optional extra (with protobuf behind it), so a
        # run that logs to log.jsonl only must neither need it installed nor pay for its import
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ConfigError(f"train.logger: tensorboard needs the tensorboard package, which cannot be imported "
                          f"({err}); install it with `pip install 'semguard[tensorboard]'`, "
                          "or set train.logger: jsonl") from None
    return SummaryWriter


def require_tensorboard() -> None:
    """ConfigError (naming train.logger and the fix) unless TensorBoard event files can be written."""
    _summary_writer_class()


class TensorBoardLog:
    """The JSONL records and the sample grids as TensorBoard events in `folder`; does nothing when disabled.

    `purge_step`: the first step this writer logs; events of that step or later in the folder's
    older event files (a killed run's steps past its last checkpoint) are hidden by TensorBoard,
    so a resumed run shows one history per tag.
    """

    def __init__(self, folder: str | Path, enabled: bool, purge_step: int | None = None) -> None:
        self.folder = Path(folder)
        self._writer = None
        if enabled:
            self._writer = _summary_writer_class()(log_dir=str(self.folder), purge_step=purge_step)

    def __enter__(self) -> "TensorBoardLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, record: dict, loss_d: float) -> None:
        """One log.jsonl record (see the module docstring) and `loss_d`, the sum of the discriminator terms."""
        if self._writer is None:
            return
        step = record["step"]
        for name, value in record["terms"].items():
            self._writer.add_scalar(name if name == "loss_g" else f"loss/{name}", value, step)
        self._writer.add_scalar("loss_d", loss_d, step)
        self._writer.add_scalar("lr/g", record["lr_g"], step)
        self._writer.add_scalar("lr/d", record["lr_d"], step)
        self._writer.add_scalar("images_per_s", record["images_per_s"], step)

    def write_sample_grid(self, step: int, path: str | Path) -> None:
        """The sample grid PNG at `path` (semguard.train.samples) as image `samples` of `step`."""
        if self._writer is None:
            return
        with Image.open(path) as image:
            grid = np.asarray(image.convert("RGB"))
        self._writer.add_image("samples", grid, step, dataformats="HWC")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


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
            console=console or output_console(stderr=True),
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
