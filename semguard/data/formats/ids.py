"""Any data set whose labels are grey id PNGs: a user YAML id table maps the ids to train ids.

    ROOT/images/NAME.{png,jpg}    ROOT/labels/NAME.png (grey 8- or 16-bit ids, or a palette PNG
                                  whose indices are the ids)    [ROOT/boxes.json]

The table (option `table`, required) is YAML (read as the palette table is), the palette format's twin:

    ids:
      - {id: 3, train_id: road, name: Road}     # a train id 0..18, its name, or ignore
      - {id: 11, train_id: ignore, name: unlabelled}

Ids not in the table are unexpected: `semguard data check` lists them per file, strict loading
refuses them naming the file and the ids (otherwise they go to ignore and are counted).
"""

from __future__ import annotations

import os
from pathlib import Path

from semguard.data.formats.base import Frame, require_option
from semguard.data.formats.label_folders import FOLDER_OPTIONS, LabelFolderFormat
from semguard.data.formats.palette import _train_id
from semguard.data.mapping import IdMapping, IgnoreReport
from semguard.data.readers import read_label
from semguard.config import read_yaml
from semguard.errors import ConfigError

ENTRY_KEYS = ("id", "train_id", "name")
MAX_ID = 65535   # 16-bit grey labels


def load_id_table(path: str | Path) -> IdMapping:
    """Read an id table YAML (see the module docstring) into an IdMapping; errors name the file and key."""
    path = Path(path)
    if not os.path.lexists(path) or (path.is_symlink() and not path.exists()):
        raise ConfigError(f"id table {path} does not exist; pass the data set's id table with --option table=PATH")
    data = read_yaml(path)   # the one YAML reader (as the palette table): safe_load types, no repeated keys
    if isinstance(data, dict) and set(data) - {"ids"}:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(map(str, sorted(set(data) - {'ids'}, key=str)))}; "
                          "valid key: ids")
    entries = data.get("ids") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a top-level 'ids' list of {{id: N, train_id: ...}}")
    table, names = {}, {}
    for index, entry in enumerate(entries):
        where = f"{path}: ids[{index}]"
        if not isinstance(entry, dict) or "id" not in entry or "train_id" not in entry:
            raise ConfigError(f"{where} must have keys id and train_id (and optionally name), got {entry!r}")
        unknown = sorted(set(entry) - set(ENTRY_KEYS), key=str)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; valid keys: {', '.join(ENTRY_KEYS)}")
        source_id = entry["id"]
        if not isinstance(source_id, int) or isinstance(source_id, bool) or not 0 <= source_id <= MAX_ID:
            raise ConfigError(f"{where}: id must be an integer 0..{MAX_ID}, got {source_id!r}")
        if source_id in table:
            raise ConfigError(f"{where}: id {source_id} is listed twice (first as {names[source_id]!r}); list each id once")
        table[source_id] = _train_id(entry["train_id"], where)
        names[source_id] = str(entry.get("name") or f"id {source_id}")
    return IdMapping(table, known_ids=table, source="id", names=names)


class IdsFormat(LabelFolderFormat):
    format_name = "ids"
    options_help = {"table": "REQUIRED: YAML id -> train id table", **FOLDER_OPTIONS,
                    "label_dir": "grey id label folder under ROOT (default labels)"}

    def __init__(self, root, *, table: str | None = None, **kwargs):
        self.table_path = require_option(table, "table", "ids")
        self.mapping = load_id_table(self.table_path)
        self.id_names = dict(self.mapping.names)
        super().__init__(root, **kwargs)

    def read_label_file(self, image, frame: Frame, report: IgnoreReport, strict: bool):
        return read_label(image, frame.image, frame.label, self.mapping, report, strict,
                          not_single="ids labels are single-channel id PNGs, got shape {shape}; colour labels "
                                     "need --format palette")
