"""Mapping a data set's own ids (or colours) into train ids, and saying what went to ignore.

Every format loader maps its source ids through an `IdMapping` (integer ids) or a
`ColorMapping` (RGB colour maps). Both record, in an `IgnoreReport`, how many pixels of
each source id were sent to ignore (255), and which ids were *unexpected* (not in the
source's documented id list). In strict mode an unexpected id is a `DataError` naming
the file and the ids: a wrong `--format` or a corrupt label then stops the run instead of
quietly turning into ignore pixels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from semguard.errors import DataError
from semguard.labels import IGNORE_ID


class FrameProblem(DataError):
    """A `DataError` about one frame, with the kind of problem (for `semguard data check`).

    kind: one of PROBLEM_KINDS; path: the offending file.
    """

    def __init__(self, kind: str, path: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.path = str(path)


IMAGE_WITHOUT_LABEL = "image without label"
LABEL_WITHOUT_IMAGE = "label without image"
SIZE_MISMATCH = "size mismatch"
UNREADABLE = "unreadable file"
UNEXPECTED_IDS = "unexpected ids"
EMPTY_SET = "empty set"
BAD_ANNOTATION = "bad annotation"
FRAME_TOO_SMALL = "frame too small"
PROBLEM_KINDS = (IMAGE_WITHOUT_LABEL, LABEL_WITHOUT_IMAGE, SIZE_MISMATCH, UNREADABLE,
                 UNEXPECTED_IDS, EMPTY_SET, BAD_ANNOTATION, FRAME_TOO_SMALL)


@dataclass
class IgnoreReport:
    """What a loader sent to ignore, summed over the frames it read (in this process).

    ignored: source id (int, or a class name / "rgb(r,g,b)" for colour formats) ->
        pixels mapped to 255; includes the unexpected ids.
    unexpected: the subset of `ignored` whose ids are not in the source's id list.
    dropped_boxes: box category -> boxes dropped because the category has no train id.
    clipped_boxes: class name -> boxes clipped to the frame (they reached past it by at most
        semguard.data.sample.CLIP_TOLERANCE px).
    tiny_boxes: class name -> boxes dropped because they were under 1 px wide or tall (after clipping).
    frames: number of frames counted.
    """

    ignored: Counter = field(default_factory=Counter)
    unexpected: Counter = field(default_factory=Counter)
    dropped_boxes: Counter = field(default_factory=Counter)
    clipped_boxes: Counter = field(default_factory=Counter)
    tiny_boxes: Counter = field(default_factory=Counter)
    frames: int = 0

    def merge(self, other: "IgnoreReport") -> "IgnoreReport":
        self.ignored.update(other.ignored)
        self.unexpected.update(other.unexpected)
        self.dropped_boxes.update(other.dropped_boxes)
        self.clipped_boxes.update(other.clipped_boxes)
        self.tiny_boxes.update(other.tiny_boxes)
        self.frames += other.frames
        return self

    def to_dict(self) -> dict:
        return {
            "frames": self.frames,
            "ignored_pixels": {str(k): int(v) for k, v in self.ignored.most_common()},
            "unexpected_pixels": {str(k): int(v) for k, v in self.unexpected.most_common()},
            "dropped_boxes": {str(k): int(v) for k, v in self.dropped_boxes.most_common()},
            "clipped_boxes": {str(k): int(v) for k, v in self.clipped_boxes.most_common()},
            "tiny_boxes_dropped": {str(k): int(v) for k, v in self.tiny_boxes.most_common()},
        }

    @property
    def ignored_pixels(self) -> int:
        return int(sum(self.ignored.values()))

    def changes(self) -> str | None:
        """One line counting what loading changed (pixels sent to ignore, boxes clipped or dropped), or None."""
        parts = []
        if self.ignored:
            unexpected = sum(self.unexpected.values())
            parts.append(f"{self.ignored_pixels} px sent to ignore"
                         + (f" ({unexpected} px of unexpected ids)" if unexpected else ""))
        for counter, what in ((self.clipped_boxes, "clipped to the frame"),
                              (self.tiny_boxes, "dropped as under 1 px after clipping"),
                              (self.dropped_boxes, "dropped for a category without a train id")):
            if counter:
                parts.append(f"{sum(counter.values())} boxes {what}")
        return "; ".join(parts) if parts else None

    def lines(self, names: Mapping | None = None, limit: int = 10) -> list[str]:
        """Human-readable lines: 'id 0 (unlabeled): 1234 px -> ignore'."""
        out = []
        for source_id, pixels in self.ignored.most_common(limit):
            name = names.get(source_id) if names else None
            tag = " UNEXPECTED" if source_id in self.unexpected else ""
            out.append(f"{source_id}{f' ({name})' if name else ''}: {pixels} px -> ignore{tag}")
        for category, count in self.dropped_boxes.most_common(limit):
            out.append(f"box category '{category}': {count} boxes dropped (no train id)")
        for name, count in self.clipped_boxes.most_common(limit):
            out.append(f"class '{name}': {count} boxes clipped to the frame (within the 1 px tolerance)")
        for name, count in self.tiny_boxes.most_common(limit):
            out.append(f"class '{name}': {count} boxes dropped (under 1 px after clipping)")
        return out


def _format_ids(ids: Iterable) -> str:
    ids = list(ids)
    shown = ", ".join(str(i) for i in ids[:12])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > 12 else "")


class IdMapping:
    """Integer source ids -> train ids through a table; unlisted ids go to 255.

    table: source id -> train id; known_ids: every id the source documents (mapped or
    deliberately ignored); source: a name for messages ("Cityscapes label id");
    already_ignore: source ids that already mean ignore (255 in train-id masks): not counted
    as sent to ignore, since nothing changes.
    """

    def __init__(self, table: Mapping[int, int], known_ids: Iterable[int], source: str,
                 names: Mapping[int, str] | None = None, already_ignore: Iterable[int] = ()):
        self.table = dict(table)
        self.already_ignore = frozenset(int(i) for i in already_ignore)
        self.known_ids = frozenset(int(i) for i in known_ids) | frozenset(self.table)
        self.source = source
        self.names = names or {}
        self._size = max(max(self.known_ids, default=0) + 1, 256)
        self._lut = np.full(self._size, IGNORE_ID, dtype=np.uint8)
        for source_id, train_id in self.table.items():
            self._lut[source_id] = train_id
        self._known = np.zeros(self._size, dtype=bool)
        self._known[list(self.known_ids)] = True

    def apply(self, ids: np.ndarray, path: str, report: IgnoreReport | None = None,
              strict: bool = False) -> np.ndarray:
        """ids: integer [H,W] -> uint8 [H,W] train ids (255 = ignore)."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "ui":
            raise FrameProblem(UNREADABLE, path, f"{path}: label map has dtype {ids.dtype}, expected integer ids")
        if ids.size and ids.dtype.kind == "i" and int(ids.min()) < 0:
            raise FrameProblem(UNEXPECTED_IDS, path, f"{path}: negative {self.source}s in the label map")
        top = int(ids.max()) + 1 if ids.size else 0
        lut, known = self._lut, self._known
        if top > self._size:
            lut = np.concatenate([lut, np.full(top - self._size, IGNORE_ID, np.uint8)])
            known = np.concatenate([known, np.zeros(top - self._size, bool)])
        mapped = lut[ids]
        # only ignored pixels need counting (unknown ids map to ignore too): usually a small share
        ignored = ids[mapped == IGNORE_ID]
        counts = np.bincount(ignored, minlength=1) if ignored.size else np.zeros(1, np.int64)
        present = np.flatnonzero(counts)
        unexpected = [int(i) for i in present if not known[i]]
        if unexpected and strict:
            raise FrameProblem(
                UNEXPECTED_IDS, path,
                f"{path}: unexpected {self.source}(s) {_format_ids(unexpected)} "
                f"(known: {_format_ids(sorted(self.known_ids))}); check --format and its options, "
                "or load without strict to send them to ignore",
            )
        if report is not None:
            report.frames += 1
            for i in present:
                if int(i) not in self.already_ignore:
                    report.ignored[int(i)] += int(counts[i])
            for i in unexpected:
                report.unexpected[i] += int(counts[i])
        return mapped


def color_key(rgb: np.ndarray) -> np.ndarray:
    """uint8 [...,3] -> int64 [...] key r<<16 | g<<8 | b."""
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2].astype(np.int64)


class ColorMapping:
    """RGB colour maps -> train ids through a colour table (simulator palettes, VKITTI2).

    entries: (name, (r, g, b), train_id or 255) per documented colour; colours not listed
    are unexpected. Report keys are the entry names (unexpected: 'rgb(r,g,b)').
    """

    def __init__(self, entries: Iterable[tuple[str, tuple[int, int, int], int]], source: str):
        entries = list(entries)
        if not entries:
            raise DataError(f"{source}: the colour table is empty")
        keys = np.array([color_key(np.array(color, dtype=np.int64)) for _, color, _ in entries], dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        if len(np.unique(self._keys)) != len(self._keys):
            raise DataError(f"{source}: the colour table lists one colour twice")
        self._train = np.array([entries[i][2] for i in order], dtype=np.uint8)
        self._names = [entries[i][0] for i in order]
        self.source = source

    def apply(self, rgb: np.ndarray, path: str, report: IgnoreReport | None = None,
              strict: bool = False) -> np.ndarray:
        """rgb: uint8 [H,W,3] colour map -> uint8 [H,W] train ids."""
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise FrameProblem(UNREADABLE, path, f"{path}: expected an RGB colour label map, got shape {rgb.shape}")
        keys = color_key(rgb[..., :3])
        index = np.searchsorted(self._keys, keys).clip(0, len(self._keys) - 1)
        matched = self._keys[index] == keys
        out = np.where(matched, self._train[index], IGNORE_ID).astype(np.uint8)
        unknown_keys, unknown_counts = (np.unique(keys[~matched], return_counts=True)
                                        if not matched.all() else (np.array([], np.int64), np.array([], np.int64)))
        names = [f"rgb({k >> 16},{(k >> 8) & 255},{k & 255})" for k in unknown_keys.tolist()]
        if names and strict:
            raise FrameProblem(
                UNEXPECTED_IDS, path,
                f"{path}: colours not in the {self.source} colour table: {_format_ids(names)}; "
                "add them to the table or load without strict to send them to ignore",
            )
        if report is not None:
            report.frames += 1
            counts = np.bincount(index[matched], minlength=len(self._keys))
            for i in np.flatnonzero(counts):
                if self._train[i] == IGNORE_ID:
                    report.ignored[self._names[i]] += int(counts[i])
            for name, count in zip(names, unknown_counts.tolist()):
                report.ignored[name] += int(count)
                report.unexpected[name] += int(count)
        return out
