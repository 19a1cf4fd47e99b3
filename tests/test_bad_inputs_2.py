"""The second round of bad inputs (issue 29) through the real CLI, in test_bad_inputs.py's style.

Each kind of failure the round found, with cases beyond the issue's examples: writes through a
symlink at an output file, sizes and counts that would take the machine, reads of things that
are not regular files and parser bombs, output locations the system refuses, frames too small
for the model, silent acceptance, two runs on one output, and resume across an upgrade. Every
case hashes the case folder before and after: no input changed, nothing written outside --out
(for status 2: nothing written at all), and elsewhere/keep.txt (what the links point at) intact.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from semguard.cli import main
from test_bad_inputs import (  # noqa: F401 - assets and case_dir are fixtures
    TINY_MODEL, Case, assets, both, case_dir, check, link, raw, run_case, segmenter, train, translate, tree, write_text,
)


def fifo(relative: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        (d / relative).parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(d / relative):
            (d / relative).unlink()
        os.mkfifo(d / relative)
    return setup


def folder_at(relative: str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        if os.path.lexists(d / relative):
            (d / relative).unlink()
        (d / relative).mkdir(parents=True)
    return setup


def small_frame(name: str = "f1", size: tuple[int, int] = (4, 6)) -> Callable[[Path], None]:
    """Replace frame `name` with a blank frame of `size` (H, W), boxes emptied."""
    def setup(d: Path) -> None:
        height, width = size
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(d / "data" / "images" / f"{name}.png")
        Image.fromarray(np.zeros((height, width), np.uint8)).save(d / "data" / "labels" / f"{name}.png")
        Image.fromarray(np.zeros((height, width), np.uint8)).save(d / "data" / "instances" / f"{name}.png")
        (d / "data" / "boxes" / f"{name}.json").write_text(json.dumps({"boxes": []}))
    return setup


def yaml_bomb(d: Path) -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    (d / "bomb.yaml").write_text("\n".join(lines) + "\n")


def yaml_bomb_flow(levels: int = 6) -> str:
    """One line of YAML that expands to 10^levels values."""
    parts = ["&l0 [" + ", ".join(["1"] * 10) + "]"]
    for level in range(1, levels):
        parts.append(f"&l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "[" + ", ".join(parts) + "]"


def target_copy(d: Path) -> None:
    shutil.copytree(d / "data", d / "target")


def deep_translator(d: Path) -> None:
    """A translator whose generator halves the frame 3 times: it needs frames of at least 9 px a side."""
    from semguard.checkpoints import save_translator
    from semguard.config import config_from_dict
    from semguard.models import build_generator

    config = config_from_dict({"model": {**TINY_MODEL, "n_downsample": 3}})
    torch.manual_seed(0)
    generator, _ = build_generator(config.model)
    save_translator(d / "translator.pt", config, generator, generator_ema=generator.state_dict(), step=1)


def preview(out: str, *extra: str) -> Callable[[Path], list[str]]:
    return lambda d: ["data", "preview", str(d / "data"), "--out", out.format(d=d), *extra]


def stats(out: str) -> Callable[[Path], list[str]]:
    return lambda d: ["data", "stats", str(d / "data"), "--out", out.format(d=d)]


LONG_NAME = "n" * 300

CASES = [
    # ---- 1. an output file that is a symlink (or no file at all) is refused, never written through
    Case("preview-out-link-to-file", preview("{d}/p.png"), 2, "p.png is a symlink",
         link("p.png", "elsewhere/keep.txt")),
    Case("preview-out-dangling-link", preview("{d}/p.png"), 2, "p.png is a symlink", link("p.png", "elsewhere/new.png")),
    Case("stats-out-link-to-file", stats("{d}/s.png"), 2, "s.png is a symlink", link("s.png", "elsewhere/keep.txt")),
    Case("segmenter-out-link-to-file", lambda d: [*segmenter("train")(d), "--out", str(d / "seg.pt")], 2,
         "seg.pt is a symlink", link("seg.pt", "elsewhere/keep.txt")),
    Case("crops-out-link-to-file", lambda d: [*segmenter("train-crops")(d), "--out", str(d / "seg.pt")], 2,
         "seg.pt is a symlink", link("seg.pt", "elsewhere/keep.txt")),
    Case("preview-out-fifo", preview("{d}/p.png"), 2, "p.png is a FIFO", fifo("p.png")),
    Case("preview-out-device", preview("/dev/null"), 2, "/dev/null is a character device"),
    # ---- 2. sizes, counts and steps that would take the machine: an estimate or a bound, with a message
    Case("segmenter-crop-huge", segmenter("train", "--crop", "4096x4096"), 2, "--crop"),
    Case("segmenter-crop-full-batch-huge", segmenter("train", "--crop", "none", "--batch-size", "9000000"), 2,
         "--batch-size"),
    Case("segmenter-steps-absurd", segmenter("train", "--steps", str(10**30)), 2, "--steps"),
    Case("segmenter-eval-batch-huge", segmenter("train", "--val", "{d}/data", "--eval-batch-size", "5000000"), 2,
         "--eval-batch-size"),
    Case("crops-epochs-absurd", segmenter("train-crops", "--epochs", str(10**12)), 2, "--epochs"),
    Case("crops-batch-huge", segmenter("train-crops", "--batch-size", "9000000", "--crop-size", "512"), 2,
         "--batch-size"),
    Case("train-steps-absurd", train(f"train.steps={10**30}"), 2, "train.steps"),
    Case("train-crop-huge", train("data.crop=[4096,4096]", "data.batch_size=64"), 2, "data.crop"),
    Case("train-batch-huge", train("data.batch_size=100000000"), 2, "data.batch_size"),
    Case("train-sample-count-huge", train("train.sample_count=100000"), 2, "train.sample_count"),
    Case("train-checkpoint-every-absurd", train(f"train.checkpoint_every={10**20}"), 2, "train.checkpoint_every"),
    Case("translate-batch-huge", translate("--batch-size", "1000000000"), 2, "--batch-size"),
    Case("translate-tile-batch-huge", translate("--tile-batch", "1000000000"), 2, "--tile-batch"),
    Case("translate-overlap-huge", translate("--overlap", str(10**12)), 2, "--overlap"),
    Case("preview-n-absurd", preview("{d}/p.png", "--n", str(10**12)), 2, "--n"),
    # ---- 3. configs, JSON and checkpoints: regular files only, bounded, parsers that cannot be blown up
    Case("train-config-fifo", raw("train", "--config", "{d}/run.yaml"), 2, "run.yaml is a FIFO", fifo("run.yaml")),
    Case("train-config-device", raw("train", "--config", "/dev/zero"), 2, "/dev/zero is a character device"),
    Case("train-config-folder", raw("train", "--config", "{d}/elsewhere"), 2, "elsewhere is a folder"),
    Case("train-config-alias-bomb", raw("train", "--config", "{d}/bomb.yaml"), 2, "bomb.yaml: the YAML expands",
         yaml_bomb),
    Case("train-config-huge", raw("train", "--config", "{d}/big.yaml"), 2, "big.yaml is",
         write_text("big.yaml", "# padding\n" * 600_000)),
    Case("train-config-binary", raw("train", "--config", "{d}/translator.pt"), 2, "not a UTF-8 text file"),
    Case("train-override-alias-bomb", train("data.source_options=" + yaml_bomb_flow()), 2, "override"),
    Case("translate-checkpoint-fifo", translate(), 2, "translator.pt is a FIFO", fifo("translator.pt")),
    Case("translate-checkpoint-device", lambda d: [*translate()(d), "--checkpoint", "/dev/zero"], 2,
         "/dev/zero is a character device"),
    Case("translate-judge-fifo", translate("--judge", "{d}/judge.pt"), 2, "judge.pt is a FIFO", fifo("judge.pt")),
    Case("train-guide-fifo", train("guide.checkpoint={d}/judge.pt"), 2, "judge.pt is a FIFO", fifo("judge.pt")),
    Case("check-boxes-fifo", check(), 1, "boxes/f0.json", fifo("data/boxes/f0.json")),
    Case("check-dataset-json-fifo", check(), 1, "dataset.json", fifo("data/dataset.json")),
    Case("check-label-fifo", check(), 1, "labels/f2.png", fifo("data/labels/f2.png")),
    Case("translate-boxes-fifo", translate(), 1, "f0: ", fifo("data/boxes/f0.json"), out="out"),
    # ---- 4. output locations the system refuses: bad input (2) naming the path and the reason
    Case("translate-out-proc", lambda d: [*translate()(d), "--out", "/proc/semguard-out"], 2, "/proc/semguard-out"),
    Case("train-out-proc", train("train.out=/proc/semguard-run"), 2, "/proc/semguard-run"),
    Case("segmenter-out-proc", lambda d: [*segmenter("train")(d), "--out", "/proc/semguard/seg.pt"], 2,
         "/proc/semguard/seg.pt"),
    Case("preview-out-proc", preview("/proc/semguard.png"), 2, "refuses to create files in /proc"),
    Case("make-toy-out-sys", raw("data", "make-toy", "--out", "/sys/semguard-toy", "--train", "1"), 2,
         "/sys/semguard-toy"),
    Case("translate-out-name-too-long", translate(out=LONG_NAME), 2, "give a shorter name"),
    Case("stats-out-name-too-long", stats("{d}/" + LONG_NAME + ".png"), 2, "give a shorter name"),
    Case("segmenter-out-path-too-long", lambda d: [*segmenter("train")(d), "--out",
                                                   str(d / "/".join(["p" * 200] * 25) / "seg.pt")], 2,
         "give a shorter path"),
    # ---- 5. frames too small: data check says so, translate fails them by name and goes on
    Case("check-frame-too-small", check(), 1, "frame too small", small_frame()),
    Case("check-frame-one-row", check(), 1, "images/f2.png", small_frame("f2", (1, 64))),
    Case("translate-frame-too-small", translate(), 1, "f1: the frame is 6x4 px", small_frame(), out="out"),
    Case("translate-frame-too-small-for-deep-model", translate(), 1, "f3: the frame is 8x8 px; this translator needs",
         None, out="out"),
    # ---- 6. nothing passes silently
    Case("train-target-label-id", train("data.target={d}/target", "data.pairing=layout_matched"), 2, "data.target",
         None),
    Case("check-boxes-folder", check(), 1, "is a folder, not a boxes file", folder_at("data/boxes/f0.json")),
    Case("translate-boxes-folder", translate(), 1, "f0: ", folder_at("data/boxes/f0.json"), out="out"),
    Case("check-boxes-dangling-link", check(), 1, "is a broken symlink, not a boxes file",
         both(lambda d: (d / "data" / "boxes" / "f1.json").unlink(), link("data/boxes/f1.json", "elsewhere/none.json"))),
    Case("train-yaml-duplicate-key", raw("train", "--config", "{d}/dup.yaml"), 2, "key 'steps' is given twice",
         write_text("dup.yaml", "train:\n  steps: 3\n  out: run\n  steps: 5\n")),
    Case("train-yaml-duplicate-section", raw("train", "--config", "{d}/dup.yaml"), 2, "key 'train' is given twice",
         write_text("dup.yaml", "train: {steps: 3}\ndata: {}\ntrain: {steps: 5}\n")),
    Case("train-override-duplicate-key", train("data.source_options={{split: a, split: b}}"), 2, "given twice"),
    Case("check-other-extension", check(), 0, "images/f4.jpg", write_text("data/images/f4.jpg", "a jpeg")),
    Case("check-label-other-extension", check(), 0, "labels/f0.bmp", write_text("data/labels/f0.bmp", "bmp")),
    Case("check-png-folder", check(), 0, "images/odd.png", lambda d: (d / "data" / "images" / "odd.png").mkdir()),
    Case("translate-other-extension", translate(), 0, "images/f4.jpg", write_text("data/images/f4.jpg", "a jpeg"),
         out="out"),
]


def _fix(case: Case) -> Case:
    if case.id == "translate-frame-too-small-for-deep-model":
        def setup(d: Path) -> None:
            deep_translator(d)
            small_frame("f3", (8, 8))(d)
        case.setup = setup
    if case.id == "train-target-label-id":
        def setup(d: Path) -> None:
            target_copy(d)  # the same id in the source is refused already; here only the target has it
            label = np.array(Image.open(d / "target" / "labels" / "f0.png"))
            label[0, :4] = 77
            Image.fromarray(label).save(d / "target" / "labels" / "f0.png")
        case.setup = setup
    return case


CASES = [_fix(case) for case in CASES]


def test_the_second_table_covers_every_kind():
    assert len(CASES) >= 50 and len({case.id for case in CASES}) == len(CASES)


@pytest.fixture
def watchdog():
    """Fail a case that blocks (a FIFO opened for reading waits for a writer forever) instead of hanging."""
    def expire(signum, frame):
        raise TimeoutError("the command blocked for 120 s (did it open a FIFO?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, case_dir: Path, capsys, watchdog):
    run_case(case, case_dir, capsys)


# ------------------------------------------------------------------------------ 4. a full disk


def test_a_full_disk_is_bad_input_naming_the_path(case_dir: Path, capsys, monkeypatch):
    d = case_dir
    real_statvfs = os.statvfs

    def full(path):
        stats = real_statvfs(path)
        return os.statvfs_result((stats.f_bsize, stats.f_frsize, stats.f_blocks, 0, 0, stats.f_files,
                                  stats.f_ffree, stats.f_favail, stats.f_flag, stats.f_namemax))

    monkeypatch.setattr(os, "statvfs", full)
    before = tree(d)
    assert main(translate()(d)) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is full" in line and str(d) in line
    assert tree(d) == before


def test_no_space_while_writing_is_bad_input_not_a_bug(case_dir: Path, capsys, monkeypatch):
    """ENOSPC (or a name too long) raised by a write past the up-front checks: exit 2, not 70."""
    import errno

    from semguard.data import toy_commands

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(case_dir / "s.png"))

    monkeypatch.setattr(toy_commands, "spatial_prior_image", no_space)
    assert main(stats("{d}/s.png")(case_dir)) == 2
    assert "No space left on device" in capsys.readouterr().err


def test_a_disk_that_fills_during_translate_stops_it_as_bad_input(case_dir: Path, capsys, monkeypatch):
    """ENOSPC from a frame's write ends the run with exit 2 naming --out, not one failure per frame."""
    import errno

    from semguard.translate import pipeline

    def no_space(out, translated, png_level):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "images" / f"{translated.name}.png"))

    monkeypatch.setattr(pipeline, "_write_frame", no_space)
    assert main(translate()(case_dir)) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "writing frame f0 failed: No space left on device" in line and "--out" in line


# ------------------------------------------------------------------------------ 7. two runs, one output


def test_a_second_translate_on_the_same_out_stops_naming_the_first(case_dir: Path, capsys):
    from semguard.output_lock import hold_output

    d = case_dir
    with hold_output(d / "out", "translate"):  # as a running translate holds it
        before = tree(d)
        assert main(translate()(d)) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"--out {d / 'out'} is in use by a running semguard (pid {os.getpid()})" in line
        assert tree(d) == before
        # another shard of the same output is not blocked
        assert main(translate("--shard", "1/2")(d)) == 0
    assert main(translate()(d)) == 0
    assert not list((d / "out").glob(".semguard-*.lock"))


def test_a_second_train_on_the_same_out_stops(case_dir: Path, capsys):
    from semguard.output_lock import hold_output

    d = case_dir
    argv = train()(d)
    with hold_output(d / "run", "train"):
        before = tree(d)
        assert main(argv) == 2
        assert "train.out (--out)" in capsys.readouterr().err and tree(d) == before


def test_a_lock_left_by_a_killed_run_does_not_block(case_dir: Path):
    """kill -9 ends the holder: the kernel drops its flock, the file it leaves is taken over and removed."""
    d = case_dir
    script = ("import sys, time; from semguard.output_lock import hold_output\n"
              f"with hold_output({str(d / 'out')!r}, 'translate'):\n    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = subprocess.run([sys.executable, "-m", "semguard.cli", *translate()(d)], capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 2 and f"pid {holder.pid}" in result.stderr, result.stderr
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        assert (d / "out" / ".semguard-translate.lock").exists()
    finally:
        if holder.poll() is None:
            holder.kill()
    assert main(translate()(d)) == 0
    assert not (d / "out" / ".semguard-translate.lock").exists()


# ------------------------------------------------------------------------------ 8. resume across an upgrade


def _tiny_train(*overrides: str) -> Callable[[Path], list[str]]:
    return train("loss.nce_layers=[0,1]", "loss.nce_patches=8", "loss.nce_mlp_channels=8", *overrides)


def test_resume_after_an_option_was_added_takes_its_default(case_dir: Path, capsys):
    """A checkpoint written before an option existed resumes when the option is at its default;
    a real change is still refused, by name."""
    from semguard.checkpoints import latest_step_checkpoint, load_checkpoint, save_checkpoint

    d = case_dir
    assert main(_tiny_train("train.steps=1", "train.checkpoint_every=1")(d)) == 0, capsys.readouterr().err
    step = latest_step_checkpoint(d / "run" / "checkpoints")
    state = load_checkpoint(step)
    # as an older semguard wrote it: these options did not exist yet
    del state["config"]["model"]["discriminator"]["agreement_mask"]
    del state["config"]["loss"]["attr"]
    del state["config"]["data"]["pairing_threshold"]
    save_checkpoint(step, state)
    capsys.readouterr()
    assert main([*_tiny_train("train.steps=2", "train.checkpoint_every=1")(d), "--resume"]) == 0, capsys.readouterr().err
    # a real change: refused, naming the key
    assert main([*_tiny_train("train.steps=3", "train.lr_g=0.001")(d), "--resume"]) == 2
    assert "train.lr_g" in capsys.readouterr().err


def test_config_differences_fill_missing_options_with_defaults():
    from semguard.config import RunConfig, config_to_dict
    from semguard.config_checks import config_differences

    current = config_to_dict(RunConfig())
    saved = json.loads(json.dumps(current))
    del saved["model"]["discriminator"]["agreement_mask"]
    del saved["guide"]                          # a whole section added since
    assert config_differences(saved, current) == []
    current_changed = json.loads(json.dumps(current))
    current_changed["model"]["discriminator"]["agreement_mask"] = True
    assert config_differences(saved, current_changed) == ["model.discriminator.agreement_mask"]
    saved["model"]["gone_option"] = 3           # an option this version no longer has: a difference
    assert config_differences(saved, current) == ["model.gone_option"]


# ------------------------------------------------------------------------------ readers, directly


def test_yaml_reader_refuses_duplicates_bombs_and_special_files(tmp_path):
    from semguard.config import YAML_MAX_NODES, parse_yaml, read_yaml
    from semguard.errors import ConfigError

    assert parse_yaml("a: &x {b: 1}\nc:\n  <<: *x\n  b: 2\n", "s") == {"a": {"b": 1}, "c": {"b": 2}}  # merge keys
    with pytest.raises(ConfigError, match="s: key 'b' is given twice"):
        parse_yaml("b: 1\nb: 2\n", "s")
    with pytest.raises(ConfigError, match=f"over {YAML_MAX_NODES}"):
        parse_yaml("a: &a [" + ", ".join(["0"] * 400) + "]\nb: [" + ", ".join(["*a"] * 400) + "]\n", "s")
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(ConfigError, match="pipe.yaml is a FIFO"):
        read_yaml(tmp_path / "pipe.yaml")


def test_the_output_guard_is_shared(tmp_path):
    """output_file refuses a symlink at the path whatever it points at, inside or out."""
    from semguard.errors import SemguardError
    from semguard.validate import output_file

    (tmp_path / "real.png").write_bytes(b"x")
    os.symlink(tmp_path / "real.png", tmp_path / "link.png")
    with pytest.raises(SemguardError, match="link.png is a symlink"):
        output_file(tmp_path / "link.png", "--out")
    assert output_file(tmp_path / "new.png", "--out") == tmp_path / "new.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "real.png"]  # the probe left nothing
