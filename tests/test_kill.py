"""kill -9 during training and translation: a rerun finishes exactly as an uninterrupted run.

Real processes (`python -m semguard.cli ...`) killed with SIGKILL at chosen moments: while a
step checkpoint is half written (its temporary file open, before the rename), at a random
moment between steps, and while a translated PNG is half written. A small hook in the killed
process (installed before `semguard.cli.main` runs) writes half of the file, says so on
stdout and waits to be killed, so the kill lands inside the write every time. The rerun
(`--resume` for training, the same command for translation) must remove the leftover
temporary files and end with final weights / output files identical to an uninterrupted run.

Slow (about a minute on 2 CPU cores): run with `pytest -m slow tests/test_kill.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from semguard.config import config_from_dict
from semguard.data.folder import write_dataset_info, write_sample
from semguard.data.sample import Box, Sample
from semguard.checkpoints import load_checkpoint, save_translator

pytestmark = pytest.mark.slow

H, W = 32, 64
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}

# Runs semguard's CLI with one writer patched: its KILL_AT-th call writes half of its bytes
# into the open temporary file, prints KILL-ME and waits for the SIGKILL.
HOOK = r'''
import io, os, sys, time
target, kill_at = os.environ["SEMGUARD_KILL_HOOK"], int(os.environ["SEMGUARD_KILL_AT"])
calls = [0]

def half_then_wait(data, handle):
    handle.write(data[: len(data) // 2])
    handle.flush()
    print("KILL-ME", flush=True)
    time.sleep(600)

if target == "checkpoint":
    import semguard.checkpoints as module
    original = module.torch.save
    def save(obj, handle, *args, **kwargs):
        calls[0] += 1
        if calls[0] != kill_at:
            return original(obj, handle, *args, **kwargs)
        buffer = io.BytesIO()
        original(obj, buffer, *args, **kwargs)
        half_then_wait(buffer.getvalue(), handle)
    module.torch.save = save
else:
    import semguard.data.folder as module
    original = module._atomic_write_bytes
    def atomic(path, write):
        calls[0] += 1
        if calls[0] != kill_at:
            return original(path, write)
        def half(handle):
            buffer = io.BytesIO()
            write(buffer)
            half_then_wait(buffer.getvalue(), handle)
        return original(path, half)
    module._atomic_write_bytes = atomic

from semguard.cli import main
sys.exit(main(sys.argv[1:]))
'''


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "semguard.cli", *args], capture_output=True, text=True,
                            env=ENV, timeout=timeout)
    assert result.returncode == 0, result.stderr + result.stdout
    return result


def _killed(hook: str, kill_at: int, *args: str) -> None:
    """Run the CLI with the hook; SIGKILL it inside the KILL_AT-th write."""
    process = subprocess.Popen([sys.executable, "-c", HOOK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**ENV, "SEMGUARD_KILL_HOOK": hook, "SEMGUARD_KILL_AT": str(kill_at)})
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            if "KILL-ME" in line:
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait()
    finally:
        watchdog.cancel()
    assert process.returncode == -signal.SIGKILL, f"not killed inside the write: {process.stderr.read()}"


def _killed_when(path_glob: tuple[Path, str], delay: float, *args: str) -> None:
    """Run the CLI; SIGKILL it `delay` seconds after a file matching the glob appears."""
    folder, pattern = path_glob
    process = subprocess.Popen([sys.executable, "-m", "semguard.cli", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 300
    while not (folder.is_dir() and list(folder.glob(pattern))):
        assert process.poll() is None, f"finished before the kill: {process.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(delay)
    process.kill()
    process.wait()


def _temporaries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.tmp"))


# ------------------------------------------------------------------------------ training


def _write_domain(root: Path, count: int, seed: int, brightness: int) -> None:
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = np.full((H, W), 10, np.uint8)
        label[H // 3:] = 2
        label[2 * H // 3:] = 0
        label[H // 2:, 16:32] = 13
        instances = np.zeros((H, W), np.int32)
        instances[H // 2:, 16:32] = 1
        image = np.clip(brightness + rng.integers(0, 60, (H, W, 3)) + label[..., None] * 3, 0, 255).astype(np.uint8)
        boxes = [Box((16.0, H / 2, 32.0, float(H)), 13, 1), Box((40.0, 4.0, 44.0, 12.0), 6, 0, {"state": "red"})]
        write_sample(root, Sample(image, label, instances, boxes, name=f"frame_{index:03d}"))
    write_dataset_info(root, domain=root.name)


def _run_config(root: Path) -> Path:
    config = {
        "data": {"source": str(root / "source"), "target": str(root / "target"), "crop": [H, W], "batch_size": 2},
        "model": {"generator": "spade", "base_channels": 8, "n_blocks": 2,
                  "discriminator": {"base_channels": 8, "n_scales": 2, "n_layers": 2}},
        "loss": {"seg": 0.0, "box": 0.0, "nce_layers": [0, 1, 2, 4], "nce_patches": 16, "nce_mlp_channels": 16},
        "train": {"steps": 8, "device": "cpu", "sample_every": 0, "checkpoint_every": 2, "keep_last": 2,
                  "log_every": 2, "ema_decay": 0.9, "grad_clip": 5.0},
    }
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _weights(path: Path) -> dict[str, torch.Tensor]:
    checkpoint = load_checkpoint(path, kind="translator")
    return {f"{part}.{name}": tensor for part in ("generator", "generator_ema", "discriminator")
            for name, tensor in (checkpoint.get(part) or {}).items()}


def test_training_killed_while_writing_a_checkpoint_and_between_steps_resumes_exactly(tmp_path):
    _write_domain(tmp_path / "source", 6, seed=0, brightness=150)
    _write_domain(tmp_path / "target", 6, seed=1, brightness=40)
    config = _run_config(tmp_path)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _cli("train", "--config", str(config), "--out", str(reference), "--no-progress")

    # 1. killed inside the second checkpoint write (step 4): step 2 stays, a half-written temporary is left
    _killed("checkpoint", 2, "train", "--config", str(config), "--out", str(killed), "--no-progress")
    checkpoints = killed / "checkpoints"
    assert [p.name for p in checkpoints.glob("step_*.pt")] == ["step_00000002.pt"]
    assert _temporaries(killed), "the kill should have left the half-written checkpoint's temporary file"
    load_checkpoint(checkpoints / "step_00000002.pt", kind="translator")   # the last good one is intact

    # 2. resumed, and killed again at a moment between steps (after the step 4 checkpoint appeared)
    _killed_when((checkpoints, "step_00000004.pt"), 0.3, "train", "--config", str(config), "--out", str(killed),
                 "--no-progress", "--resume")

    # 3. resumed to the end: no temporary left, final weights identical to the uninterrupted run
    _cli("train", "--config", str(config), "--out", str(killed), "--no-progress", "--resume")
    assert _temporaries(killed) == []
    expected, got = _weights(reference / "final.pt"), _weights(killed / "final.pt")
    assert expected.keys() == got.keys() and len(expected) > 50
    different = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:3]}"


# ------------------------------------------------------------------------------ translation


FRAMES = [f"seq/{index:04d}" for index in range(10)]


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("images", "labels", "instances", "boxes") for p in sorted((root / folder).rglob("*"))
            if p.is_file()}


def test_translation_killed_while_writing_a_frame_finishes_every_frame_exactly_once(tmp_path):
    rng = np.random.default_rng(0)
    source = tmp_path / "source"
    for name in FRAMES:
        label = rng.integers(0, 19, (H, W), dtype=np.uint8)
        instances = np.zeros((H, W), np.int32)
        instances[8:20, 10:30] = 3
        write_sample(source, Sample(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), label, instances,
                                    [Box((10.0, 8.0, 30.0, 20.0), 13, 3)], name=name))
    config = config_from_dict({"model": {"generator": "spade", "base_channels": 4, "n_blocks": 1, "n_downsample": 1}})
    from semguard.models import build_generator

    torch.manual_seed(0)
    generator, _ = build_generator(config.model)
    state = generator.state_dict()
    checkpoint = tmp_path / "translator.pt"
    save_translator(checkpoint, config, generator, generator_ema=state, step=1)

    def command(out: Path) -> list[str]:
        return ["translate", "--checkpoint", str(checkpoint), "--input", str(source), "--out", str(out),
                "--workers", "0", "--writers", "1", "--device", "cpu", "--no-progress", "--tile", "0"]

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _cli(*command(reference))
    # 4 files per frame (+ dataset.json first): call 19 is the image of the 5th frame, half written
    _killed("frame", 19, *command(killed))
    assert _temporaries(killed), "the kill should have left the half-written PNG's temporary file"
    _cli(*command(killed))
    assert _temporaries(killed) == []
    manifest = json.loads((killed / "manifest.json").read_text())
    assert sorted(manifest["frames"]) == sorted(FRAMES)
    assert all(record["status"] == "ok" for record in manifest["frames"].values())
    assert manifest["counts"] == {"ok": len(FRAMES)}
    assert _tree_hashes(killed) == _tree_hashes(reference)
