"""Format loaders: every data set semguard reads, mapped into train ids at load time.

`FORMATS` maps a format name to its loader class; `open_dataset(root, fmt, **options)`
builds one (a map-style data set: len, getitem -> `Sample`, `.names`, `.ignore_report`).
Common options of every format: strict (unexpected ids are errors), labels_required
(False: images without labels load with an all-ignore label). Format options are listed
in each class's `options_help`; an unknown option is an error that lists the valid ones.
Layouts: docs/FORMATS.md and each module's docstring.
"""

from __future__ import annotations

from pathlib import Path

from semguard.data.formats.base import FrameDataset
from semguard.data.formats.bdd100k import Bdd100kFormat
from semguard.data.formats.camvid import CamvidFormat
from semguard.data.formats.carla import CarlaFormat
from semguard.data.formats.cityscapes import CityscapesFormat
from semguard.data.formats.coco import CocoFormat
from semguard.data.formats.folder import FolderFormat
from semguard.data.formats.gta5 import Gta5Format
from semguard.data.formats.ids import IdsFormat
from semguard.data.formats.palette import PaletteFormat
from semguard.data.formats.shift import ShiftFormat
from semguard.data.formats.synscapes import SynscapesFormat
from semguard.data.formats.synthia import SynthiaFormat
from semguard.data.formats.vkitti2 import Vkitti2Format
from semguard.errors import ConfigError

FORMATS: dict[str, type[FrameDataset]] = {
    "folder": FolderFormat,
    "cityscapes": CityscapesFormat,
    "gta5": Gta5Format,
    "shift": ShiftFormat,
    "carla": CarlaFormat,
    "vkitti2": Vkitti2Format,
    "bdd100k": Bdd100kFormat,
    "synscapes": SynscapesFormat,
    "synthia": SynthiaFormat,
    "palette": PaletteFormat,
    "coco": CocoFormat,
    "camvid": CamvidFormat,
    "ids": IdsFormat,
}
COMMON_OPTIONS = ("strict", "labels_required", "check_pairs")


def format_class(fmt: str) -> type[FrameDataset]:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ConfigError(f"unknown data set format '{fmt}'; valid formats: {', '.join(FORMATS)}") from None


def open_dataset(root: str | Path, fmt: str = "folder", **options) -> FrameDataset:
    """Open the data set at `root` in format `fmt` (a FORMATS name) with format options.

    Returns a map-style data set: len, getitem(i) -> Sample (train ids, 255 ignore), .names,
    .ignore_report. Raises ConfigError (unknown format/option) or DataError (bad data).
    """
    cls = format_class(fmt)
    unknown = sorted(set(options) - set(COMMON_OPTIONS) - set(cls.options_help))
    if unknown:
        valid = [*cls.options_help, *COMMON_OPTIONS[:2]]
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for format '{fmt}'; valid options: {', '.join(valid)}")
    return cls(root, **options)


__all__ = ["FORMATS", "FrameDataset", "open_dataset", "format_class"]
