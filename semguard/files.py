"""Reading and writing the files a user names: regular files only, of a bounded size, written whole.

Why a module of its own: a path the user gives may be a FIFO, a device or a socket (a read from
one blocks, or never ends), a file far larger than its kind can be (a read takes the machine's
memory), or, for an output, a symlink to a file elsewhere (a write through it destroys that
file). Every reader of configs, JSON and checkpoints goes through `read_regular_file` /
`require_regular_file`, and the writers of single output files through `write_atomically`;
each error names the file and what it is. This module imports nothing heavy (no torch), so the
config loader can use it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from semguard.errors import SemguardError


@contextmanager
def write_atomically(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on success it is renamed over `path`.

    The rename replaces whatever entry `path` is (a symlink included: the link goes, the file it
    led to is not touched), and a kill mid-write leaves `path` as it was. `suffix`: the
    temporary's extension, for writers that pick the format from it (PIL: ".png")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f"{suffix}.tmp" if suffix else ".tmp")
    os.close(fd)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


# --------------------------------------------------------------------------- reading files


# size limits of the files semguard reads from paths the user gives, by kind
CONFIG_FILE_LIMIT = 4 << 20          # a YAML config or table: a few KiB in practice
JSON_FILE_LIMIT = 256 << 20          # boxes, dataset.json, manifests, reports
DATA_FILE_LIMIT = 2 << 30            # one image or label file of a data set
CHECKPOINT_FILE_LIMIT = 16 << 30     # a checkpoint (weights + optimizer state)


def file_kind(path: str | Path) -> str:
    """What the entry at `path` is, in words: 'regular file', 'folder', 'FIFO (named pipe)', ..."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "broken symlink" if os.path.islink(path) else "missing path"
    for test, name in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def require_regular_file(path: str | Path, what: str, limit: int | None = None,
                         error: type[SemguardError] = SemguardError) -> int:
    """Refuse anything but an existing regular file (naming what it is) and, with `limit`, one larger
    than `limit` bytes; returns its size. A FIFO or a device is never opened: a read could block
    forever or never end."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "missing path":
        raise error(f"{what} {path} does not exist; check the path")
    if kind != "regular file":
        raise error(f"{what} {path} is a {kind}, not a regular file; semguard reads only regular files: "
                    "give the path of a file")
    size = os.stat(path).st_size
    if limit is not None and size > limit:
        raise error(f"{what} {path} is {size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB a file of this kind "
                    "may have; it is not such a file, or it is damaged")
    return size


def read_regular_file(path: str | Path, what: str, limit: int, error: type[SemguardError] = SemguardError) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (require_regular_file), read with the limit
    enforced while reading too (a file that grows meanwhile is not read without end)."""
    require_regular_file(path, what, limit, error)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise error(f"{what} {path} cannot be read ({err.strerror or err}); check the file and its permissions") from None
    if len(data) > limit:
        raise error(f"{what} {path} is over the {limit / 2**20:.0f} MiB a file of this kind may have")
    return data
