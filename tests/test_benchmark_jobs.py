"""`semguard benchmark --jobs N`: stages side by side, each started once the stages it reads are done.

The plan's `needs` are checked against what each command stage reads (every path argument that
another stage writes must come from a stage it needs, directly or through others); the runner is
checked with small Python commands in place of `semguard` ones: two stages that can only finish
together (each waits for a file the other writes), a dependent stage that sees its inputs, and a
failure that lets the running stage finish and starts nothing more.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace
from types import SimpleNamespace
from pathlib import Path

import pytest

from semguard.benchmark.results import _curves_table, _equal_wallclock
from semguard.benchmark.runner import prepare, stage_threads
from semguard.benchmark.stages import Stage, StageFailed, StageRunner
from semguard.cli import main
from semguard.errors import ConfigError
from test_benchmark_command import data_of, write_boxed_set, write_spec
from test_benchmark_command import sets  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parent.parent
FOLDER_OUTPUTS = {"dataset.json", "manifest.json", "report.json", "split.json"}   # a file marking a finished folder


def produced(stage: Stage) -> set[Path]:
    return {stage.output, stage.output.parent} if stage.output.name in FOLDER_OUTPUTS else {stage.output}


def read_paths(stage: Stage, work: Path) -> set[Path]:
    """The paths under WORK among a command stage's arguments (`--flag PATH`, `key=PATH`, `key=[PATH,PATH]`)."""
    paths = set()
    for argument in stage.command or ():
        for token in re.split(r"[=,\[\]]", argument):
            if token.startswith(str(work)):
                paths.add(Path(token))
    return paths


def closure(stage: Stage, by_name: dict[str, Stage]) -> set[str]:
    seen, todo = set(), list(stage.needs)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += by_name[name].needs
    return seen


def check_needs(stages: list[Stage], work: Path) -> int:
    """Every path a command stage reads that another stage writes comes from a stage it needs; returns how
    many such reads were checked."""
    by_name = {stage.name: stage for stage in stages}
    order = {stage.name: index for index, stage in enumerate(stages)}
    checked = 0
    for stage in stages:
        assert all(order[need] < order[stage.name] for need in stage.needs), stage.name
        needed = closure(stage, by_name)
        for path in read_paths(stage, work):
            for other in stages:
                if other is stage or not any(path == out or out in path.parents for out in produced(other)):
                    continue
                if path in produced(stage):
                    continue   # its own output folder (train.out, --out)
                assert other.name in needed, f"{stage.name} reads {path} (made by {other.name}) but does not need it"
                checked += 1
    return checked


@pytest.mark.parametrize("spec", ["toy_ci", "toy_full", "toy_seeds", "toy_budget"])
def test_every_read_of_a_committed_spec_comes_from_a_needed_stage(tmp_path, spec):
    work = (tmp_path / spec).resolve()
    _, _, stages = prepare(REPO / "configs" / "benchmarks" / f"{spec}.yaml", work)
    assert check_needs(stages, work) > 4 * len([s for s in stages if s.name.startswith("train_")])
    by_name = {stage.name: stage for stage in stages}
    views = {name for name in by_name if name.startswith("view_")}
    for stage in stages:
        if stage.command is not None and stage.name != "make_toy":
            assert views <= set(stage.needs), stage.name      # the data views come first
    # the independent heavy stages need none of each other: a judge, the guides, every translator
    assert "judge" not in closure(by_name["train_semguard_seed0"], by_name)
    assert "train_cut_seed0" not in closure(by_name["train_semguard_seed0"], by_name)
    assert {"train_semguard_seed0", "judge"} <= closure(by_name["eval_semguard_seed0"], by_name)
    assert "translate_semguard_seed0" in by_name["downstream_semguard_translated_seed0"].needs


def test_detection_stages_need_their_training_set(tmp_path, sets):  # noqa: F811
    boxed = {**sets, "source": write_boxed_set(tmp_path / "sim_boxed", 4, "s"),
             "target_val": write_boxed_set(tmp_path / "val_boxed", 3, "v")}
    budgets = {"translator_steps": 2, "guide_steps": 2, "judge_steps": 2, "downstream_steps": 2, "detector_steps": 3}
    work = (tmp_path / "work").resolve()
    _, _, stages = prepare(write_spec(tmp_path, data_of(boxed), budgets=budgets), work)
    assert check_needs(stages, work) > 0
    by_name = {stage.name: stage for stage in stages}
    assert "translate_cut_seed0" in by_name["detector_cut_translated_seed0"].needs
    assert by_name["score_detector_sim_seed0"].needs[-1] == "detector_sim_seed0"


# ------------------------------------------------------------------ the runner, with Python commands


class ScriptRunner(StageRunner):
    """Runs each command stage's one argument as a Python program."""

    poll_seconds = 0.02

    def argv(self, stage):
        return [sys.executable, "-c", stage.command[0]]


def script_stage(name: str, output: Path, program: str, needs: tuple[str, ...] = ()) -> Stage:
    return Stage(name, output, command=(program,), needs=needs)


def wait_then_write(wait_for: Path, output: Path, also: Path | None = None, timeout: float = 30) -> str:
    """A program that writes `also`, waits up to `timeout` s for `wait_for`, then writes `output` (exit 3 on timeout)."""
    first = f"pathlib.Path({str(also)!r}).write_text('x')\n" if also else ""
    return ("import pathlib, sys, time\n" + first
            + f"end = time.time() + {timeout}\n"
            + f"while not pathlib.Path({str(wait_for)!r}).exists():\n"
            + "    if time.time() > end: sys.exit(3)\n"
            + "    time.sleep(0.01)\n"
            + f"pathlib.Path({str(output)!r}).write_text('done')\n")


def two_that_meet(tmp_path: Path, timeout: float = 30) -> list[Stage]:
    """a and b finish only when both run at once; c needs both and checks their outputs exist."""
    a, b, c = tmp_path / "a.out", tmp_path / "b.out", tmp_path / "c.out"
    a_started, b_started = tmp_path / "a.started", tmp_path / "b.started"
    check = (f"import pathlib, sys\n"
             f"if not (pathlib.Path({str(a)!r}).exists() and pathlib.Path({str(b)!r}).exists()): sys.exit(4)\n"
             f"pathlib.Path({str(c)!r}).write_text('done')\n")
    return [script_stage("a", a, wait_then_write(b_started, a, also=a_started, timeout=timeout)),
            script_stage("b", b, wait_then_write(a_started, b, also=b_started, timeout=timeout)),
            script_stage("c", c, check, needs=("a", "b"))]


def test_two_jobs_run_independent_stages_at_once_and_a_dependent_one_after(tmp_path):
    stages = two_that_meet(tmp_path)
    lines: list[str] = []
    records = ScriptRunner(tmp_path, stages, jobs=2, echo=lines.append).run_all()
    assert set(records) == {"a", "b", "c"} and (tmp_path / "c.out").read_text() == "done"
    assert all(records[name]["log"].endswith(f"{name}.log") for name in records)
    assert any("ETA" in line for line in lines)
    # recorded as done: a rerun runs nothing
    again = ScriptRunner(tmp_path, stages, jobs=2, echo=lambda line: None)
    again.run_all()
    assert again.ran == []


def test_one_job_runs_them_in_order(tmp_path):
    # in plan order a waits for b, which has not started: a gives up (exit 3) and the run stops there
    with pytest.raises(StageFailed, match=r"stage a failed with exit code 3.*a\.log"):
        ScriptRunner(tmp_path, two_that_meet(tmp_path, timeout=1), jobs=1, echo=lambda line: None).run_all()
    assert not (tmp_path / "b.started").exists()


def test_a_failure_lets_the_running_stage_finish_and_starts_nothing_more(tmp_path):
    slow_out, late_out = tmp_path / "slow.out", tmp_path / "late.out"
    gate = tmp_path / "failed"
    stages = [
        script_stage("fails", tmp_path / "fails.out",
                     f"import pathlib, sys\npathlib.Path({str(gate)!r}).write_text('x')\nsys.exit(2)"),
        # finishes only after the failure happened: the runner must wait for it, not kill it
        script_stage("slow", slow_out, wait_then_write(gate, slow_out)),
        script_stage("after", tmp_path / "after.out", "pass", needs=("fails",)),
        script_stage("late", late_out, f"import pathlib\npathlib.Path({str(late_out)!r}).write_text('x')"),
    ]
    lines: list[str] = []
    runner = ScriptRunner(tmp_path, stages, jobs=2, echo=lines.append)
    with pytest.raises(StageFailed, match=r"stage fails failed with exit code 2.*fails\.log"):
        runner.run_all()
    assert runner.ran == ["slow"] and slow_out.read_text() == "done"
    assert json.loads((tmp_path / "stages.json").read_text()).keys() == {"slow"}   # its work is kept
    assert not late_out.exists()                                                  # nothing new started
    assert any("fails failed; no further stage starts, waiting for slow" in line for line in lines)
    # fixed, the rerun does what is left and not the finished stage
    fixed = [replace(stages[0], command=(f"import pathlib\npathlib.Path({str(tmp_path / 'fails.out')!r}).write_text('x')",)),
             *stages[1:]]
    runner = ScriptRunner(tmp_path, fixed, jobs=2, echo=lambda line: None)
    runner.run_all()
    assert sorted(runner.ran) == ["after", "fails", "late"]


def test_a_stage_needing_a_later_or_unknown_stage_is_refused(tmp_path):
    stages = [script_stage("a", tmp_path / "a", "pass", needs=("b",)), script_stage("b", tmp_path / "b", "pass")]
    with pytest.raises(ValueError, match="stage a needs b"):
        StageRunner(tmp_path, stages)


def test_threads_per_stage_share_the_cores():
    cores = len(os.sched_getaffinity(0))
    assert stage_threads(3, 2) == 3                       # the spec's threads win
    assert stage_threads(0, 1) == 0                       # one job: torch's default
    assert stage_threads(0, 2) == max(1, cores // 2)
    assert stage_threads(0, 10 * cores) == 1


def test_jobs_flag_is_checked(capsys, tmp_path):
    assert main(["benchmark", str(REPO / "configs" / "benchmarks" / "toy_ci.yaml"), "--work", str(tmp_path / "w"),
                 "--jobs", "0"]) != 0
    assert "--jobs" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()



# ------------------------------------------------------------------ budgets.eval_every: curves through the command


def test_eval_every_evaluates_each_kept_checkpoint(tmp_path, sets):  # noqa: F811
    budgets = {"translator_steps": 5, "guide_steps": 2, "judge_steps": 2, "downstream_steps": 2, "eval_every": 2}
    work = (tmp_path / "work").resolve()
    _, _, stages = prepare(write_spec(tmp_path, data_of(sets), budgets=budgets), work)
    by_name = {stage.name: stage for stage in stages}
    train = by_name["train_semguard_seed0"]
    assert "train.checkpoint_every=2" in train.command and "train.keep_last=0" in train.command
    for step in (2, 4):
        stage = by_name[f"eval_semguard_seed0_step{step}"]
        checkpoint = stage.command[stage.command.index("--checkpoint") + 1]
        assert checkpoint == str(work / "runs" / "semguard_seed0" / "checkpoints" / f"step_{step:08d}.pt")
        assert stage.needs[-2:] == ("train_semguard_seed0", "judge")
    assert "eval_semguard_seed0_step6" not in by_name and "eval_semguard_seed0" in by_name
    assert check_needs(stages, work) > 0
    # without it, only the final checkpoint, and the run keeps its config's checkpoint settings
    _, _, plain = prepare(write_spec(tmp_path, data_of(sets)), tmp_path / "work2")
    assert not any("_step" in stage.name for stage in plain)
    assert not any("train.keep_last=0" in stage.command for stage in plain if stage.name.startswith("train_"))


def test_eval_every_must_not_be_negative(tmp_path, sets):  # noqa: F811
    budgets = {"translator_steps": 5, "guide_steps": 2, "judge_steps": 2, "downstream_steps": 2, "eval_every": -1}
    with pytest.raises(ConfigError, match=r"budgets.eval_every is -1"):
        prepare(write_spec(tmp_path, data_of(sets), budgets=budgets), tmp_path / "work")


def test_curve_tables_and_equal_wallclock_from_records():
    def record(variant_flip, steps, seconds, seed):
        return {"steps": steps, "seconds": seconds, "seed": seed, "pixel_flip_rate": variant_flip,
                "excess_pixel_flip_rate": variant_flip - 0.02, "target_reliable_mean_flip_rate": variant_flip,
                "flip_rate": {"sky": variant_flip / 2}}

    curves = {"cut": [record(0.3 + 0.1 * (s // 300), s, s * 0.5, seed) for seed in (0, 1) for s in (300, 600)],
              "semguard": [record(0.1, s, s * 1.5 + seed, seed) for seed in (0, 1) for s in (300, 600)]}
    loaded = SimpleNamespace(spec=SimpleNamespace(downstream=SimpleNamespace(baseline="cut", method="semguard"),
                                                  budgets=SimpleNamespace(translator_steps=600)))
    pairs = _equal_wallclock(loaded, curves)
    # semguard's 600 steps took 900 (seed 0) and 901 s (seed 1); CUT's longest, 600 steps, took 300 s: the nearest
    assert [(p["seed"], p["steps"], p["baseline_steps"], p["baseline_pixel_flip_rate"]) for p in pairs] == \
        [(0, 600, 600, 0.5), (1, 600, 600, 0.5)]
    lines = _curves_table(curves, {"source": {"pixel_flip_rate": 0.27, "flip_rate": {"sky": 0.25}}}, paired=True)
    assert "| cut | 600 | 300 ± 0 | 0.500 ± 0.000 | 0.480 ± 0.000 | 0.500 ± 0.000 | 0.250 ± 0.000 |" in lines
    assert "| semguard | 300 | 450 ± 1 | 0.100 ± 0.000 | 0.080 ± 0.000 | 0.100 ± 0.000 | 0.050 ± 0.000 |" in lines
    assert any(line.startswith("| *source (reference)* | | | 0.270 | n/a | n/a | 0.250 |") for line in lines)
    # no curve for the method: no pairs
    assert _equal_wallclock(loaded, {"cut": curves["cut"]}) == []
