"""Bad inputs through the real CLI: every one refused or reported, nothing lost, nothing escapes.

Each case of the table builds one broken input in a fresh folder (a 4-frame 32x64 folder data
set, a tiny translator checkpoint, a run config) and runs `semguard ...` on it. It asserts the
exit status (2 bad input, 1 some frames failed or the set is not usable), that the message
names the file or key on one line, that there is no traceback, and, by hashing the whole
folder before and after, that no input changed and nothing was written outside --out (for
status 2: nothing written at all). The table runs in-process through `semguard.cli.main`
(python + torch start once); `test_real_process` runs a subset as real subprocesses for the
exit status a shell sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from semguard.cli import main
from semguard.config import config_from_dict
from semguard.data.folder import write_dataset_info, write_sample
from semguard.data.sample import Box, Sample

H, W = 32, 64
NAMES = ["f0", "f1", "f2", "f3"]
TINY_MODEL = {"generator": "spade", "base_channels": 4, "n_blocks": 1, "n_downsample": 1}


def _write_set(root: Path) -> None:
    rng = np.random.default_rng(0)
    for index, name in enumerate(NAMES):
        label = np.full((H, W), 10, np.uint8)
        label[H // 2:] = 0
        label[8:20, 10:30] = 13
        instances = np.zeros((H, W), np.int32)
        instances[8:20, 10:30] = 1
        boxes = [Box((10.0, 8.0, 30.0, 20.0), 13, 1), Box((40.0, 2.0, 44.0, 9.0), 6, 0, {"state": "red"})]
        write_sample(root, Sample(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), label, instances, boxes, name=name))
    write_dataset_info(root, domain="sim")


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("assets")
    _write_set(root / "data")
    from semguard.models import build_generator
    from semguard.checkpoints import save_translator

    config = config_from_dict({"model": TINY_MODEL})
    torch.manual_seed(0)
    generator, _ = build_generator(config.model)
    state = generator.state_dict()
    save_translator(root / "translator.pt", config, generator, generator_ema=state, step=1)
    return root


@pytest.fixture
def case_dir(assets, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("COLUMNS", "1000")  # rich tables and lines unwrapped, as on a wide terminal
    shutil.copytree(assets / "data", tmp_path / "data")
    shutil.copy(assets / "translator.pt", tmp_path / "translator.pt")
    shutil.copy(assets / "translator.pt", tmp_path / "judge.pt")   # exists; the cases refuse before reading it
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep.txt").write_text("not semguard's to touch")
    return tmp_path


# ------------------------------------------------------------------------------ breaking inputs


def edit_box(index: int = 0, frame: str = "f0", **changes) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        path = d / "data" / "boxes" / f"{frame}.json"
        data = json.loads(path.read_text())
        data["boxes"][index].update(changes)
        path.write_text(json.dumps(data))  # json writes NaN / Infinity literals, as other tools do
    return setup


def write_text(relative: str, text: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / relative).parent.mkdir(parents=True, exist_ok=True)
        (d / relative).write_text(text)
    return setup


def label_id(value: int, frame: str = "f0") -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        path = d / "data" / "labels" / f"{frame}.png"
        label = np.array(Image.open(path))
        label[0, :4] = value
        Image.fromarray(label).save(path)
    return setup


def link(relative: str, target: str = "elsewhere") -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / relative).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(d / target, d / relative)
    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        for step in setups:
            step(d)
    return setup


def truncate(relative: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / relative).write_bytes((d / relative).read_bytes()[:40])
    return setup


def pickled_object(d: Path) -> None:
    import argparse

    torch.save({"kind": "translator", "config": argparse.Namespace(x=1)}, d / "translator.pt")


def run_config(d: Path, **sections) -> Path:
    config = {
        "data": {"source": str(d / "data"), "target": str(d / "data"), "crop": [H, W], "batch_size": 1},
        "model": TINY_MODEL, "loss": {"seg": 0.0, "box": 0.0},
        "train": {"steps": 2, "out": str(d / "run"), "device": "cpu", "sample_every": 0, "checkpoint_every": 0},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    import yaml

    (d / "run.yaml").write_text(yaml.safe_dump(config))
    return d / "run.yaml"


# ------------------------------------------------------------------------------ the table


@dataclass
class Case:
    id: str
    argv: Callable[[Path], list[str]]
    code: int
    fragment: str                          # must appear in the message line ({d} = the case folder)
    setup: Callable[[Path], None] | None = None
    out: str | None = None                 # relative output folder that may change (exit 1 cases)


def check(*extra: str) -> Callable[[Path], list[str]]:
    return lambda d: ["data", "check", str(d / "data"), *extra]


def translate(*extra: str, out: str = "out", input: str = "data") -> Callable[[Path], list[str]]:
    return lambda d: ["translate", "--checkpoint", str(d / "translator.pt"), "--input", str(d / input),
                      "--out", str(d / out), "--workers", "0", "--device", "cpu", "--no-progress", "--tile", "0",
                      *[e.format(d=d) for e in extra]]


def train(*overrides: str, **sections) -> Callable[[Path], list[str]]:
    def argv(d: Path) -> list[str]:
        path = run_config(d, **sections)
        return ["train", "--config", str(path), "--no-progress", *[f"--set={o.format(d=d)}" for o in overrides]]
    return argv


def segmenter(command: str, *extra: str) -> Callable[[Path], list[str]]:
    def argv(d: Path) -> list[str]:
        args = ["segmenter", command, "--data", str(d / "data"), "--out", str(d / "seg.pt"), "--quiet"]
        if command == "train":
            args += ["--role", "guide", "--steps", "1"]
        return [*args, *[e.format(d=d) for e in extra]]
    return argv


def evaluate(*extra: str) -> Callable[[Path], list[str]]:
    return lambda d: ["eval", "--translated", str(d / "data"), "--source", str(d / "data"), "--target-val",
                      str(d / "data"), "--judge", str(d / "judge.pt"), *[e.format(d=d) for e in extra]]


def raw(*args: str) -> Callable[[Path], list[str]]:
    return lambda d: [a.format(d=d) for a in args]


CASES = [
    # ---- data check: damage reported as a problem with its file (exit 1), bad arguments exit 2
    Case("check-box-nan", check(), 1, "boxes/f0.json", edit_box(xyxy=[float("nan"), 1, 5, 5])),
    Case("check-box-inf", check(), 1, "non-finite", edit_box(xyxy=[1, 1, float("inf"), 5])),
    Case("check-box-negative", check(), 1, "outside the 64x32", edit_box(xyxy=[-5, 1, 5, 5])),
    Case("check-box-inverted", check(), 1, "inverted", edit_box(xyxy=[30, 8, 10, 20])),
    Case("check-box-outside", check(), 1, "outside the 64x32", edit_box(xyxy=[60, 8, 200, 20])),
    Case("check-box-unknown-class", check(), 1, "unknown class 'spaceship'", edit_box(**{"class": "spaceship"})),
    Case("check-box-class-disagrees", check(), 1, "make the two agree", edit_box(**{"class": "person"})),
    Case("check-box-class-id-range", check(), 1, "class_id 99", edit_box(class_id=99, **{"class": None})),
    Case("check-box-class-id-string", check(), 1, "class_id '6'", edit_box(class_id="6")),
    Case("check-box-three-numbers", check(), 1, "four numbers", edit_box(xyxy=[1, 2, 3])),
    Case("check-box-size-mismatch", check(), 1, "says size [64, 64]", write_text(
        "data/boxes/f1.json", json.dumps({"size": [64, 64], "boxes": []}))),
    Case("check-box-attributes-list", check(), 1, "attributes", edit_box(attributes=["red"])),
    Case("check-box-instance-negative", check(), 1, "instance_id -1", edit_box(instance_id=-1)),
    Case("check-boxes-corrupt-json", check(), 1, "boxes/f2.json", write_text("data/boxes/f2.json", "{not json")),
    Case("check-boxes-not-a-list", check(), 1, "boxes/f2.json", write_text("data/boxes/f2.json", '{"boxes": 3}')),
    Case("check-dataset-json-version", check(), 1, "version 99", write_text(
        "data/dataset.json", '{"format": "semguard-folder", "version": 99}')),
    Case("check-dataset-json-format", check(), 1, "is not 'semguard-folder'", write_text(
        "data/dataset.json", '{"format": "coco", "version": 1}')),
    Case("check-dataset-json-list", check(), 1, "dataset.json", write_text("data/dataset.json", "[1, 2]")),
    Case("check-label-id-out-of-table", check(), 1, "labels/f0.png", label_id(77)),
    Case("check-truncated-image", check(), 1, "images/f1.png", truncate("data/images/f1.png")),
    Case("check-limit-negative", check("--limit", "-3"), 2, "--limit"),
    Case("check-limit-zero", check("--limit", "0"), 2, "--limit"),
    Case("check-max-rows-negative", check("--max-rows", "-1"), 2, "--max-rows"),
    Case("check-root-missing", raw("data", "check", "{d}/nowhere"), 2, "nowhere does not exist"),
    Case("check-root-is-file", raw("data", "check", "{d}/translator.pt"), 2, "is a file"),
    Case("check-option-malformed", check("--option", "novalue"), 2, "KEY=VALUE"),
    Case("check-option-twice", check("--option", "split=a", "--option", "split=b"), 2, "given twice"),
    Case("check-option-unknown", check("--option", "colour=red"), 2, "colour"),
    Case("check-carla-needs-version", check("--format", "carla"), 2, "version"),
    # ---- translate: unsafe outputs refused before any work
    Case("translate-out-is-input", translate(out="data"), 2, "same folder as --input"),
    Case("translate-out-inside-input", translate(out="data/translated"), 2, "lies inside --input"),
    Case("translate-input-inside-out", translate(out="."), 2, "lies inside --out"),
    Case("translate-out-via-dotdot", translate(out="data/../data"), 2, "same folder as --input"),
    Case("translate-out-is-file", translate(out="translator.pt"), 2, "is a file, expected a folder"),
    Case("translate-out-link-folder", translate(), 2, "out/images is a symlink", link("out/images")),
    Case("translate-out-link-file", translate(), 2, "out/boxes/f0.json is a symlink",
         link("out/boxes/f0.json", "elsewhere/keep.txt")),
    Case("translate-out-link-drop-flagged", translate("--judge", "{d}/judge.pt", "--max-flip-rate", "0.1",
                                                      "--drop-flagged"), 2, "out/labels is a symlink",
         link("out/labels")),
    Case("translate-checkpoint-missing", translate(), 2, "translator.pt does not exist",
         lambda d: (d / "translator.pt").unlink()),
    Case("translate-checkpoint-folder", lambda d: translate()(d)[:2] + [str(d / "elsewhere")] + translate()(d)[3:],
         2, "is a folder, expected a file"),
    Case("translate-checkpoint-garbage", translate(), 2, "corrupt", write_text("translator.pt", "garbage")),
    Case("translate-checkpoint-pickled-code", translate(), 2, "pickled object", pickled_object),
    Case("translate-input-missing", translate(input="nowhere"), 2, "--input"),
    Case("translate-judge-missing", translate("--judge", "{d}/nojudge.pt"), 2, "nojudge.pt does not exist"),
    Case("translate-tile-negative", translate("--tile", "-1"), 2, "--tile"),
    Case("translate-batch-zero", translate("--batch-size", "0"), 2, "--batch-size"),
    Case("translate-workers-negative", translate("--workers", "-1"), 2, "--workers"),
    Case("translate-writers-zero", translate("--writers", "0"), 2, "--writers"),
    Case("translate-png-level-ten", translate("--png-level", "10"), 2, "--png-level"),
    Case("translate-flip-rate-nan", translate("--judge", "{d}/judge.pt", "--max-flip-rate", "nan"), 2,
         "--max-flip-rate"),
    Case("translate-flip-rate-above-1", translate("--judge", "{d}/judge.pt", "--max-flip-rate", "2"), 2,
         "--max-flip-rate"),
    Case("translate-check-frames-negative", translate("--check-frames", "-1"), 2, "--check-frames"),
    Case("translate-shard", translate("--shard", "3/2"), 2, "--shard"),
    Case("translate-option-strict", translate("--option", "strict=maybe"), 2, "strict"),
    Case("translate-option-unknown", translate("--option", "colour=red"), 2, "colour"),
    Case("translate-empty-set", translate(input="elsewhere"), 2, "images"),
    Case("translate-dataset-json-version", translate(), 2, "version 99", write_text(
        "data/dataset.json", '{"format": "semguard-folder", "version": 99}')),
    # ---- translate: damaged frames fail by name, the rest are translated, exit 1
    Case("translate-frame-box-nan", translate(), 1, "f0: ", edit_box(xyxy=[float("nan"), 1, 5, 5]), out="out"),
    Case("translate-frame-class-id-range", translate(), 1, "f0: ", edit_box(class_id=42, **{"class": None}), out="out"),
    Case("translate-frame-label-id", translate(), 1, "f0: ", label_id(77), out="out"),
    Case("translate-frame-fail-on-error", translate("--fail-on-error"), 1, "f0: ", truncate("data/images/f0.png"),
         out="out"),
    # ---- train: configs and run folders
    Case("train-empty-yaml", raw("train", "--config", "{d}/empty.yaml"), 2, "empty", write_text("empty.yaml", "# x\n")),
    Case("train-yaml-list", raw("train", "--config", "{d}/list.yaml"), 2, "mapping", write_text("list.yaml", "- 1\n")),
    Case("train-ema-decay", train("train.ema_decay=1.5"), 2, "train.ema_decay"),
    Case("train-lr-nan", train("train.lr_g=.nan"), 2, "train.lr_g"),
    Case("train-lr-negative", train("train.lr_d=-0.1"), 2, "train.lr_d"),
    Case("train-betas", train("train.betas=[0.5,1.0]"), 2, "train.betas[1]"),
    Case("train-crop-prob", train("data.small_box_crop_prob=2"), 2, "data.small_box_crop_prob"),
    Case("train-steps-zero", train("train.steps=0"), 2, "train.steps"),
    Case("train-unknown-key", train("train.stepz=3"), 2, "train.stepz"),
    Case("train-out-inside-source", train("train.out={d}/data/run"), 2, "lies inside data.source"),
    Case("train-out-is-source", train("train.out={d}/data"), 2, "same folder as data.source"),
    Case("train-out-is-file", train("train.out={d}/translator.pt"), 2, "is a file"),
    Case("train-out-link", train(), 2, "run/checkpoints is a symlink", link("run/checkpoints")),
    Case("train-source-missing", train("data.source={d}/nowhere"), 2, "data.source"),
    Case("train-guide-missing", train("guide.checkpoint={d}/noguide.pt"), 2, "guide.checkpoint"),
    Case("train-source-option", train("data.source_options={{colour: red}}"), 2, "colour"),
    Case("train-source-box-nan", train(), 2, "boxes/f0.json", edit_box(xyxy=[float("nan"), 1, 5, 5])),
    # ---- segmenter train / train-crops: everything refused before training
    Case("segmenter-out-is-folder", lambda d: segmenter("train")(d)[:5] + [str(d / "elsewhere")] + segmenter("train")(d)[6:],
         2, "is a folder, expected a file"),
    Case("segmenter-out-inside-data", lambda d: [*segmenter("train")(d), "--out", str(d / "data" / "s.pt")], 2,
         "lies inside --data"),
    Case("segmenter-val-missing", segmenter("train", "--val", "{d}/noval"), 2, "--val"),
    Case("segmenter-val-box-nan", segmenter("train", "--val", "{d}/val"), 2, "--val", both(
        lambda d: shutil.copytree(d / "data", d / "val"),
        lambda d: (d / "val" / "boxes" / "f3.json").write_text('{"boxes": [{"xyxy": [NaN, 1, 5, 5], "class_id": 6}]}'))),
    Case("segmenter-lr-nan", segmenter("train", "--lr", "nan"), 2, "--lr"),
    Case("segmenter-steps-zero", segmenter("train", "--steps", "0"), 2, "--steps"),
    Case("segmenter-option-unknown", segmenter("train", "--option", "colour=red"), 2, "colour"),
    Case("segmenter-label-id", segmenter("train"), 2, "labels/f0.png", label_id(77)),
    Case("crops-box-nan", segmenter("train-crops"), 2, "boxes/f0.json", edit_box(xyxy=[float("nan"), 1, 5, 5])),
    Case("crops-crop-size-zero", segmenter("train-crops", "--crop-size", "0"), 2, "--crop-size"),
    Case("crops-val-fraction", segmenter("train-crops", "--val-fraction", "1"), 2, "--val-fraction"),
    Case("crops-margin-inf", segmenter("train-crops", "--margin", "inf"), 2, "--margin"),
    # ---- eval
    Case("eval-out-is-source", evaluate("--flip-report", "--out", "{d}/data"), 2, "same folder as --source"),
    Case("eval-out-inside-target", evaluate("--flip-report", "--out", "{d}/data/report"), 2, "lies inside"),
    Case("eval-out-is-file", evaluate("--flip-report", "--out", "{d}/judge.pt"), 2, "is a file"),
    Case("eval-judge-missing", evaluate("--judge", "{d}/nojudge.pt"), 2, "nojudge.pt does not exist"),
    Case("eval-source-box-nan", evaluate(), 2, "boxes/f0.json", edit_box(xyxy=[float("nan"), 1, 5, 5])),
    Case("eval-max-images-zero", evaluate("--max-images", "0"), 2, "--max-images"),
    Case("eval-kid-subsets-zero", evaluate("--kid-subsets", "0"), 2, "--kid-subsets"),
    Case("eval-judge-is-translator", evaluate(), 2, "translator", None),
    Case("eval-source-option", evaluate("--source-option", "colour=red"), 2, "colour"),
    # ---- make-toy, preview, stats
    Case("make-toy-huge", raw("data", "make-toy", "--out", "{d}/toy", "--size", "60000x60000"), 2, "--size"),
    Case("make-toy-train-range", raw("data", "make-toy", "--out", "{d}/toy", "--train", "1000000"), 2, "--train"),
    Case("make-toy-out-is-file", raw("data", "make-toy", "--out", "{d}/translator.pt", "--train", "1"), 2, "is a file"),
    Case("make-toy-out-link", raw("data", "make-toy", "--out", "{d}/toy", "--train", "1", "--overwrite"), 2,
         "toy/sim is a symlink", link("toy/sim")),
    Case("preview-scale-huge", raw("data", "preview", "{d}/data", "--out", "{d}/p.png", "--scale", "100000"), 2,
         "--scale"),
    Case("preview-n-huge", raw("data", "preview", "{d}/data", "--out", "{d}/p.png", "--n", "100000000"), 2, "--n"),
    Case("preview-scale-zero", raw("data", "preview", "{d}/data", "--out", "{d}/p.png", "--scale", "0"), 2, "--scale"),
    Case("preview-out-is-folder", raw("data", "preview", "{d}/data", "--out", "{d}/elsewhere"), 2, "is a folder"),
    Case("preview-out-inside-root", raw("data", "preview", "{d}/data", "--out", "{d}/data/images/p.png"), 2,
         "lies inside ROOT"),
    Case("stats-limit-negative", raw("data", "stats", "{d}/data", "--limit", "-3"), 2, "--limit"),
    Case("stats-root-missing", raw("data", "stats", "{d}/nowhere"), 2, "does not exist"),
    Case("stats-out-is-folder", raw("data", "stats", "{d}/data", "--out", "{d}/elsewhere"), 2, "is a folder"),
    Case("make-toy-gap-inf", raw("data", "make-toy", "--out", "{d}/toy", "--train", "1", "--gap", "inf"), 2, "--gap"),
    Case("make-toy-workers-huge", raw("data", "make-toy", "--out", "{d}/toy", "--train", "1", "--workers", "100000"),
         2, "--workers"),
    # ---- devices and sizes that cannot exist here
    Case("translate-device-missing", translate("--device", "cuda:99"), 2, "--device cuda:99"),
    Case("translate-workers-huge", translate("--workers", "100000"), 2, "--workers"),
    Case("segmenter-device-bogus", segmenter("train", "--device", "tpu"), 2, "--device 'tpu'"),
    Case("eval-device-bogus", evaluate("--device", "gpu"), 2, "--device 'gpu'"),
    Case("eval-resize-huge", evaluate("--resize", "60000x60000"), 2, "--resize"),
    Case("eval-compare-binary", raw("eval", "--compare", "{d}/judge.pt"), 2, "judge.pt: not a text file"),
    Case("train-device-bogus", train("train.device=gpu"), 2, "train.device"),
    Case("train-crop-zero", train("data.crop=[0,64]"), 2, "data.crop[0]"),
]


def _fix_eval_judge(case: Case) -> Case:
    if case.id == "eval-judge-is-translator":  # gets as far as reading the judge: a translator checkpoint
        case.argv = evaluate("--judge", "{d}/translator.pt")
    return case


CASES = [_fix_eval_judge(case) for case in CASES]


def tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """relative path -> content hash (regular files), 'dir', 'link -> target' or 'special' (FIFOs and
    other special files are recorded by kind, never opened: a read of a FIFO would block); symlinks
    are not followed."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if skip is not None and (path == skip or skip in path.parents):
                continue
            relative = str(path.relative_to(root))
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                state[relative] = f"link -> {os.readlink(path)}"
            elif stat.S_ISDIR(mode):
                state[relative] = "dir"
            elif stat.S_ISREG(mode):
                state[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                state[relative] = f"special {stat.S_IFMT(mode)}"
    return state


def run_case(case: Case, d: Path, capsys) -> None:
    """Run one bad-input case through the CLI (in process) and check what every case promises: its
    exit code; one `error:` line holding its fragment (exit 2) or the fragment in the output; no
    traceback; nothing changed outside its output folder; nothing written through a link; no lock
    file left behind."""
    if case.setup:
        case.setup(d)
    argv = case.argv(d)
    skip = d / case.out if case.out else None
    before = tree(d, skip)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    output = captured.err + captured.out
    assert code == case.code, f"{argv}: exit {code}, expected {case.code}\n{output}"
    assert "Traceback" not in output and "internal error" not in output, output
    fragment = case.fragment.format(d=d)
    if case.code == 2:
        lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, output
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    else:
        assert _flat(fragment) in _flat(output), f"{fragment!r} not in {output!r}"
    assert tree(d, skip) == before, "an input changed, or something was written outside --out"
    assert (d / "elsewhere" / "keep.txt").read_text() == "not semguard's to touch"
    assert not os.path.lexists(d / "elsewhere" / "new.png")
    if skip is not None and skip.exists():
        assert not list(skip.rglob(".semguard-*.lock")), "a finished run left its lock file"


def _flat(text: str) -> str:
    return "".join(text.split())


def test_the_table_is_large_enough():
    assert len(CASES) >= 60 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, case_dir: Path, capsys):
    run_case(case, case_dir, capsys)


def test_translate_partial_failure_counts_and_manifest(case_dir: Path, capsys):
    """A bad frame fails by name, the others are translated, what loading changed is counted."""
    d = case_dir
    edit_box(xyxy=[float("nan"), 1, 5, 5])(d)
    edit_box(frame="f1", xyxy=[-0.5, 8, 30, 20])(d)       # within the 1 px tolerance: clipped and counted
    assert main(translate()(d)) == 1
    err = capsys.readouterr().err
    assert "1 boxes clipped to the frame" in err
    manifest = json.loads((d / "out" / "manifest.json").read_text())
    assert manifest["frames"]["f0"]["status"] == "failed" and "non-finite" in manifest["frames"]["f0"]["reason"]
    assert all(manifest["frames"][n]["status"] == "ok" for n in NAMES[1:])
    assert manifest["header"]["load_changes"]["clipped_boxes"] == {"car": 1}
    # the same set with the bad frame fixed: every frame done, exit 0
    edit_box(xyxy=[10, 8, 30, 20])(d)
    assert main(translate()(d)) == 0


def test_writes_and_deletes_never_follow_a_link_out(case_dir: Path):
    """A link that appears after the up-front check is still refused by the writers."""
    from semguard.data.folder import read_sample
    from semguard.errors import SemguardError
    from semguard.translate.pipeline import _remove_frame

    d = case_dir
    out = d / "out"
    (out / "labels").mkdir(parents=True)
    os.symlink(d / "elsewhere", out / "images")
    with pytest.raises(SemguardError, match="images is a symlink"):
        write_sample(out, read_sample(d / "data", "f0"))
    shutil.copy(d / "elsewhere" / "keep.txt", d / "elsewhere" / "f0.png")
    with pytest.raises(SemguardError, match="images is a symlink"):
        _remove_frame(out, "f0")
    assert (d / "elsewhere" / "f0.png").exists()


SUBPROCESS_CASES = ["translate-out-is-input", "check-box-nan", "make-toy-huge", "train-empty-yaml", "crops-box-nan",
                    "translate-frame-box-nan"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_real_process(case_id: str, case_dir: Path):
    case = next(c for c in CASES if c.id == case_id)
    d = case_dir
    if case.setup:
        case.setup(d)
    skip = d / case.out if case.out else None
    before = tree(d, skip)
    result = subprocess.run([sys.executable, "-m", "semguard.cli", *case.argv(d)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "COLUMNS": "200"})
    output = result.stderr + result.stdout
    assert result.returncode == case.code, output
    assert "Traceback" not in output and _flat(case.fragment.format(d=d)) in _flat(output), output
    assert tree(d, skip) == before


def test_the_box_rule_clips_within_one_pixel_and_counts_what_it_changed():
    from semguard.data.mapping import FrameProblem, IgnoreReport
    from semguard.data.sample import fit_boxes

    report = IgnoreReport()
    boxes = [Box((-0.5, 0.0, 10.0, 10.0), 13), Box((3.0, 3.0, 3.4, 9.0), 6), Box((1.0, 1.0, 64.0, 32.0), 2)]
    kept = fit_boxes(boxes, (H, W), "f.json", report=report)
    assert [b.xyxy for b in kept] == [(0.0, 0.0, 10.0, 10.0), (1.0, 1.0, 64.0, 32.0)]
    assert report.clipped_boxes == {"car": 1} and report.tiny_boxes == {"traffic light": 1}
    assert "1 boxes clipped to the frame" in report.changes() and "1 boxes dropped" in report.changes()
    for bad in (Box((-1.5, 0, 5, 5), 13), Box((0, 0, 5, float("nan")), 13), Box((5, 0, 5, 5), 13), Box((0, 0, 5, 5), 19)):
        with pytest.raises(FrameProblem, match="f.json: box 0"):
            fit_boxes([bad], (H, W), "f.json")


def test_crop_extraction_refuses_non_finite_boxes_instead_of_crashing():
    from semguard.models.crop_classifier import extract_crops

    with pytest.raises(ValueError, match="non-finite"):
        extract_crops(torch.zeros(3, H, W), torch.tensor([[float("nan"), 0.0, 4.0, 4.0]]), 8, 0.25)


def test_a_resumed_run_removes_the_temporaries_a_kill_left(case_dir: Path, capsys):
    d = case_dir
    (d / "run" / "checkpoints").mkdir(parents=True)
    stale = [d / "run" / "checkpoints" / ".step_00000002.pt.ab12cd_z.tmp", d / "run" / ".final.pt.0123abcd.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    keep = d / "run" / "notes.tmp"            # not a semguard temporary: left alone
    keep.write_text("mine")
    argv = train("train.steps=1", "loss.nce_layers=[0,1]", "loss.nce_patches=8", "loss.nce_mlp_channels=8")(d)
    assert main([*argv, "--resume"]) == 0, capsys.readouterr().err
    assert not any(path.exists() for path in stale) and keep.read_text() == "mine"
    assert list((d / "run").rglob(".*.tmp")) == []
