"""The benchmarks' round-robin summaries: medians over rounds, and each row's ratio to the
baseline run of its own round (so a machine whose speed drifts between rounds does not bias it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(seconds: float, peak: float) -> dict:
    return {"row": "semguard", "size": "64x128", "seconds_per_step": seconds, "images_per_s": 2 / seconds,
            "peak_mib": peak, "step_peak_mib": peak / 2, "gflop_per_step": 10.0,
            "breakdown": {"seconds": {"a": seconds / 2}, "gflop": {"a": 4.0}}}


def test_train_step_rounds_take_medians_and_same_round_ratios():
    bench = _load("bench_train_step")
    # the machine runs at half speed in round 2: both rows slow down together
    runs = [_run(3.0, 100.0), _run(6.0, 300.0), _run(3.3, 200.0)]
    baselines = [_run(1.0, 50.0), _run(2.0, 50.0), _run(1.0, 50.0)]
    combined = bench._combine_rounds(runs, baselines)
    assert combined["seconds_per_step"] == 3.3
    assert combined["images_per_s"] == pytest.approx(2 / 3.3)
    assert combined["peak_mib"] == 200.0
    assert combined["seconds_range"] == (3.0, 6.0)
    assert combined["rounds"] == 3
    # per-round ratios 3.0, 3.0, 3.3: median 3.0 (the median seconds over the median baseline would say 3.3)
    assert combined["x_baseline"] == pytest.approx(3.0)
    assert combined["breakdown"]["seconds"]["a"] == pytest.approx(1.65)
    assert combined["breakdown"]["gflop"] == {"a": 4.0}


def test_train_step_rounds_without_a_baseline_leave_the_ratio_out():
    bench = _load("bench_train_step")
    combined = bench._combine_rounds([_run(2.0, 1.0)], [None])
    assert "x_baseline" not in combined
    assert combined["seconds_per_step"] == 2.0


def test_translate_rounds_share_each_round_against_its_own_model_run():
    bench = _load("bench_translate")
    rounds = [{"model": 10.0, "auto": 11.0}, {"model": 20.0, "auto": 21.0}, {"model": 10.0, "auto": 12.5}]
    seconds, rate, shares = bench._row_figures(rounds, "auto", frames=4)
    assert seconds == 12.5
    assert rate == pytest.approx(4 / 12.5)
    assert shares == pytest.approx([10 / 11, 20 / 21, 10 / 12.5])
    assert bench._share_text(shares) == "91% (80%-95%)"
    assert bench._share_text([0.5]) == "50%"


def test_train_step_ops_sort_operators_into_categories():
    bench = _load("bench_train_step")
    assert bench._op_category("aten::mkldnn_convolution") == "convolution forward"
    assert bench._op_category("aten::_slow_conv2d_forward") == "convolution forward"
    assert bench._op_category("aten::convolution_backward") == "convolution backward"
    assert bench._op_category("ConvolutionBackward0") == "convolution backward"
    assert bench._op_category("aten::mm") == "matrix products"
    assert bench._op_category("aten::bmm") == "matrix products"
    assert bench._op_category("aten::leaky_relu") == "everything else"
    assert bench._op_category("aten::mul") == "everything else"   # not a matrix product by substring
    assert bench._op_category("aten::_convert_indices_from_coo_to_csr") == "everything else"   # "conv", not a convolution
    assert bench._op_category("aten::_conv_depthwise2d") == "convolution forward"


def test_train_step_ops_shares_sum_to_one_and_list_the_largest_of_the_rest():
    bench = _load("bench_train_step")
    events = [("aten::mkldnn_convolution", 300.0), ("aten::convolution_backward", 500.0), ("aten::mm", 100.0),
              ("aten::add_", 60.0), ("aten::mul", 30.0), ("aten::add_", 10.0), ("aten::empty", -1.0)]
    shares = bench._op_shares(events, top=2)
    assert shares["total_ms"] == pytest.approx(1.0)
    assert shares["categories"] == pytest.approx({"convolution forward": 0.3, "convolution backward": 0.5,
                                                  "matrix products": 0.1, "everything else": 0.1})
    assert sum(shares["categories"].values()) == pytest.approx(1.0)
    # the same operator's events add up; a negative self time (profiler rounding) counts as 0
    assert shares["top_rest"] == [["aten::add_", pytest.approx(0.07)], ["aten::mul", pytest.approx(0.03)]]
    with pytest.raises(ValueError, match="no operator time"):
        bench._op_shares([("aten::empty", 0.0)])


def test_train_step_rounds_take_the_median_share_of_each_category():
    bench = _load("bench_train_step")
    runs = []
    for conv_forward, total in ((0.2, 900.0), (0.3, 1000.0), (0.4, 2000.0)):
        run = _run(1.0, 1.0)
        run["ops"] = {"total_ms": total, "top_rest": [["aten::add_", 0.05]],
                      "categories": {"convolution forward": conv_forward, "convolution backward": 0.5,
                                     "matrix products": 0.1, "everything else": 0.4 - conv_forward}}
        runs.append(run)
    combined = bench._combine_rounds(runs, [None] * 3)
    assert combined["ops"]["total_ms"] == 1000.0
    assert combined["ops"]["categories"]["convolution forward"] == pytest.approx(0.3)
    assert combined["ops"]["categories"]["everything else"] == pytest.approx(0.1)
