"""`semguard benchmark SPEC.yaml`: spec checks before any stage, the disjoint target split, resuming after a kill.

Data sets are tiny folder sets written here (32x64 frames); no model is trained except in the
end-to-end test (marked slow).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from semguard.benchmark import runner as benchmark_runner
from semguard.benchmark.runner import prepare, run_benchmark
from semguard.benchmark.stages import StageRunner
from semguard.benchmark.views import JUDGE_LIST, TRANSLATORS_LIST, read_names, split_names
from semguard.data.folder import write_dataset_info, write_sample
from semguard.data.sample import Sample
from semguard.errors import ConfigError, SemguardError

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def write_set(root: Path, count: int, prefix: str = "f", labels: bool = True, size=(32, 64)) -> Path:
    rng = np.random.default_rng(len(prefix) + count)
    for index in range(count):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        label = rng.integers(0, 3, size, dtype=np.uint8)
        write_sample(root, Sample(image=image, label=label, name=f"{prefix}{index:03d}"))
    write_dataset_info(root, domain=prefix)
    if not labels:
        shutil.rmtree(root / "labels")
    return root


def write_spec(folder: Path, data: dict, variants: dict | None = None, **extra) -> Path:
    spec = {
        "name": "tiny",
        "data": data,
        "frames": {"crop": [32, 64]},
        "budgets": {"translator_steps": 2, "guide_steps": 2, "judge_steps": 2, "downstream_steps": 2},
        "variants": variants or {"cut": {"config": str(CONFIGS / "toy_cut.yaml"), "guide": "none"},
                                 "semguard": {"config": str(CONFIGS / "toy.yaml"), "guide": "target"}},
        "seeds": [0],
        **extra,
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def sets(tmp_path):
    return {
        "source": write_set(tmp_path / "sim", 4, "s"),
        "target_train": write_set(tmp_path / "real", 10, "r"),
        "target_val": write_set(tmp_path / "real_val", 3, "v"),
    }


def data_of(sets: dict) -> dict:
    return {name: {"root": str(root), "format": "folder"} for name, root in sets.items()}


# ------------------------------------------------------------------ spec checks, before any stage


def test_unknown_key_names_file_key_and_valid_keys(tmp_path, sets):
    spec = write_spec(tmp_path, data_of(sets), budgets={"translator_stepz": 3})
    with pytest.raises(ConfigError) as err:
        prepare(spec, tmp_path / "work")
    message = str(err.value)
    assert str(spec) in message and "budgets.translator_stepz" in message and "translator_steps" in message
    assert not (tmp_path / "work").exists()


def test_missing_path_is_named(tmp_path, sets):
    data = data_of(sets)
    data["target_train"]["root"] = str(tmp_path / "nowhere")
    spec = write_spec(tmp_path, data)
    with pytest.raises(ConfigError, match=r"data\.target_train\.root .*nowhere does not exist"):
        run_benchmark(spec, tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_target_without_labels_lists_what_can_still_run(tmp_path, sets):
    sets["target_train"] = write_set(tmp_path / "unlabelled", 6, "u", labels=False)
    spec = write_spec(tmp_path, data_of(sets))
    with pytest.raises(ConfigError) as err:
        run_benchmark(spec, tmp_path / "work")
    message = str(err.value)
    assert "without labels" in message
    assert "Variants that can run on unlabelled target frames: cut" in message
    assert "semguard (" in message and "segmentation" in message and "judge" in message
    assert "nothing was run" in message
    assert not (tmp_path / "work").exists()


def test_target_without_labels_runs_when_only_label_free_variants(tmp_path, sets):
    sets["target_train"] = write_set(tmp_path / "unlabelled", 6, "u", labels=False)
    data = data_of(sets)
    data["target_train"]["labelled"] = False
    data["judge_train"] = {"root": str(write_set(tmp_path / "judge", 4, "j")), "format": "folder"}
    spec = write_spec(tmp_path, data, variants={"cut": {"config": str(CONFIGS / "toy_cut.yaml"), "guide": "none"}},
                      downstream={"enabled": False})
    loaded, preflight, stages = prepare(spec, tmp_path / "work")
    assert not preflight.target_labelled
    assert [s.name for s in stages if s.name.startswith("train_")] == ["train_cut_seed0"]


def test_target_val_without_labels_is_refused(tmp_path, sets):
    sets["target_val"] = write_set(tmp_path / "val_unlabelled", 3, "w", labels=False)
    spec = write_spec(tmp_path, data_of(sets))
    with pytest.raises(SemguardError, match=r"data\.target_val must be labelled"):
        run_benchmark(spec, tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_target_val_declared_unlabelled_is_refused(tmp_path, sets):
    data = data_of(sets)
    data["target_val"]["labelled"] = False
    with pytest.raises(ConfigError, match="target validation set must be labelled"):
        prepare(write_spec(tmp_path, data), tmp_path / "work")


def test_cli_prints_one_line_and_runs_nothing(tmp_path, sets):
    spec = write_spec(tmp_path, data_of(sets), budgets={"translator_stepz": 3})
    result = subprocess.run([sys.executable, "-m", "semguard.cli", "benchmark", str(spec), "--work", str(tmp_path / "w")],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2
    assert "translator_stepz" in result.stderr and len(result.stderr.strip().splitlines()) <= 3
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------ the split


def test_split_names_disjoint_seeded_and_complete():
    names = [f"n{i:03d}" for i in range(37)]
    translators, judge = split_names(names, 0.5, seed=3)
    assert not set(translators) & set(judge)
    assert sorted(translators + judge) == names
    assert len(judge) == round(0.5 * 37)
    assert split_names(names, 0.5, seed=3) == (translators, judge)
    assert split_names(names, 0.5, seed=4) != (translators, judge)


def test_judge_and_translators_share_no_frame(tmp_path, sets):
    spec = write_spec(tmp_path, data_of(sets))
    work = tmp_path / "work"
    _, _, stages = prepare(spec, work)
    wanted = {"split", "view_translators", "view_judge"}
    runner = StageRunner(work.resolve(), [s for s in stages if s.name in wanted], echo=lambda line: None)
    runner.run_all()
    split = work / "split"
    translators, judge = read_names(split / TRANSLATORS_LIST), read_names(split / JUDGE_LIST)
    assert translators and judge and not set(translators) & set(judge)
    assert sorted(translators + judge) == sorted(f"r{i:03d}" for i in range(10))
    record = json.loads((split / "split.json").read_text())
    assert record["translators_frames"] == len(translators) and record["judge_frames"] == len(judge)
    # the views the stages read hold exactly those frames
    for view, names in (("translators", translators), ("judge", judge)):
        held = sorted(p.stem for p in (work / "data" / view / "images").iterdir())
        assert held == names


def test_view_resizes_another_size(tmp_path, sets):
    spec = write_spec(tmp_path, data_of(sets), frames={"size": [16, 32], "crop": [16, 32]})
    work = tmp_path / "work"
    _, _, stages = prepare(spec, work)
    StageRunner(work.resolve(), [s for s in stages if s.name in ("split", "view_target_val")],
                echo=lambda line: None).run_all()
    from semguard.data.folder import FolderDataset

    view = FolderDataset(work / "data" / "target_val")
    assert len(view) == 3 and view[0].image.shape == (16, 32, 3) and view[0].label.shape == (16, 32)


# ------------------------------------------------------------------ resume after a kill


class FakeRunner(StageRunner):
    """Writes each stage's output instead of running it; interrupted at stage `stop_at` (1-based)."""

    executed: list[str] = []
    stop_at: int | None = None

    def execute(self, stage):
        if FakeRunner.stop_at is not None and len(FakeRunner.executed) + 1 == FakeRunner.stop_at:
            raise KeyboardInterrupt
        FakeRunner.executed.append(stage.name)
        stage.output.parent.mkdir(parents=True, exist_ok=True)
        stage.output.write_text("{}")
        return {}


def test_killed_benchmark_resumes_at_the_stage_it_was_in(tmp_path, sets, monkeypatch):
    spec = write_spec(tmp_path, data_of(sets))
    work = tmp_path / "work"
    monkeypatch.setattr(benchmark_runner, "RUNNER", FakeRunner)
    monkeypatch.setattr(benchmark_runner, "collect", lambda *args: {"name": "tiny", "figure": None, "variants": {},
                                                                     "variant_names": [], "downstream": {}})
    monkeypatch.setattr(benchmark_runner, "_write", lambda *args: None)
    FakeRunner.executed, FakeRunner.stop_at = [], 5
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(spec, work, echo=lambda line: None)
    first = list(FakeRunner.executed)
    assert len(first) == 4
    _, _, stages = prepare(spec, work)
    names = [s.name for s in stages]
    assert first == names[:4]
    FakeRunner.executed, FakeRunner.stop_at = [], None
    run_benchmark(spec, work, echo=lambda line: None)
    assert FakeRunner.executed == names[4:]          # resumed at the interrupted stage, nothing earlier rerun
    FakeRunner.executed = []
    run_benchmark(spec, work, echo=lambda line: None)
    assert FakeRunner.executed == []                 # all done: nothing runs
    # a stage whose output went missing runs again
    stages[2].output.unlink()
    run_benchmark(spec, work, echo=lambda line: None)
    assert FakeRunner.executed == [names[2]]


def test_work_folder_of_another_spec_is_refused(tmp_path, sets, monkeypatch):
    spec = write_spec(tmp_path, data_of(sets))
    monkeypatch.setattr(benchmark_runner, "RUNNER", FakeRunner)
    monkeypatch.setattr(benchmark_runner, "collect", lambda *args: {"name": "tiny", "figure": None, "variants": {},
                                                                     "variant_names": [], "downstream": {}})
    monkeypatch.setattr(benchmark_runner, "_write", lambda *args: None)
    FakeRunner.executed, FakeRunner.stop_at = [], None
    run_benchmark(spec, tmp_path / "work", echo=lambda line: None)
    with pytest.raises(ConfigError, match="budgets.translator_steps"):
        run_benchmark(spec, tmp_path / "work", overrides=("budgets.translator_steps=5",), echo=lambda line: None)


def test_progress_lines_give_an_eta(tmp_path, sets):
    spec = write_spec(tmp_path, data_of(sets))
    work = tmp_path / "work"
    _, _, stages = prepare(spec, work)
    lines: list[str] = []
    StageRunner(work.resolve(), [s for s in stages if s.name in ("split", "view_source")], echo=lines.append).run_all()
    assert any("ETA" in line and "of the planned work done" in line for line in lines)


def test_spec_files_in_configs_load_and_plan(tmp_path):
    for name in ("toy_ci", "toy_full"):
        loaded, preflight, stages = prepare(CONFIGS / "benchmarks" / f"{name}.yaml", tmp_path / name)
        names = [s.name for s in stages]
        assert names[0] == "make_toy" and "judge" in names and "downstream_real_oracle_seed0" in names
        assert len(names) == len(set(names))


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_toy_benchmark_end_to_end(tmp_path):
    """The ci spec at minimal budgets through the command with two jobs: every stage, report.json in the
    benchmark's shape."""
    overrides = ["toy.train=8", "toy.val=4", "toy.judge=8", "budgets.translator_steps=2", "budgets.guide_steps=2",
                 "budgets.judge_steps=2", "budgets.downstream_steps=2", "budgets.crop_classifier_epochs=1", "threads=1",
                 "budgets.eval_every=1", "overrides=[train.sample_every=0,train.checkpoint_every=0,train.log_every=1]"]
    command = [sys.executable, "-m", "semguard.cli", "benchmark", str(CONFIGS / "benchmarks" / "toy_ci.yaml"),
               "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results"), "--jobs", "2"]
    for override in overrides:
        command += ["--set", override]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "results" / "benchmark_ci.json").read_text())
    assert set(report["variants"]) == {"cut", "semguard", "segdisc"}
    assert set(report["downstream"]) == {"sim", "cut_translated", "semguard_translated", "real_oracle"}
    for records in report["downstream"].values():
        assert [r["seed"] for r in records] == [0] and 0.0 <= records[0]["miou"] <= 1.0 and records[0]["per_class_iou"]
    assert "paired_truth" in report["references"] and (tmp_path / "results" / "benchmark_ci_comparison.png").is_file()
    assert report["jobs"] == 2 and report["threads_per_stage"] == 1 and report["wall_seconds"] > 0
    # eval_every: the checkpoint after step 1 and the final one (step 2), per variant and seed, with seconds
    for name in ("cut", "semguard", "segdisc"):
        records = report["curves"][name]
        assert [(r["steps"], r["seed"]) for r in records] == [(1, 0), (2, 0)]
        assert all(0.0 <= r["pixel_flip_rate"] <= 1.0 and r["seconds"] > 0 for r in records)
        assert records[-1]["pixel_flip_rate"] == report["variants"][name][0]["pixel_flip_rate"]
    pair = report["equal_wallclock"][0]
    assert pair["method"] == "semguard" and pair["baseline"] == "cut" and pair["baseline_steps"] in (1, 2)
    assert "## Over training" in (tmp_path / "results" / "benchmark_ci.md").read_text()


# ------------------------------------------------------------------ the downstream detection stage


def write_boxed_set(root: Path, count: int, prefix: str) -> Path:
    from semguard.data.sample import Box

    rng = np.random.default_rng(count)
    for index in range(count):
        image = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
        label = rng.integers(0, 3, (32, 64), dtype=np.uint8)
        boxes = [Box(xyxy=(4.0, 4.0, 12.0, 14.0), class_id=13), Box(xyxy=(20.0, 2.0, 24.0, 10.0), class_id=6)]
        write_sample(root, Sample(image=image, label=label, name=f"{prefix}{index:03d}", boxes=boxes))
    write_dataset_info(root, domain=prefix)
    return root


def test_detection_runs_with_boxes_on_both_sides_and_is_skipped_with_a_reason_otherwise(tmp_path, sets):
    budgets = {"translator_steps": 2, "guide_steps": 2, "judge_steps": 2, "downstream_steps": 2, "detector_steps": 3}
    _, preflight, stages = prepare(write_spec(tmp_path, data_of(sets), budgets=budgets), tmp_path / "work")
    assert "boxes" in preflight.detection_skipped and "data.source" in preflight.detection_skipped
    assert not any(stage.name.startswith("detector_") for stage in stages)

    boxed = {**sets, "source": write_boxed_set(tmp_path / "sim_boxed", 4, "s"),
             "target_val": write_boxed_set(tmp_path / "val_boxed", 3, "v")}
    folder = tmp_path / "boxed"
    folder.mkdir()
    _, preflight, stages = prepare(write_spec(folder, data_of(boxed), budgets=budgets), tmp_path / "work2")
    assert preflight.detection_skipped is None
    detectors = {stage.name for stage in stages if "detector_" in stage.name}
    # one detector and one score per downstream set (sim, cut_translated, semguard_translated, real_oracle)
    assert detectors == {f"{kind}detector_{name}_seed0" for kind in ("", "score_")
                         for name in ("sim", "cut_translated", "semguard_translated", "real_oracle")}
    train = next(stage for stage in stages if stage.name == "detector_sim_seed0")
    assert train.command[:2] == ("detector", "train") and "--steps" in train.command
    assert train.command[train.command.index("--steps") + 1] == "3"

    _, preflight, _ = prepare(write_spec(folder, data_of(boxed), budgets={**budgets, "detector_steps": 0}),
                              tmp_path / "work3")
    assert preflight.detection_skipped == "budgets.detector_steps is 0"


def test_a_config_with_a_guide_ensemble_gets_its_further_guides_trained_and_passed(tmp_path, sets):
    # the i-th further guide a config lists gets the i-th of segmenters.ensemble_guides (architecture and seed)
    guides = [{"arch": "linknet", "seed": 5}, {"arch": "deeplabv3plus", "seed": 11}]
    spec = write_spec(tmp_path, data_of(sets), segmenters={"ensemble_guides": guides},
                      overrides=["guide.ensemble=[a.pt,b.pt]"])
    _, preflight, stages = prepare(spec, tmp_path / "work")
    assert len(preflight.configs["semguard"].guide.ensemble) == 2
    names = [stage.name for stage in stages]
    assert not any("source_guide_ensemble" in name for name in names)
    further = [next(stage for stage in stages if stage.name == f"target_guide_ensemble{i}") for i in range(2)]
    for stage, guide in zip(further, guides):
        assert stage.command[stage.command.index("--arch") + 1] == guide["arch"]
        assert stage.command[stage.command.index("--seed") + 1] == str(guide["seed"])
    train = next(stage for stage in stages if stage.name == "train_semguard_seed0")
    assert f"guide.ensemble=[{further[0].output},{further[1].output}]" in train.command
    assert {"target_guide_ensemble0", "target_guide_ensemble1"} <= set(
        next(stage for stage in stages if stage.name == "train_semguard_seed0").needs)
    cut = next(stage for stage in stages if stage.name == "train_cut_seed0")
    assert "guide.ensemble=[]" in cut.command


def test_a_config_listing_more_further_guides_than_the_spec_gives_is_refused_naming_both_keys(tmp_path, sets):
    spec = write_spec(tmp_path, data_of(sets), segmenters={"ensemble_guides": [{"arch": "linknet", "seed": 5}]},
                      overrides=["guide.ensemble=[a.pt,b.pt]"])
    with pytest.raises(ConfigError, match=r"variants\.semguard.*2 further guides.*segmenters\.ensemble_guides gives 1"):
        prepare(spec, tmp_path / "work")


@pytest.mark.parametrize("judge, key", [({"arch": "fpn", "seed": 7}, r"segmenters\.target_guide \(fpn, seed 2\)"),
                                        ({"arch": "deeplabv3plus", "seed": 7}, r"segmenters\.ensemble_guides\[1\]"),
                                        ({"arch": "unet", "seed": 5}, r"segmenters\.ensemble_guides\[0\]")])
def test_the_judge_must_differ_from_every_target_guide_in_architecture_and_seed(tmp_path, sets, judge, key):
    guides = [{"arch": "linknet", "seed": 5}, {"arch": "deeplabv3plus", "seed": 11}]
    spec = write_spec(tmp_path, data_of(sets), segmenters={"ensemble_guides": guides, "judge": judge},
                      overrides=["guide.ensemble=[a.pt,b.pt]"])
    with pytest.raises(ConfigError, match=r"segmenters\.judge .* must differ from " + key):
        prepare(spec, tmp_path / "work")
    # a further guide the configs do not read is not checked: one listed, the second spec entry unused
    if "ensemble_guides\\[1\\]" in key:
        spec = write_spec(tmp_path, data_of(sets), segmenters={"ensemble_guides": guides, "judge": judge},
                          overrides=["guide.ensemble=[a.pt]"])
        prepare(spec, tmp_path / "work2")
