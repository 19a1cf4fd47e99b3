"""One writer per output: a lock file that a second run on the same output meets, and stops at.

Why a module of its own: two `translate` runs into one --out (or two `train` runs into one
train.out) would both do all the work and race on the same files. The policy, for every command
that takes it: the first run holds an exclusive `flock` on OUT/.semguard-NAME.lock, which names
its pid and command; a second run finds the lock held and stops at once (exit 2) with a message
naming the running process, before any work. Waiting was not chosen: a run that silently waits
for hours looks hung. Claiming frames was not chosen either: shards (`translate --shard i/n`,
torchrun ranks) already split the work between processes explicitly, each with its own lock.

The kernel releases a flock when its process ends, however it ends (kill -9 included), so a
lock file left by a killed run never blocks the next one; a run that ends removes its file.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from semguard.errors import SemguardError


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:300].strip()
    except OSError:
        return "another process"
    return text or "another process"


@contextmanager
def hold_output(folder: str | Path, name: str, flag: str = "--out") -> Iterator[Path]:
    """Hold the lock `folder`/.semguard-`name`.lock for the duration of the block (the folder is
    created, and removed again if the block left it empty). Raises SemguardError naming the holder
    when another live process holds it."""
    folder = Path(folder)
    created = [f for f in (folder, *folder.parents) if not f.exists()]  # removed again if left empty
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".semguard-{name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SemguardError(
                f"{flag} {folder} is in use by a running semguard ({_holder(path)}); two runs on one output would "
                f"both do all the work: wait for it to finish, stop it, or choose another {flag}"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino  # not a file the previous holder just removed
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        yield path
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)
        for made in created:  # a run refused before writing anything leaves no folder behind
            try:
                made.rmdir()
            except OSError:
                break
