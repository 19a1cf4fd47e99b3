"""The checks every command runs before any work: input paths, output paths, numbers, memory.

Why a module of its own: a command that finds a bad argument after an hour of training loses
the hour; one that writes into its own input, or follows a symlink out of its output folder,
destroys data the user did not hand over. So each handler calls these first, and each check
raises `SemguardError` (one line on the CLI, exit status 2) naming the flag, the value and the fix.

The rules:

- inputs exist, are of the expected kind (folder or file) and are readable;
- an output folder is not a file, is not equal to an input and does not lie inside one (where
  the command's outputs would mix with the input data set, also no input inside it); an
  output file is not a folder and does not lie inside an input;
- every write resolves inside its output folder: a symlink under the output folder that points
  out of it is refused up front (`refuse_escaping_links`, naming the link), and writers check
  each target before writing or deleting (`require_inside`);
- numbers are finite and in range (`number`), sizes whose buffers cannot fit in memory are
  refused with an estimate (`require_memory`), and step and count flags have a sane maximum
  (`MAX_STEPS`, `MAX_COUNT`);
- an input file is a regular file (semguard.files: a FIFO, a device or a socket is named as
  such, never read);
- an output file is never written through a symlink nor into a FIFO or device (writers replace
  it whole: semguard.files.write_atomically); an output location the system refuses
  (a pseudo file system such as /proc, a name longer than the file system allows, a full disk)
  is bad input, named with the reason, before any work.

Paths are compared after resolving symlinks and '..', so `--out ./x/../in` is seen as `in`.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from semguard.errors import ConfigError, SemguardError
from semguard.files import file_kind, require_regular_file

# --------------------------------------------------------------------------- paths


def resolved(path: str | Path) -> Path:
    """The absolute path with every symlink and '..' resolved (the path need not exist)."""
    return Path(os.path.abspath(os.fspath(path))).resolve(strict=False)


def is_within(path: str | Path, root: str | Path) -> bool:
    """Whether `path` is `root` or lies below it, after resolving both."""
    path, root = resolved(path), resolved(root)
    return path == root or root in path.parents


def existing_path(path: str | Path | None, flag: str, kind: str = "dir") -> Path:
    """An input that must exist: kind "dir" (a folder), "file" or "any"; readable."""
    if path is None or str(path) == "":
        raise SemguardError(f"{flag} is empty; give the path of an existing {'folder' if kind == 'dir' else 'file'}")
    path = Path(path)
    if not path.exists():
        hint = " (a broken symlink)" if path.is_symlink() else ""
        raise SemguardError(f"{flag} {path} does not exist{hint}; check the path")
    if kind == "dir" and not path.is_dir():
        raise SemguardError(f"{flag} {path} is a file, expected a folder")
    if kind == "file" and path.is_dir():
        raise SemguardError(f"{flag} {path} is a folder, expected a file")
    if kind == "file":
        require_regular_file(path, flag)
    mode = os.R_OK | (os.X_OK if path.is_dir() else 0)
    if not os.access(path, mode):
        raise SemguardError(f"{flag} {path} is not readable (permissions); fix its permissions or give another path")
    return path


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.exists(candidate):  # False (not an error) for a name too long to look up
            return candidate
    return Path("/")


def _require_writable(path: Path, flag: str) -> None:
    absolute = Path(os.path.abspath(path))
    anchor = _nearest_existing(absolute)
    if anchor.exists() and not anchor.is_dir() and anchor != absolute:
        kind = "file" if anchor.is_file() else file_kind(anchor)
        raise SemguardError(f"{flag} {path}: {anchor} is a {kind}, so nothing can be written below it; "
                            "give another path")
    target = anchor if anchor.is_dir() else anchor.parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise SemguardError(f"{flag} {path}: {target} is not writable (permissions); give another path")
    _require_file_system_accepts(target, flag, path)


def _require_names_fit(path: Path, flag: str) -> None:
    """Refuse a path with a name or a total length the file system that would hold it cannot store
    (checked first: the system refuses even to look such a path up)."""
    absolute = Path(os.path.abspath(path))
    target = _nearest_existing(absolute)
    try:
        name_max = os.pathconf(target, "PC_NAME_MAX")
        path_max = os.pathconf(target, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in absolute.parts:
        if len(os.fsencode(part)) > name_max:
            raise SemguardError(f"{flag} {path}: the name {part[:40]}... is {len(os.fsencode(part))} bytes long, the "
                                f"file system allows {name_max} ({os.strerror(errno.ENAMETOOLONG)}); give a shorter name")
    if len(os.fsencode(str(absolute))) >= path_max:
        raise SemguardError(f"{flag} {path}: the path is {len(os.fsencode(str(absolute)))} bytes long, the system "
                            f"allows {path_max - 1} ({os.strerror(errno.ENAMETOOLONG)}); give a shorter path")


def _require_file_system_accepts(target: Path, flag: str, path: Path) -> None:
    """Refuse an output on a file system that takes no new files (/proc, /sys: the kernel's views) or
    that is full, naming the reason; probed by creating and removing one empty temporary file."""
    try:
        fd, probe = tempfile.mkstemp(dir=target, prefix=".semguard-probe.")
    except OSError as err:
        raise SemguardError(f"{flag} {path}: the system refuses to create files in {target} "
                            f"({err.strerror or err}); give a path on an ordinary, writable file system") from None
    os.close(fd)
    os.unlink(probe)
    try:
        space = os.statvfs(target)
    except OSError:
        return
    if space.f_bavail * space.f_frsize == 0 and space.f_blocks > 0:
        raise SemguardError(f"{flag} {path}: the file system holding {target} is full "
                            f"({os.strerror(errno.ENOSPC)}); free space or give a path on another file system")


def _against_inputs(out: Path, flag: str, inputs: Mapping[str, str | Path | None], what: str,
                    refuse_input_inside: bool) -> None:
    out_real = resolved(out)
    for input_flag, input_path in inputs.items():
        if input_path is None or str(input_path) == "":
            continue
        input_real = resolved(input_path)
        if out_real == input_real:
            raise SemguardError(f"{flag} {out} is the same {what} as {input_flag} {input_path}: writing there would "
                                "overwrite the input; choose another output path")
        if input_real in out_real.parents:
            raise SemguardError(f"{flag} {out} lies inside {input_flag} {input_path}: the outputs would mix with "
                                "(and could overwrite) the input data; choose a path outside it")
        if refuse_input_inside and out_real in input_real.parents:
            raise SemguardError(f"{input_flag} {input_path} lies inside {flag} {out}: the outputs would mix with the "
                                "input data set; choose an output folder that does not contain the input")


def output_folder(path: str | Path | None, flag: str, inputs: Mapping[str, str | Path | None] | None = None,
                  refuse_input_inside: bool = False) -> Path:
    """An output folder: not a file, not equal to or inside an input (with `refuse_input_inside`,
    no input inside it either), writable, and holding no symlink that leads out of it."""
    if path is None or str(path) == "":
        raise SemguardError(f"{flag} is empty; give an output folder")
    path = Path(path)
    _require_names_fit(path, flag)
    if path.exists() and not path.is_dir():
        raise SemguardError(f"{flag} {path} is a file, expected a folder; give a folder path (it is created if missing)")
    _against_inputs(path, flag, inputs or {}, "folder", refuse_input_inside)
    _require_writable(path, flag)
    refuse_escaping_links(path, flag)
    return path


def output_file(path: str | Path | None, flag: str, inputs: Mapping[str, str | Path | None] | None = None,
                example: str = "out.pt") -> Path:
    """An output file: not a folder, not an input file nor inside an input folder, writable."""
    if path is None or str(path) == "":
        raise SemguardError(f"{flag} is empty; give a file path such as {example}")
    path = Path(path)
    _require_names_fit(path, flag)
    if path.is_symlink():
        raise SemguardError(f"{flag} {path} is a symlink to {resolved(path)}; semguard never writes through a link "
                            "(the file it leads to would be overwritten): remove the link or give another path")
    if path.is_dir():
        raise SemguardError(f"{flag} {path} is a folder, expected a file path such as {path / example}")
    if path.exists() and not path.is_file():
        raise SemguardError(f"{flag} {path} is a {file_kind(path)}, not a regular file; give the path of a file "
                            f"to write, such as {path.parent / example}")
    _against_inputs(path, flag, inputs or {}, "path", refuse_input_inside=False)
    _require_writable(path, flag)
    return path


def escaping_links(root: str | Path, limit: int = 1) -> list[tuple[Path, Path]]:
    """(link, where it leads) for symlinks under `root` that resolve outside it (at most `limit`)."""
    root = Path(root)
    if not root.is_dir():
        return []
    root_real = resolved(root)
    found: list[tuple[Path, Path]] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in (*dirs, *files):
            entry = Path(folder) / name
            if entry.is_symlink():
                target = resolved(entry)
                if not (target == root_real or root_real in target.parents):
                    found.append((entry, target))
                    if len(found) >= limit:
                        return found
    return found


def refuse_escaping_links(root: str | Path, flag: str) -> None:
    """Refuse an output folder holding a symlink that leads out of it (named in the message)."""
    links = escaping_links(root)
    if links:
        link, target = links[0]
        raise SemguardError(f"{flag} {root}: {link} is a symlink to {target}, outside the output folder; "
                            "semguard never writes or deletes through such links: remove the link or choose another folder")


def require_inside(root: str | Path, path: str | Path) -> Path:
    """`path` (to be written or deleted) must resolve inside `root`; raises naming the symlink otherwise."""
    root, path = Path(root), Path(path)
    if is_within(path, root):
        return path
    culprit = None
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = None
    if relative is not None:
        current = root
        for part in relative.parts:
            current = current / part
            if current.is_symlink():
                culprit = current
                break
    if culprit is not None:
        raise SemguardError(f"{culprit} is a symlink to {resolved(culprit)}, outside {root}; refusing to write or "
                            f"delete {path} through it: remove the link")
    raise SemguardError(f"{path} is outside the output folder {root}; refusing to write or delete it")


# --------------------------------------------------------------------------- numbers


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return "a finite number"


def number(value, flag: str, *, low=None, high=None, low_open: bool = False, high_open: bool = False,
           integer: bool = False, error: type[SemguardError] = SemguardError):
    """`value` if it is a finite number in range (None passes through); else an error naming `flag`
    and the valid range."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{flag} is {value!r}, expected a number")
    if integer and not float(value).is_integer():
        raise error(f"{flag} is {value!r}, expected a whole number")
    if not math.isfinite(float(value)):
        raise error(f"{flag} is {value}, expected a finite number {_range_text(low, high, low_open, high_open)}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise error(f"{flag} must be {_range_text(low, high, low_open, high_open)}, got {value}")
    return value


# the most optimisation steps, epochs or repetitions a flag may ask for (10^8 steps of the smallest model
# take years; a larger value is a typo, e.g. train.steps=10**30, and would overflow schedules and counters)
MAX_STEPS = 10**8
# the most items (frames, images, tiles, samples, patches) a count flag may ask for at once
MAX_COUNT = 10**7


def numbers(checks: Iterable[tuple]) -> None:
    """Run `number` over (value, flag, keyword dict) triples."""
    for value, flag, limits in checks:
        number(value, flag, **limits)


def workers(value: int | None, flag: str, low: int = 0) -> int | None:
    """A process or thread count: a whole number from `low` to 4x the CPU count (more only thrashes)."""
    return number(value, flag, low=low, high=4 * (os.cpu_count() or 1), integer=True)


def device(text: str | None, flag: str = "--device", allow_auto: bool = True):
    """A torch device string that exists here: cpu, cuda, cuda:N (N < the GPU count), or auto."""
    if text is None or (allow_auto and str(text) == "auto"):
        return text
    import torch  # only this check needs torch; the path and number checks stay quick to import

    try:
        parsed = torch.device(str(text))
    except (RuntimeError, ValueError):
        raise SemguardError(f"{flag} {text!r} is not a device; use cpu, cuda, cuda:N"
                            f"{' or auto' if allow_auto else ''}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise SemguardError(f"{flag} {text}: no CUDA device is available here; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise SemguardError(f"{flag} {text}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 ...)")
    elif parsed.type not in ("cpu", "mps"):
        raise SemguardError(f"{flag} {text!r}: semguard runs on cpu or cuda devices")
    return text


# --------------------------------------------------------------------------- memory


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable, else physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def require_memory(needed: float, what: str, fix: str, share: float = 0.8) -> None:
    """Refuse work whose buffers (`needed` bytes, an estimate) exceed `share` of the available memory."""
    available = available_memory()
    if needed > share * available:
        raise SemguardError(f"{what} needs about {needed / 2**30:.1f} GiB of memory, {available / 2**30:.1f} GiB are "
                            f"available; {fix}")


# --------------------------------------------------------------------------- format options


def parse_options(pairs: Iterable[str] | None, flag: str = "--option") -> dict[str, str]:
    """KEY=VALUE strings (from a repeatable flag) -> {key: value}; a malformed or repeated one is an error."""
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{flag} '{pair}' must be KEY=VALUE (e.g. {flag} version=0.9.14)")
        if key in options:
            raise ConfigError(f"{flag} {key} is given twice ({options[key]!r} and {value.strip()!r}); give it once")
        options[key] = value.strip()
    return options


def add_threads_argument(parser) -> None:
    """The `--threads N` of every command that computes on the CPU (0: torch's own choice)."""
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default 0: torch's own choice); independent runs side by side "
                             "at one thread each use a small CPU best (docs/BENCHMARKS.md)")


def use_threads(count: int, flag: str = "--threads") -> None:
    """Check a thread count (0: torch's own choice) and give torch that many CPU threads."""
    workers(count, flag)
    if count:
        import torch  # only this setting needs torch; the path and number checks stay quick to import

        torch.set_num_threads(count)


def add_option_argument(parser, flag: str = "--option", what: str = "the data set") -> None:
    """The repeatable `--option KEY=VALUE` of every command that opens a data set."""
    parser.add_argument(flag, action="append", metavar="KEY=VALUE", default=None,
                        help=f"format option of {what}, repeatable (e.g. version=0.9.14 for carla, "
                             "table=PATH for palette, split=val, strict=true)")
