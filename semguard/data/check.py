"""Scan a data set and collect *every* problem (the loaders stop at the first one).

`check_dataset(root, fmt, **options)` lists the frames, reads each one (image, label,
boxes) and returns a `CheckReport`: problems (image without label, label without image,
size mismatch, unreadable or truncated file, unexpected ids, bad annotation (boxes breaking the
box rule of semguard.data.sample, a dataset.json of another format or an unsupported version,
...), empty set),
the ignore report over all frames, and whether the set is usable. `require_usable`
is what training and translation call to refuse a broken set with the first problems named.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from semguard.data.formats import open_dataset
from semguard.data.formats.base import as_bool
from semguard.data.mapping import (
    BAD_ANNOTATION, EMPTY_SET, FRAME_TOO_SMALL, IMAGE_WITHOUT_LABEL, LABEL_WITHOUT_IMAGE, UNEXPECTED_IDS, FrameProblem, IgnoreReport,
)
from semguard.errors import ConfigError, DataError
from semguard.labels import TRAFFIC_LIGHT

# the smallest frame side a data set may have: the generators pad to their size multiple and halve it
# n_downsample times, and each level must keep at least 2 px (translate checks its own model's minimum
# too, which is larger for deeper generators, and fails a smaller frame by name)
MIN_FRAME_SIDE = 8


@dataclass(frozen=True)
class Problem:
    kind: str      # one of semguard.data.mapping.PROBLEM_KINDS
    path: str      # the offending file (or the data set root)
    detail: str    # one sentence, with the fix


@dataclass
class CheckReport:
    root: str
    format: str
    frames: int = 0              # frames listed (image + label pairs, or images when labels are optional)
    checked: int = 0             # frames read
    problems: list[Problem] = field(default_factory=list)
    ignore: IgnoreReport = field(default_factory=IgnoreReport)
    id_names: dict = field(default_factory=dict)
    lights: int = 0                  # traffic light boxes in the frames read
    lights_without_state: int = 0    # ... whose "state" is none of semguard.labels.LIGHT_STATES
    skipped: list[str] = field(default_factory=list)  # entries beside the frames that are not frames (not read)

    @property
    def usable(self) -> bool:
        return not self.problems

    def counts(self) -> Counter:
        return Counter(problem.kind for problem in self.problems)

    def summary(self) -> str:
        if self.usable:
            return f"{self.root} ({self.format}): usable, {self.checked}/{self.frames} frames checked, no problems"
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts().most_common())
        return f"{self.root} ({self.format}): NOT usable, {self.checked}/{self.frames} frames checked: {counts}"

    def to_dict(self) -> dict:
        """Plain JSON data (what `semguard data check --json` prints): every problem, not only the
        first --max-rows, as {"kind", "path", "detail"}; "counts" per kind; "ignore" what loading changed."""
        return {"root": self.root, "format": self.format, "frames": self.frames, "checked": self.checked,
                "usable": self.usable, "summary": self.summary(), "counts": dict(self.counts().most_common()),
                "problems": [p.__dict__ for p in self.problems], "ignore": self.ignore.to_dict(),
                "skipped": list(self.skipped)}

    def skipped_line(self, shown: int = 5) -> str | None:
        """'3 files beside the frames skipped (not frames): a.jpg, ...' or None."""
        if not self.skipped:
            return None
        names = ", ".join(self.skipped[:shown]) + (f" and {len(self.skipped) - shown} more" if len(self.skipped) > shown else "")
        return (f"{len(self.skipped)} entries beside the frames skipped (another extension, or not a regular file; "
                f"not read): {names}")


def check_dataset(root: str | Path, fmt: str = "folder", limit: int | None = None, **options) -> CheckReport:
    """Check every frame (or the first `limit`) of the data set at `root`; never raises DataError.

    options: the format's options (see FORMATS[fmt].options_help), plus labels_required.
    Unexpected ids are collected as problems (strict is implied; ids are listed per frame).
    Config mistakes (unknown format or option, missing required option) still raise ConfigError.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be a whole number >= 0 (frames to check), got {limit!r}")
    options = {k: v for k, v in options.items() if k != "strict"}
    report = CheckReport(root=str(root), format=fmt)
    try:
        dataset = open_dataset(root, fmt, check_pairs=False, **options)
    except FrameProblem as err:
        report.problems.append(Problem(err.kind, err.path, str(err)))
        return report
    except ConfigError:
        raise
    except DataError as err:
        report.problems.append(Problem(BAD_ANNOTATION, str(root), str(err)))
        return report
    report.id_names = dict(getattr(dataset, "id_names", {}) or {})
    skipped = getattr(dataset, "skipped_files", None)
    report.skipped = list(skipped()) if callable(skipped) else []
    index = dataset.index
    if dataset.labels_required:
        for ref in index.orphan_images:
            report.problems.append(Problem(IMAGE_WITHOUT_LABEL, ref, f"{ref}: image without a label file"))
    for ref in index.orphan_labels:
        report.problems.append(Problem(LABEL_WITHOUT_IMAGE, ref, f"{ref}: label without an image"))
    report.frames = len(dataset.frames)
    if not dataset.frames:
        report.problems.append(Problem(EMPTY_SET, str(root), f"{root}: no frames found for format '{fmt}'; "
                                                             "check the path and the folder layout"))
        return report
    frames = dataset.frames if limit is None else dataset.frames[: max(0, int(limit))]
    for frame in frames:
        frame_report = IgnoreReport()
        try:
            sample = dataset.read(frame, frame_report, strict=False)
            height, width = sample.size
            if min(height, width) < MIN_FRAME_SIDE:
                report.problems.append(Problem(FRAME_TOO_SMALL, frame.image, (
                    f"{frame.image}: the frame is {width}x{height} px, under the {MIN_FRAME_SIDE} px a side every "
                    "semguard model needs (the generators and segmenters halve it several times); remove it or "
                    "upscale the data set")))
            lights = [box for box in sample.boxes if int(box.class_id) == TRAFFIC_LIGHT]
            report.lights += len(lights)
            report.lights_without_state += sum(box.light_state is None for box in lights)
        except FrameProblem as err:
            report.problems.append(Problem(err.kind, err.path, str(err)))
        except DataError as err:
            report.problems.append(Problem(BAD_ANNOTATION, frame.image, str(err)))
        except (ValueError, TypeError, IndexError, KeyError, OverflowError) as err:
            # a loader tripping over malformed content is still this frame's problem, not a crash of the check
            report.problems.append(Problem(BAD_ANNOTATION, frame.image,
                                           f"{frame.image}: cannot be read ({type(err).__name__}: {err}); "
                                           "regenerate or remove this frame"))
        report.checked += 1
        if frame_report.unexpected:
            ids = ", ".join(f"{k} ({v} px)" for k, v in frame_report.unexpected.most_common(8))
            report.problems.append(Problem(UNEXPECTED_IDS, frame.label or frame.image,
                                           f"{frame.label}: unexpected ids {ids}; check --format and its options"))
        report.ignore.merge(frame_report)
    return report


def require_usable(root: str | Path, fmt: str = "folder", limit: int | None = None, what: str | None = None,
                   **options) -> CheckReport:
    """check_dataset, raising DataError naming the first problems when the set is not usable.

    what: the flag or key that named `root` (e.g. "--val"), put in front of the message.
    With the option strict=false, unexpected ids are not problems (they go to ignore, counted
    in the report's ignore report)."""
    report = check_dataset(root, fmt, limit=limit, **options)
    if not as_bool(options.get("strict", True), "strict"):
        report.problems = [p for p in report.problems if p.kind != UNEXPECTED_IDS]
    if not report.usable:
        first = "; ".join(p.detail for p in report.problems[:3])
        option_text = "".join(f" --option {k}={v}" for k, v in options.items() if k != "labels_required")
        raise DataError(f"{what + ': ' if what else ''}{report.summary()}. First problems: {first}. Run "
                        f"`semguard data check {root} --format {fmt}{option_text}` for the full list")
    return report
