"""Simulators with their own colour palette (MORAI and others): a user YAML colour table.

    ROOT/images/NAME.{png,jpg}    ROOT/labels/NAME.png (RGB colour label)    [ROOT/boxes.json]

The table (option `table`, required) is YAML read with safe_load:

    classes:
      - {color: [128, 64, 128], train_id: road}      # a train id 0..18, its name, or ignore
      - {color: [0, 0, 0], train_id: ignore, name: unlabeled}

Colours not in the table are unexpected (ignored and counted; strict: an error).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from semguard.data.formats.base import Frame, require_option
from semguard.data.formats.label_folders import FOLDER_OPTIONS, LabelFolderFormat
from semguard.data.readers import read_ids, read_pil, require_same_size
from semguard.data.mapping import ColorMapping, IgnoreReport
from semguard.config import read_yaml
from semguard.errors import ConfigError
from semguard.labels import IGNORE_ID, NAME_TO_TRAIN_ID, NUM_CLASSES


def _train_id(value, where: str) -> int:
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "ignore":
            return IGNORE_ID
        if key in NAME_TO_TRAIN_ID:
            return NAME_TO_TRAIN_ID[key]
    elif isinstance(value, int) and not isinstance(value, bool) and (0 <= value < NUM_CLASSES or value == IGNORE_ID):
        return value
    raise ConfigError(f"{where}: train_id {value!r} is not a train id 0..18, 255, 'ignore' or one of "
                      f"{', '.join(NAME_TO_TRAIN_ID)}")


def load_palette_table(path: str | Path) -> ColorMapping:
    """Read a palette YAML (see the module docstring) into a ColorMapping."""
    path = Path(path)
    if not os.path.lexists(path) or (path.is_symlink() and not path.exists()):
        raise ConfigError(f"palette table {path} does not exist; pass the simulator's colour table with --option table=PATH")
    # the one YAML reader: a regular file of a bounded size, no repeated keys, bounded alias expansion
    data = read_yaml(path)
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, list) or not classes:
        raise ConfigError(f"{path}: expected a top-level 'classes' list of {{color: [r, g, b], train_id: ...}}")
    entries = []
    for index, entry in enumerate(classes):
        where = f"{path}: classes[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"color", "train_id", "name"} or "color" not in entry or "train_id" not in entry:
            raise ConfigError(f"{where} must have keys color and train_id (and optionally name), got {entry!r}")
        color = entry["color"]
        if (not isinstance(color, list) or len(color) != 3
                or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)):
            raise ConfigError(f"{where}: color must be [r, g, b] with integers 0..255, got {color!r}")
        train_id = _train_id(entry["train_id"], where)
        name = str(entry.get("name") or f"rgb({color[0]},{color[1]},{color[2]})")
        entries.append((name, tuple(color), train_id))
    try:
        return ColorMapping(entries, source=f"palette table {path}")
    except Exception as err:  # duplicate colours
        raise ConfigError(str(err)) from None


class PaletteFormat(LabelFolderFormat):
    format_name = "palette"
    options_help = {"table": "REQUIRED: YAML colour -> train id table", **FOLDER_OPTIONS,
                    "label_dir": "colour label folder under ROOT (default labels)"}

    def __init__(self, root, *, table: str | None = None, **kwargs):
        self.table_path = require_option(table, "table", "palette")
        self.mapping = load_palette_table(self.table_path)
        super().__init__(root, **kwargs)

    def read_label_file(self, image, frame: Frame, report: IgnoreReport, strict: bool):
        rgb = read_ids(frame.label)
        if rgb.ndim == 2:  # a palette-mode PNG: take its colours
            rgb = np.asarray(read_pil(frame.label, "label").convert("RGB"))
        require_same_size(image, rgb, frame.image, frame.label, "colour label")
        return self.mapping.apply(rgb, frame.label, report, strict)
