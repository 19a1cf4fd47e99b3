"""The benchmark's data: the target split, and each data set brought into the one form every stage reads.

Split. The target's training frames are split by a seeded permutation into two disjoint parts:
the translators' part (everything a translator learns from: the target guide, the
discriminators, layout pairing, and the downstream oracle) and the judge's part (the judge
alone). Both lists are written to WORK/split/ (`translators.txt`, `judge.txt`, one frame name a
line) with split.json saying what was split and how, so a reader can check the judge never saw a
frame the translators learnt from.

Views. Every stage is a `semguard ...` command, and those take one data set per flag in one
format, so each set the benchmark uses becomes a semguard folder data set under WORK/data/NAME:
for a folder set at its own size, links to its files (nothing copied); otherwise (another format,
or frames.size given and different) the frames are decoded through their format loader and
written resized (`semguard.data.resize.resize_sample`: image bilinear, labels nearest), train ids
and boxes included. dataset.json records what the view was made from.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from semguard.data.folder import BOX_DIR, IMAGE_DIR, INSTANCE_DIR, LABEL_DIR, read_dataset_info, write_dataset_info
from semguard.errors import DataError
from semguard.data.folder import write_sample
from semguard.data.resize import resize_sample

SPLIT_DIR = "split"
TRANSLATORS_LIST, JUDGE_LIST = "translators.txt", "judge.txt"


def split_names(names: list[str], judge_share: float, seed: int) -> tuple[list[str], list[str]]:
    """(translators' part, judge's part) of `names`: a seeded permutation, round(share * N) frames to the
    judge (at least 1, at most N - 1); both sorted, disjoint, together every name."""
    if len(names) < 2:
        raise DataError(f"cannot split {len(names)} frame(s) between the translators and the judge; need at least 2")
    if len(set(names)) != len(names):
        raise DataError("the target training frames repeat a name; a split by name needs unique names")
    order = np.random.default_rng(seed).permutation(len(names))
    judge_count = min(len(names) - 1, max(1, round(judge_share * len(names))))
    judge = sorted(names[i] for i in order[:judge_count])
    translators = sorted(names[i] for i in order[judge_count:])
    return translators, judge


def write_split(folder: Path, translators: list[str], judge: list[str], record: dict) -> Path:
    """Write the two frame lists and split.json under `folder`; returns split.json's path (written last)."""
    folder.mkdir(parents=True, exist_ok=True)
    if set(translators) & set(judge) and not record.get("judge_set_separate"):
        raise DataError("the translators' and the judge's parts share frames; this is a bug in the split")
    (folder / TRANSLATORS_LIST).write_text("".join(f"{name}\n" for name in translators))
    (folder / JUDGE_LIST).write_text("".join(f"{name}\n" for name in judge))
    path = folder / "split.json"
    path.write_text(json.dumps({**record, "translators_frames": len(translators), "judge_frames": len(judge),
                                "translators_list": TRANSLATORS_LIST, "judge_list": JUDGE_LIST}, indent=1))
    return path


def read_names(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def make_view(data_set, root: Path, fmt: str, out: Path, size: tuple[int, int] | None,
              names: list[str] | None = None, origin: dict | None = None) -> int:
    """Make OUT a semguard folder set of `data_set`'s frames (only `names`, when given): links for a folder
    set at its own size, else the frames decoded and written at `size`. Replaces OUT. Returns the frame count."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    index = {name: i for i, name in enumerate(data_set.names)}
    wanted = list(data_set.names) if names is None else names
    missing = [name for name in wanted if name not in index]
    if missing:
        raise DataError(f"{root}: frame {missing[0]!r} of the split is not in the data set any more "
                        f"({len(missing)} missing); was it changed since the split? remove {out.parent.parent} to start over")
    linked = fmt == "folder" and (size is None or _first_size(data_set, wanted, index) == tuple(size))
    info = dict(read_dataset_info(root)) if fmt == "folder" else {}
    for key in ("format", "version"):
        info.pop(key, None)
    if linked:
        for name in wanted:
            for folder, suffix in ((IMAGE_DIR, ".png"), (LABEL_DIR, ".png"), (INSTANCE_DIR, ".png"), (BOX_DIR, ".json")):
                target = root / folder / f"{name}{suffix}"
                if target.is_file():
                    link = out / folder / f"{name}{suffix}"
                    link.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(target.resolve(), link)
    else:

        for name in wanted:
            write_sample(out, resize_sample(data_set[index[name]], size))
        info["size"] = list(size) if size is not None else info.get("size")
    info.update(count=len(wanted), view_of={"root": str(root), "format": fmt, **(origin or {}),
                                            "frames": "linked" if linked else "decoded and written"
                                            + (f" at {size[0]}x{size[1]}" if size is not None else "")})
    write_dataset_info(out, **info)
    return len(wanted)


def _first_size(data_set, names: list[str], index: dict[str, int]) -> tuple[int, int] | None:
    if not names:
        return None
    return tuple(data_set[index[names[0]]].size)
