"""benchmarks/run_curves.py's bookkeeping: the budgets on a curve, training seconds across resumed sittings,
CUT's budget at semguard's wall clock, and the results' shape."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def curves():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("_bench_run_curves", BENCHMARKS / "run_curves.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(BENCHMARKS))


def test_the_budgets_end_at_the_longest_run(curves):
    assert curves.checkpoint_steps(1200, 300) == [300, 600, 900, 1200]
    assert curves.checkpoint_steps(1000, 300) == [300, 600, 900, 1000]
    assert curves.checkpoint_steps(500, 0) == [500]


def test_training_seconds_add_up_over_resumed_sittings(curves, tmp_path):
    log = tmp_path / "log.jsonl"
    records = [{"step": 10, "time": 5.0}, {"step": 20, "time": 10.0},     # first sitting, killed after step 20
               {"step": 30, "time": 4.0}, {"step": 40, "time": 9.5}]      # resumed: its clock restarts at 0
    log.write_text("\n".join(json.dumps(r) for r in records))
    assert curves.training_seconds(log) == {10: 5.0, 20: 10.0, 30: 14.0, 40: 19.5}


def test_equal_wallclock_picks_cuts_budget_nearest_semguards_time(curves):
    cut = [{"steps": 300, "seconds": 100.0}, {"steps": 600, "seconds": 210.0}, {"steps": 900, "seconds": 330.0},
           {"steps": 1200, "seconds": None}]
    assert curves.equal_wallclock(cut, 300.0)["steps"] == 900
    assert curves.equal_wallclock(cut, 150.0)["steps"] == 300      # 50 s from 100, 60 s from 210
    assert curves.equal_wallclock(cut, 10_000.0)["steps"] == 900   # untimed records are never picked
    assert curves.equal_wallclock([{"steps": 300, "seconds": None}], 5.0) is None


def _record(steps, seconds, seed, flip):
    return {"steps": steps, "seconds": seconds, "seed": seed, "pixel_flip_rate": flip, "flip_rate": {"sky": flip},
            "two_sample": {"accuracy": 0.9}, "references": {"source": {"pixel_flip_rate": 0.2, "flip_rate": {"sky": 0.1}},
                                                           "paired_truth": {"pixel_flip_rate": 0.02}}}


def test_the_results_keep_the_benchmarks_shape_and_draw(curves, tmp_path):
    found = {"cut": [_record(s, s * 0.4, seed, 0.3) for seed in (0, 1) for s in (300, 600)],
             "semguard": [_record(s, s * 1.2, seed, 0.1) for seed in (0, 1) for s in (300, 600)]}
    result = curves.summarise(found, 600)
    assert [r["seed"] for r in result["variants"]["semguard"]] == [0, 1]
    assert all(r["steps"] == 600 and "references" not in r for r in result["variants"]["semguard"])
    assert {r["steps"] for r in result["curves"]["cut"]} == {300, 600}
    assert result["references"]["source"]["pixel_flip_rate"] == 0.2
    # semguard's 600 steps took 720 s: CUT's nearest record is its 600 steps (240 s)
    assert result["equal_wallclock"]["cut"]["steps"] == 600 and result["equal_wallclock"]["semguard_seconds"] == 720
    # semguard 300 steps (360 s) meets CUT 600 (240 s) as the nearest; each budget and seed has its pair
    pairs = {(p["seed"], p["steps"]): p["cut"]["steps"] for p in result["equal_wallclock"]["pairs"]}
    assert pairs == {(0, 300): 600, (0, 600): 600, (1, 300): 600, (1, 600): 600}
    result.update(date="2026-12-05", machine={}, seeds=[0, 1], parallel=2, threads=1)
    text = curves.to_markdown(result, "python benchmarks/run_curves.py ...")
    assert "| semguard | 600 | 720.000 ± 0.000 | 0.100 ± 0.000 |" in text
    # per class at the last budget: sky is each record's flip, a class no record has is "-"
    assert "| semguard | 600 | 0.100 ± 0.000 | - |" in text and "| source (reference) | | 0.100 | - |" in text
    result.update(downstream={"sim": [{"seed": 0, "miou": 0.2}, {"seed": 1, "miou": 0.4}],
                              "semguard_translated": [{"seed": 0, "miou": 0.5}]}, downstream_steps=250, steps=600)
    text = curves.to_markdown(result, "python benchmarks/run_curves.py ...")
    assert "Downstream at 600 steps: a segmenter trained 250 steps" in text
    assert "| sim | 2 | 0.300 ± 0.141 |" in text and "| semguard_translated | 1 | 0.500 |" in text
    result["downstream"]["stopped_translated"] = []   # a run stopped before its final checkpoint: no row
    result["note"] = "two benchmark runs shared the cores"
    text = curves.to_markdown(result, "python benchmarks/run_curves.py ...")
    assert "stopped_translated" not in text and "; note: two benchmark runs shared the cores" in text
    curves.draw_curves(result, tmp_path / "curves.png")
    assert Image.open(tmp_path / "curves.png").size[0] > 400


def test_the_two_sample_test_runs_at_the_first_middle_and_last_budget(curves):
    assert curves.two_sample_steps(2400, 300) == {300, 1200, 2400}
    assert curves.two_sample_steps(600, 300) == {300, 600}
