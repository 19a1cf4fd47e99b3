"""Train-step throughput (img/s) and peak memory: spade (semguard) vs resnet (CUT baseline).

One full trainer step (generator + PatchNCE heads, discriminator, EMA; plus the frozen
guide's seg and box losses for the semguard row) on one fixed batch, so data loading is
not measured. Every (config, resolution) runs in its own fresh process, one after the
other in this same run, so the peak-memory figures do not leak into each other:
  - CUDA: torch.cuda.max_memory_allocated of the timed steps;
  - CPU:  peak resident set size of the process (ru_maxrss) minus its size after the
          models were built (what the steps themselves add), and the total peak.

    python benchmarks/bench_train_step.py [--device cpu|cuda] [--steps 3] [--batch-size 2]
        [--sizes 128x256,256x512] [--out benchmarks/results/train_step.md]

Rows: semguard = configs/toy.yaml (spade, conditioned, gan + nce + seg + box, frozen guide), in the
trainer's default layout (train.channels_last auto: every network channels-last on CUDA; on CPU the
discriminators and the guide channels-last, the generator and its batches NCHW);
semguard-nhwc = every network channels-last (train.channels_last=true, the CPU default before);
semguard-nchw = the same in the contiguous layout (train.channels_last=false);
semguard-seg16 = the same with the segmentation discriminator at 16 base channels (32 in toy.yaml);
semguard-v2 = the same with SPADE version 2; semguard-v1 = the same with model.spade_version=1
(the SPADE of checkpoints before issue 13: per-norm conditioning embeddings), the before row;
semguard-patchd = configs/toy_v1.yaml with SPADE version 3 (the semguard of before issue 12: patch
discriminator, guide, seg + box, no segmentation discriminator);
spade-cut = configs/toy_cond_only.yaml (spade, conditioned, gan + nce); spade3-cut = the same with
SPADE version 3 (toy.yaml's generator under CUT's losses: the generator's own cost);
resnet-cut = configs/toy_cut.yaml (resnet, unconditioned, gan + nce): the CUT baseline at
equal width, resolution and batch, in its default layout, and the reference of the "x CUT"
column; *-nhwc / *-nchw = the same with every network channels-last / in the contiguous layout; semguard-fp32 / resnet-cut-fp32 = without bf16 autocast (train.amp=false) and
in NCHW: on CUDA the fp32 rows beside the default bf16 + channels-last ones (on CPU autocast is off
anyway, so they equal the nchw rows). The guide is an
untrained segmenter of the benchmark guide's architecture (fpn / resnet18; speed does not depend
on its weights).
--breakdown adds a table of where a step's time goes: each part of the step timed alone on the
same batch (forward and backward as the step runs it), and the step minus those parts (optimizer
steps, clipping, EMA, the finiteness checks, and the run-to-run noise of both timings).
GFLOP/step: torch's FLOP counter over one more (untimed) step, forward and backward:
independent of the machine and its load.
--ops adds a table of where one more step's time goes by operator (torch.profiler, self time of
each operator; CPU time on CPU, device time on CUDA): convolution forward and backward, matrix
products, and everything else (elementwise ops, reductions, norms, copies, autograd bookkeeping:
the part that fusing, e.g. torch.compile, could shrink), with the largest operators of the rest.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROWS = (("semguard", "toy.yaml", ()),
        ("semguard-2guides", "toy.yaml", ("guide.ensemble=[linknet]",)),
        ("semguard-3guides", "toy.yaml", ("guide.ensemble=[linknet,deeplabv3plus]",)),
        ("semguard-nhwc", "toy.yaml", ("train.channels_last=true",)),
        ("semguard-nchw", "toy.yaml", ("train.channels_last=false",)),
        ("semguard-seg16", "toy.yaml", ("model.discriminator.seg_base_channels=16",)),
        ("semguard-v2", "toy.yaml", ("model.spade_version=2",)),
        ("semguard-v1", "toy.yaml", ("model.spade_version=1",)),
        ("semguard-patchd", "toy_v1.yaml", ("model.spade_version=3",)),
        ("semguard-fp32", "toy.yaml", ("train.amp=false", "train.channels_last=false")),
        ("spade-cut", "toy_cond_only.yaml", ()), ("spade3-cut", "toy_cond_only.yaml", ("model.spade_version=3",)),
        ("spade3-cut-nhwc", "toy_cond_only.yaml", ("model.spade_version=3", "train.channels_last=true")),
        ("spade3-cut-nchw", "toy_cond_only.yaml", ("model.spade_version=3", "train.channels_last=false")),
        ("resnet-cut", "toy_cut.yaml", ()),
        ("resnet-cut-nhwc", "toy_cut.yaml", ("train.channels_last=true",)),
        ("resnet-cut-nchw", "toy_cut.yaml", ("train.channels_last=false",)),
        ("resnet-cut-fp32", "toy_cut.yaml", ("train.amp=false", "train.channels_last=false")))
BASELINE = "resnet-cut"
# the quick start's guides (scripts/quickstart.sh): the main guide's architecture, then the further guides'
GUIDE_ARCHITECTURES = ("fpn", "linknet", "deeplabv3plus")


def _write_data(root: Path, size: tuple[int, int], count: int) -> None:
    from semguard.data.folder import write_dataset_info, write_sample
    from semguard.data.toyworld import render_sample

    for domain in ("sim", "real"):
        for index in range(count):
            sample = render_sample(0, index, layout=domain, style=domain, size=size)
            write_sample(root / domain, sample)
        write_dataset_info(root / domain, domain=domain)


def _measure(args) -> dict:
    """Child process: build the trainer, time `steps` train steps on one batch, report JSON."""
    import resource

    import torch

    from semguard.config import load_config
    from semguard.models.segmenter import build_segmenter
    from semguard.checkpoints import save_segmenter
    from semguard.train.trainer import Trainer

    height, width = args.size
    work = Path(args.work)
    # untrained stand-ins of the quick start's guides, in its order: the main guide, then the further ones
    guides = []
    for arch in GUIDE_ARCHITECTURES:
        guides.append(work / f"guide_{arch}.pt")
        if not guides[-1].exists():
            torch.manual_seed(0)
            save_segmenter(guides[-1], build_segmenter(arch, "resnet18"), role="guide")
    overrides = [f"data.source={work / 'sim'}", f"data.target={work / 'real'}", f"data.crop=[{height},{width}]",
                 f"data.batch_size={args.batch_size}", "data.workers=0", f"train.device={args.device}",
                 f"train.out={work / ('run_' + args.row)}", f"train.steps={args.steps + 2}", "train.sample_count=0",
                 "train.log_every=0", "train.sample_every=0", "train.checkpoint_every=0",
                 *dict((row, extra) for row, _, extra in ROWS)[args.row]]
    config = load_config(REPO / "configs" / args.config, overrides)
    if config.guide.checkpoint is not None:   # a stand-in of the same architecture for each guide the config reads
        further = len(config.guide.ensemble)
        if further >= len(guides):
            raise SystemExit(f"{args.config} lists {further} further guides; GUIDE_ARCHITECTURES has stand-ins "
                             f"for {len(guides) - 1}")
        paths = [f"guide.checkpoint={guides[0]}", "guide.ensemble=[" + ",".join(map(str, guides[1:1 + further])) + "]"]
        config = load_config(REPO / "configs" / args.config, overrides + paths)
    trainer = Trainer(config, show_progress=False)
    batch = trainer.stream.next()

    class _SameBatch:
        def next(self):
            return batch

    trainer.stream = _SameBatch()
    cuda = trainer.device.type == "cuda"
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # models built, batch fetched
    trainer.train_step()   # warm-up (allocations, cuDNN autotune)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as flops:
        trainer.train_step()
    result = {
        "breakdown": _breakdown(trainer, batch, args.steps) if args.breakdown else None,
        "ops": _profile_ops(trainer, cuda) if args.ops else None,
        "gflop_per_step": flops.get_total_flops() / 1e9,
        "row": args.row, "size": f"{height}x{width}", "batch": args.batch_size,
        "images_per_s": args.steps * args.batch_size / elapsed, "seconds_per_step": elapsed / args.steps,
        "generator_params_m": sum(p.numel() for p in trainer.generator.parameters()) / 1e6,
    }
    if cuda:
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["peak_mib"] = peak
        result["step_peak_mib"] = peak - rss_before
    trainer.close()
    return result


OP_CATEGORIES = ("convolution forward", "convolution backward", "matrix products", "everything else")
MATRIX_PRODUCTS = {"mm", "bmm", "addmm", "baddbmm", "matmul", "linear"}
CONVOLUTION_MARKS = ("convolution", "conv2d", "conv_depthwise", "conv_transpose")


def _op_category(name: str) -> str:
    """One of OP_CATEGORIES for a profiler event name (e.g. 'aten::mkldnn_convolution')."""
    lower = name.lower()
    if any(mark in lower for mark in CONVOLUTION_MARKS):
        return "convolution backward" if "backward" in lower else "convolution forward"
    if lower.split("::")[-1] in MATRIX_PRODUCTS:
        return "matrix products"
    return "everything else"


def _op_shares(events: list[tuple[str, float]], top: int = 6) -> dict:
    """(operator name, self time in us) pairs of one profiled step -> {"total_ms", "categories":
    {category: share of the total}, "top_rest": [[name, share], ...] (the largest operators of
    "everything else", at most `top`)}. Self times add up to the step's profiled time, so the
    shares sum to 1."""
    events = [(name, max(0.0, us)) for name, us in events]   # profiler rounding can give -0.x us
    total = sum(us for _, us in events)
    if total <= 0:
        raise ValueError("the profiled step recorded no operator time")
    categories = dict.fromkeys(OP_CATEGORIES, 0.0)
    rest: dict[str, float] = {}
    for name, us in events:
        category = _op_category(name)
        categories[category] += us / total
        if category == "everything else":
            rest[name] = rest.get(name, 0.0) + us / total
    largest = sorted(rest.items(), key=lambda item: -item[1])[:top]
    return {"total_ms": total / 1000, "categories": categories, "top_rest": [list(item) for item in largest]}


def _profile_ops(trainer, cuda: bool) -> dict:
    """_op_shares of one more train step under torch.profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as profiled:
        trainer.train_step()
        if cuda:
            torch.cuda.synchronize()
    events = profiled.key_averages()
    return _op_shares([(event.key, event.self_device_time_total if cuda else event.self_cpu_time_total)
                       for event in events])


def _breakdown(trainer, batch, repeats: int) -> dict[str, dict[str, float]]:
    """Each part of a train step alone: {"seconds": mean of `repeats` after one warm-up,
    "gflop": torch's FLOP count of one call (forward and backward)}, keyed by part."""
    import torch

    source, target = (trainer._to_device(part) for part in batch)
    condition = trainer._condition(source)
    agreement = trainer._agreement(source, target)
    objective, helpers = trainer.objective, trainer.objective.helpers
    generator, layers = trainer.generator, tuple(objective.loss.nce_layers)
    with torch.no_grad():
        fake = generator(source.image, condition)
    adversaries = [(trainer.discriminator, trainer.adversary, "adversary")]
    if trainer.texture_discriminator is not None:
        adversaries.append((trainer.texture_discriminator, helpers.texture_adversary, "texture adversary"))

    def translate_and_nce():
        translated, features = generator.translate_and_encode(source.image, condition, layers)
        objective.patchnce(source.image, translated, condition, features).backward()

    def generator_term(network, adversary):
        translated = fake.clone().requires_grad_(True)
        adversary.generator_term(network(translated), source.label, agreement).backward()

    def discriminator_update(network, adversary):
        network.requires_grad_(True)
        real, fake_logits = adversary.split(network(torch.cat([target.image, fake])), target.image.shape[0])
        adversary.discriminator_term(real, target.label, fake_logits, source.label, agreement).backward()
        network.requires_grad_(False)

    def seg_term():
        objective.seg_term(fake.clone().requires_grad_(True), source.label).backward()

    def box_term():
        helpers.box_loss(source.image, fake.clone().requires_grad_(True), source.boxes).backward()

    parts = {"generator + PatchNCE (forward, backward)": translate_and_nce}
    for network, adversary, name in adversaries:
        parts[f"{name}: generator term"] = lambda n=network, a=adversary: generator_term(n, a)
        parts[f"{name}: discriminator update"] = lambda n=network, a=adversary: discriminator_update(n, a)
    if trainer.weights["seg"] > 0:
        parts["guide: seg term"] = seg_term
    if trainer.weights["box"] > 0:
        parts["guide: box term"] = box_term
    from torch.utils.flop_counter import FlopCounterMode

    seconds, gflop = {}, {}
    for name, part in parts.items():
        with FlopCounterMode(display=False) as flops:   # also the warm-up call
            part()
        gflop[name] = flops.get_total_flops() / 1e9
        start = time.perf_counter()
        for _ in range(repeats):
            part()
        seconds[name] = (time.perf_counter() - start) / repeats
    trainer.optimizer_g.zero_grad(set_to_none=True)
    trainer.optimizer_d.zero_grad(set_to_none=True)
    return {"seconds": seconds, "gflop": gflop}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (after one warm-up step)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--sizes", default="128x256,256x512")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--rows", default=",".join(row for row, _, _ in ROWS),
                        help=f"comma-separated rows to run (default all: {', '.join(row for row, _, _ in ROWS)})")
    parser.add_argument("--breakdown", action="store_true", help="also time each part of the step alone")
    parser.add_argument("--ops", action="store_true",
                        help="also profile one step and report its time by operator category (torch.profiler)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the rows of each size round-robin this many times (each in a fresh process) and "
                             "report medians: on a machine whose speed drifts, rows far apart in time are not comparable")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_step.md"))
    parser.add_argument("--child", nargs=5, metavar=("ROW", "CONFIG", "H", "W", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        args.row, args.config, height, width, args.work = args.child
        args.size = (int(height), int(width))
        print("RESULT " + json.dumps(_measure(args)))
        return 0

    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    chosen = [(row, config) for row, config, _ in ROWS if row in args.rows.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for height, width in sizes:
            work = Path(tmp) / f"{height}x{width}"
            _write_data(work, (height, width), count=max(4, args.batch_size))
            rounds: list[dict[str, dict]] = []
            for round_index in range(args.rounds):
                rounds.append({})
                for row, config in chosen:
                    command = [sys.executable, __file__, "--device", args.device, "--steps", str(args.steps),
                               "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                               *(["--breakdown"] if args.breakdown else []), *(["--ops"] if args.ops else []),
                               "--child", row, config, str(height),
                               str(width), str(work)]
                    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
                    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                    if done.returncode != 0 or not lines:
                        print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
                        raise SystemExit(f"benchmark row {row} {height}x{width} failed")
                    rounds[-1][row] = json.loads(lines[-1][len("RESULT "):])
                    print(f"round {round_index + 1}: " + json.dumps(rounds[-1][row]), flush=True)
            results += [_combine_rounds([taken[row] for taken in rounds], [taken.get(BASELINE) for taken in rounds])
                        for row, _ in chosen]
    _write_report(args, results)
    return 0


def _combine_rounds(runs: list[dict], baselines: list[dict | None]) -> dict:
    """One row's result over the rounds: medians of the timings, their min-max, and the time
    ratio to the baseline as the median of the per-round ratios (each baseline run beside it)."""
    combined = dict(runs[-1])
    for key in ("seconds_per_step", "images_per_s", "peak_mib", "step_peak_mib"):
        if key in combined:
            combined[key] = statistics.median(run[key] for run in runs)
    steps = [run["seconds_per_step"] for run in runs]
    combined["seconds_range"] = (min(steps), max(steps))
    combined["rounds"] = len(runs)
    if all(base is not None for base in baselines):
        combined["x_baseline"] = statistics.median(run["seconds_per_step"] / base["seconds_per_step"]
                                                   for run, base in zip(runs, baselines))
    if runs[0].get("breakdown"):
        combined["breakdown"] = {
            "seconds": {name: statistics.median(run["breakdown"]["seconds"][name] for run in runs)
                        for name in runs[0]["breakdown"]["seconds"]},
            "gflop": runs[0]["breakdown"]["gflop"]}
    if runs[0].get("ops"):
        combined["ops"] = {
            "total_ms": statistics.median(run["ops"]["total_ms"] for run in runs),
            "categories": {name: statistics.median(run["ops"]["categories"][name] for run in runs)
                           for name in OP_CATEGORIES},
            "top_rest": runs[-1]["ops"]["top_rest"]}
    return combined


def _write_report(args, results: list[dict]) -> None:
    import torch

    from semguard.common import cpu_description

    cuda = args.device.startswith("cuda")
    machine = (torch.cuda.get_device_name(0) if cuda else
               f"{cpu_description()} (torch threads: {args.threads or torch.get_num_threads()})")
    command = (f"python benchmarks/bench_train_step.py --device {args.device} --steps {args.steps} "
               f"--batch-size {args.batch_size} --sizes {args.sizes} --rows {args.rows}"
               + (f" --threads {args.threads}" if args.threads else "") + (" --breakdown" if args.breakdown else "") + (" --ops" if args.ops else "")
               + (f" --rounds {args.rounds}" if args.rounds > 1 else ""))
    lines = [
        "# Train-step throughput and peak memory: spade vs resnet",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}; torch {torch.__version__}; Python {platform.python_version()}  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "One trainer step = generator + PatchNCE heads update, discriminator update, EMA "
        "(+ frozen guide forward for the seg and box losses, and the segmentation discriminator, in the semguard rows), on one fixed "
        f"batch of {args.batch_size} (data loading excluded); {args.steps} timed steps after one warm-up"
        + (f"; the rows of each size ran round-robin {args.rounds} times, each in a fresh process: s/step and img/s "
           "are medians over the rounds (min-max beside them), 'x CUT (time)' the median of the ratios to the CUT "
           "run of the same round. " if args.rounds > 1 else ". ")
        + "GFLOP: torch's FLOP counter (forward and backward), the same on every machine. "
        "Model sizes of configs/toy*.yaml (base 32 channels, 4 blocks, 2 downsamplings). "
        + ("Peak memory: torch.cuda.max_memory_allocated." if cuda else
           "Peak memory: process peak RSS (ru_maxrss); 'steps add' = peak RSS growth over the size after building the models (warm-up and timed steps) "
           "(the process peak includes Python, torch and the models)."),
        "",
    ]
    header = "| row | generator | size | img/s | s/step | x CUT (time) | GFLOP/step | x CUT (FLOPs) |"
    if cuda:
        lines += [header + " peak MiB |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    else:
        lines += [header + " peak RSS MiB | steps add MiB |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    generator = {"semguard": "toy.yaml: spade v3, segmentation D + patch D, seg + box",
                 "semguard-nhwc": "toy.yaml with every network channels-last (train.channels_last=true)",
                 "semguard-nchw": "toy.yaml in the contiguous (NCHW) layout",
                 "semguard-seg16": "toy.yaml with the segmentation D at 16 channels",
                 "semguard-2guides": "toy.yaml with two guides (FPN, LinkNet)",
                 "semguard-3guides": "toy.yaml with three guides (FPN, LinkNet, DeepLabV3+)",
                 "semguard-v2": "toy.yaml with spade v2",
                 "semguard-patchd": "toy_v1.yaml with spade v3: patch D, seg + box", "semguard-v1": "toy.yaml with spade v1",
                 "semguard-fp32": "toy.yaml without bf16 autocast, NCHW (CUDA: the fp32 row; on CPU the same as semguard-nchw)",
                 "spade-cut": "spade v2, CUT losses only", "spade3-cut": "spade v3, CUT losses only",
                 "spade3-cut-nhwc": "spade v3, CUT losses only, every network channels-last",
                 "spade3-cut-nchw": "spade v3, CUT losses only, NCHW",
                 "resnet-cut": "resnet (CUT)", "resnet-cut-nhwc": "resnet (CUT), every network channels-last",
                 "resnet-cut-nchw": "resnet (CUT), NCHW",
                 "resnet-cut-fp32": "resnet (CUT) without bf16 autocast, NCHW (CUDA: the fp32 row)"}
    baseline = {r["size"]: r for r in results if r["row"] == BASELINE}
    for r in results:
        base = baseline.get(r["size"])
        ratio = r.get("x_baseline", r["seconds_per_step"] / base["seconds_per_step"] if base else None)
        slower = "n/a" if ratio is None else f"{ratio:.2f}"
        costlier = f"{r['gflop_per_step'] / base['gflop_per_step']:.2f}" if base else "n/a"
        low, high = r.get("seconds_range", (r["seconds_per_step"],) * 2)
        spread = f" ({low:.2f}-{high:.2f})" if r.get("rounds", 1) > 1 else ""
        cells = [r["row"], generator[r["row"]], r["size"], f"{r['images_per_s']:.2f}", f"{r['seconds_per_step']:.2f}{spread}",
                 slower, f"{r['gflop_per_step']:.1f}", costlier, f"{r['peak_mib']:.0f}"]
        if not cuda:
            cells.append(f"{r['step_peak_mib']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    broken_down = [r for r in results if r.get("breakdown")]
    if broken_down:
        lines += ["", "## Where a step's time and FLOPs go (each part run alone on the same batch)", "",
                  "Seconds: mean of the timed repeats" + (", median over the rounds" if args.rounds > 1 else "")
                  + "; GFLOP: one call, forward and backward, counted by torch (independent of the machine's load).", "",
                  "| row | size | part | seconds | share of the step | GFLOP | share of the step's FLOPs |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for r in broken_down:
            step, step_gflop = r["seconds_per_step"], r["gflop_per_step"]
            seconds, gflop = r["breakdown"]["seconds"], r["breakdown"]["gflop"]
            for name in seconds:
                lines.append(f"| {r['row']} | {r['size']} | {name} | {seconds[name]:.3f} | {seconds[name] / step:.0%} "
                             f"| {gflop[name]:.1f} | {gflop[name] / step_gflop:.0%} |")
            rest = step - sum(seconds.values())
            rest_gflop = step_gflop - sum(gflop.values())
            lines.append(f"| {r['row']} | {r['size']} | step minus the parts (optimizers, clipping, EMA, checks; for "
                         f"the seconds also run-to-run noise) | {rest:.3f} | {rest / step:.0%} | {rest_gflop:.1f} "
                         f"| {rest_gflop / step_gflop:.0%} |")
    profiled = [r for r in results if r.get("ops")]
    if profiled:
        clock = "device" if cuda else "CPU"
        lines += ["", f"## Where a step's {clock} time goes, by operator (torch.profiler, one more step)", "",
                  f"Share of the profiled step's {clock} time (the operators' self times, which add up to it)"
                  + (", median over the rounds" if args.rounds > 1 else "") + ". The self times leave out the Python between "
                  "operator calls and include the profiler's own cost per call (which weighs most on the small "
                  "operators), so the profiled step is not the timed one (both columns below). 'Everything else' is "
                  "what fusing "
                  "(e.g. torch.compile) could shrink; its largest operators are listed"
                  + (" (last round)" if args.rounds > 1 else "") + ".", "",
                  "| row | size | timed step ms | profiled step ms | " + " | ".join(OP_CATEGORIES) + " | largest of everything else |",
                  "|---|---|---:|---:|" + "---:|" * len(OP_CATEGORIES) + "---|"]
        for r in profiled:
            ops = r["ops"]
            largest = ", ".join(f"{name} {share:.0%}" for name, share in ops["top_rest"])
            lines.append(f"| {r['row']} | {r['size']} | {r['seconds_per_step'] * 1000:.0f} | {ops['total_ms']:.0f} | "
                         + " | ".join(f"{ops['categories'][name]:.0%}" for name in OP_CATEGORIES)
                         + f" | {largest} |")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
