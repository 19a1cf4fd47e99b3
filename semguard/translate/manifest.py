"""The record of a translation run: which frames are done, verified, failed or flagged.

OUT/manifest.json is what users read: checkpoint sha256, config, semguard version, judge
settings and one entry per frame {"status": "ok"|"failed"|"flagged", "reason", "flip_rate",
"written", "files": {relative path: {"bytes", "sha256"}}}. Each process (a shard, a
torchrun rank) writes its own part file OUT/.manifest-parts/shard-I-of-N.json (atomic,
every few seconds), so processes never write one file at once; the parts are merged into
manifest.json under a file lock at the end of each process (and periodically). A killed
run loses at most the last few seconds of records: those frames are translated again.

Sharding: frames are sorted by name and shard i of n takes the contiguous block
names[i*N//n : (i+1)*N//n], so any n shards cover the set exactly once.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from semguard.common import file_sha256
from semguard.data.folder import write_json
from semguard.errors import SemguardError
from semguard.files import JSON_FILE_LIMIT, read_regular_file

MANIFEST_NAME = "manifest.json"
PARTS_DIR = ".manifest-parts"
MANIFEST_FORMAT = "semguard-translate-manifest"
# header keys that must agree between runs writing into one OUT folder
IDENTITY_KEYS = ("checkpoint_sha256", "judge_sha256", "max_flip_rate", "drop_flagged", "temporal")


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise SemguardError(f"--shard '{text}' must look like i/n, e.g. 0/4 (shards are numbered from 0)") from None
    if count < 1 or not 0 <= index < count:
        raise SemguardError(f"--shard '{text}': need 0 <= i < n")
    return index, count


def combine_shard(shard: tuple[int, int], rank: int, world_size: int) -> tuple[int, int]:
    """A --shard i/n split further across `world_size` processes (torchrun): rank r of
    shard i is shard i*world + r of n*world (contiguous blocks nest, so coverage is exact)."""
    index, count = shard
    return index * world_size + rank, count * world_size


def shard_names(names: list[str], shard: tuple[int, int]) -> list[str]:
    """The sorted names of shard (i, n): a contiguous block of the sorted names."""
    index, count = shard
    ordered = sorted(names)
    return ordered[index * len(ordered) // count:(index + 1) * len(ordered) // count]


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".manifest.lock", "a+") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: parts still never collide; the merge is unlocked
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Manifest:
    """This process's records plus the merged view of every part in OUT."""

    def __init__(self, out: str | Path, header: dict, shard: tuple[int, int]):
        self.out = Path(out)
        self.header = dict(header)
        self.shard = shard
        self.part_path = self.out / PARTS_DIR / f"shard-{shard[0]}-of-{shard[1]}.json"
        self.frames: dict[str, dict] = {}  # this process's part (carried over from its earlier runs)
        self.known: dict[str, dict] = {}   # all parts merged (newest record of each frame wins)
        self._last_flush = 0.0
        self._last_merge = 0.0

    def load(self) -> None:
        """Read every existing part and the merged manifest; refuse an OUT written with
        another checkpoint or judge setting."""
        sources = []
        manifest_path = self.out / MANIFEST_NAME
        if manifest_path.is_file():
            sources.append(manifest_path)
        parts = self.out / PARTS_DIR
        if parts.is_dir():
            sources += sorted(parts.glob("shard-*.json"))
        for path in sources:
            try:
                data = json.loads(read_regular_file(path, "manifest", JSON_FILE_LIMIT).decode("utf-8"))
            except (OSError, ValueError, SemguardError) as err:  # a FIFO or device is named, never read
                raise SemguardError(f"{path}: unreadable manifest ({err}); delete it to retranslate those frames") from None
            old = data.get("header", {})
            for key in IDENTITY_KEYS:
                if key in old and old.get(key) != self.header.get(key):
                    raise SemguardError(
                        f"{self.out} holds frames translated with {key}={old.get(key)!r}, this run has "
                        f"{self.header.get(key)!r}; use another --out folder, or delete {self.out} to start over"
                    )
            for name, record in data.get("frames", {}).items():
                if name not in self.known or record.get("time", 0) >= self.known[name].get("time", 0):
                    self.known[name] = record
                if path == self.part_path:
                    self.frames[name] = record

    def record(self, name: str, record: dict) -> None:
        record = {**record, "shard": f"{self.shard[0]}/{self.shard[1]}", "time": time.time()}
        self.frames[name] = record
        self.known[name] = record

    def flush(self, force: bool = False, every: float = 2.0, merge_every: float = 30.0) -> None:
        """Write this process's part (atomically) at most every `every` seconds; merge
        into manifest.json at most every `merge_every` seconds (both when forced)."""
        now = time.monotonic()
        if force or now - self._last_flush >= every:
            write_json(self.part_path, {"header": self.header, "frames": self.frames})
            self._last_flush = now
        if force or now - self._last_merge >= merge_every:
            self.merge()
            self._last_merge = now

    def merge(self) -> dict:
        """Merge every part into OUT/manifest.json under a lock; returns the manifest."""
        with _locked(self.out):
            frames: dict[str, dict] = {}
            manifest_path = self.out / MANIFEST_NAME
            sources = [manifest_path] if manifest_path.is_file() else []
            sources += sorted((self.out / PARTS_DIR).glob("shard-*.json"))
            for path in sources:
                try:
                    data = json.loads(read_regular_file(path, "manifest", JSON_FILE_LIMIT).decode("utf-8"))
                except (OSError, ValueError, SemguardError):
                    continue
                for name, record in data.get("frames", {}).items():
                    if name not in frames or record.get("time", 0) >= frames[name].get("time", 0):
                        frames[name] = record
            counts: dict[str, int] = {}
            for record in frames.values():
                counts[record["status"]] = counts.get(record["status"], 0) + 1
            manifest = {
                "format": MANIFEST_FORMAT, "version": 1, "header": self.header,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "counts": counts,
                "frames": dict(sorted(frames.items())),
            }
            write_json(manifest_path, manifest)
        return manifest


def outputs_valid(out: Path, record: dict | None, deep: bool = False) -> bool:
    """A frame is done when its record says ok/flagged and every file it lists exists with
    the recorded size (and, when `deep`, the recorded sha256). Files are written
    atomically, so an existing file of the right size is a complete one."""
    if not record or record.get("status") not in ("ok", "flagged"):
        return False
    if not record.get("written", False):
        return record.get("status") == "flagged"  # judged and left out on purpose
    files = record.get("files") or {}
    if not files:
        return False

    for relative, meta in files.items():
        path = out / relative
        try:
            if path.stat().st_size != meta["bytes"]:
                return False
        except OSError:
            return False
        if deep and file_sha256(path) != meta["sha256"]:
            return False
    return True


def remove_stale_temporaries(out: Path, names: set[str], part_name: str | None = None) -> int:
    """Delete temporary files that a killed writer left for the frames in `names` and for
    this process's manifest part `part_name` (folder.write_png/write_json write
    '.FILE.XXXX.tmp' beside FILE); other processes' files are left alone. Returns the count."""
    removed = 0
    if not out.is_dir():
        return 0
    for path in out.rglob(".*.tmp"):
        relative = path.relative_to(out)
        if relative.parts[0] == PARTS_DIR:
            if part_name and path.name.startswith(f".{part_name}."):
                path.unlink(missing_ok=True)
                removed += 1
            continue
        base = path.name[1:].rsplit(".", 2)[0]  # '.NAME.png.abc123.tmp' -> 'NAME.png'
        stem = base.rsplit(".", 1)[0]
        name = "/".join([*relative.parts[1:-1], stem])
        if name in names:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
