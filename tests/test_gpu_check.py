"""scripts/gpu_check.sh, the one command a GPU owner runs: end to end on CPU at toy size (slow:
about 80 s on two cores), and its refusals, which name the problem in one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
VENV = Path(sys.executable).parent.parent


def _run(*args, env_extra=None, timeout=60):
    env = {**os.environ, "VENV": str(VENV), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_refuses_an_unknown_device_and_argument():
    result = _run("--device", "tpu")
    assert result.returncode == 2 and "--device must be cuda or cpu, not 'tpu'" in result.stderr
    result = _run("--frobnicate")
    assert result.returncode == 2 and "unknown argument '--frobnicate'" in result.stderr


def test_names_the_stage_when_semguard_is_not_installed(tmp_path):
    result = _run("--device", "cpu", "--out", str(tmp_path / "out"), env_extra={"VENV": str(tmp_path / "none")})
    assert result.returncode == 1
    assert "gpu_check: FAILED at stage setup" in result.stderr and "bash scripts/test.sh" in result.stderr


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = _run("--device", "cpu", "--quick", "--out", str(tmp_path))
    assert result.returncode == 1 and "is not an earlier gpu_check output" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_cpu_quick_runs_every_stage(tmp_path):
    out = tmp_path / "check"
    result = _run("--device", "cpu", "--quick", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "gpu_check: passed (cpu)" in result.stdout
    summary = (out / "summary.md").read_text()
    for stage in ("make_toy", "guide", "guide_linknet", "guide_deeplab", "train_semguard", "train_cut", "translate_whole", "translate_tiled",
                  "compare_whole_tiled", "export", "onnx_run", "bench_train_step", "bench_translate"):
        assert f"| {stage} |" in summary and "FAILED" not in summary, stage
    for path in ("train_speed.md", "samples_semguard.png", "whole_vs_tiled.txt", "onnx_run.txt", "train_step.md",
                 "translate.md", "environment.txt", "work/onnx/semguard.onnx"):
        assert (out / path).is_file(), path
    assert (out / ".gitignore").read_text() == "work/\n"   # the figures are committed, the work is not
    assert "CPUExecutionProvider" in (out / "onnx_run.txt").read_text()
    assert "| semguard |" in (out / "train_speed.md").read_text()
