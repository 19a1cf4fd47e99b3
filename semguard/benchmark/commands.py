"""`semguard benchmark SPEC.yaml --work DIR`: the benchmark on any labelled source and target."""

from __future__ import annotations

import argparse
from pathlib import Path

from semguard.benchmark.runner import prepare, run_benchmark
from semguard.benchmark.stages import StageRunner
from semguard.console import output_console
from semguard.validate import workers

SUMMARY = "run the benchmark a spec describes (any labelled source and target): variants, judge, downstream test"

DESCRIPTION = """\
Run the benchmark that SPEC.yaml describes: every variant (a translator config) trained on equal
budgets and seeds, measured by one judge, and the downstream test. Each stage is the semguard
command you would type (its log in WORK/logs/); a rerun with the same --work resumes at the stage
a kill interrupted; --jobs N runs independent stages side by side. Everything is checked before
the first stage: an unknown spec key, a missing path, a target set without labels.

Stages: split the target's training frames into two disjoint parts by a seeded permutation (the
translators' part: target guide, discriminators, layout pairing, oracle; the judge's part: the
judge alone), recorded in WORK/split/; bring every set to the spec's frame size (WORK/data/);
train the guides and the judge (another architecture and seed than the target guide); train and
evaluate every variant per seed (`semguard eval --flip-report`); per seed, the downstream test;
then WORK/report.md and report.json with the picture (source | baseline | method, same frames).

A spec (YAML; relative paths are relative to the spec file; configs/benchmarks/ has four):

  name: gta5_to_cityscapes
  data:
    source:       {root: /data/gta5, format: gta5}
    source_val:   {root: /data/gta5_val, format: gta5}      # frames measured (default: source)
    target_train: {root: /data/cityscapes, format: cityscapes, options: {split: train}}
    target_val:   {root: /data/cityscapes, format: cityscapes, options: {split: val}}
  frames: {size: [512, 1024], crop: [256, 512]}            # every set resized to size first
  budgets: {translator_steps: 20000, batch_size: 4, guide_steps: 4000, judge_steps: 8000,
            downstream_steps: 4000}
  segmenters: {judge: {arch: unet, seed: 7}, target_guide: {arch: fpn, seed: 2}}
  variants:
    cut:      {config: ../toy_cut.yaml, guide: none}
    semguard: {config: ../gta5_to_cityscapes.yaml, guide: target}
  overrides: [train.amp=true]                # every variant
  device: cuda                               # every stage
  seeds: [0, 1, 2]
  downstream: {baseline: cut, method: semguard}

  semguard benchmark gta5_to_cityscapes.yaml --work runs/bench_gta5 --results benchmarks/results

Other keys: data.judge_train (a labelled target set for the judge alone: no split), data.paired
(a paired truth of source_val, as the toy world has), data.merges (predicted class -> the class the
target labels it as; CamVid's are built in), toy (render the toy world; a set may then be
{toy: sim/train}), split {judge_share, seed}, eval {features, lpips}, threads, device, budgets.eval_every
(> 0: every that many steps a checkpoint kept and evaluated: the figures over training, curves.NAME). A target_train
without labels ({labelled: false}) runs only the variants that need no target labels (not the
segmentation discriminator, layout pairing or a target guide): the command lists which.

What each figure means when there is no paired truth (real target data):
  flip rate       share of source-labelled pixels the judge reads as another class on the
                  translation; it mixes the translator's content changes with the judge's own
                  error on such images, so compare variants, not absolute values
  judge floor     the judge's own per-class error on the target val frames (not its error on a
                  perfect translation, which needs a paired truth); no excess flip is given
  reliable mean   mean flip over the classes the judge reads well (floor <= 15%, IoU >= 50%)
  KID / sKVD      realism against target val on the judge's features; sKVD compares crops
                  matched by label layout, so copying the target's layout does not pay
  downstream      mIoU on target val of segmenters trained on each translation with the source
                  labels, beside the untranslated source (sim) and the real oracle (the
                  translators' part with its labels): the figure that needs no paired truth
  source classes the target never labels are listed, not scored
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("benchmark", help=SUMMARY, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", metavar="SPEC.yaml", help="the benchmark spec (see above; configs/benchmarks/)")
    parser.add_argument("--work", required=True, metavar="DIR",
                        help="working folder: data views, checkpoints, reports, logs; rerun with it to resume")
    parser.add_argument("--results", metavar="DIR",
                        help="also write <name>.json, <name>.md and <name>_comparison.png here (<name>: the spec's name)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a spec key, repeatable (e.g. budgets.translator_steps=20, seeds=[0])")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="run up to N stages at once, each as soon as the stages whose outputs it reads are "
                             "done (default 1: one at a time, in order); each gets the spec's threads, else the "
                             "cores divided by N (docs/BENCHMARKS.md)")
    parser.add_argument("--plan", action="store_true",
                        help="check the spec and list the stages (done ones marked) without running anything")
    parser.set_defaults(handler=run_command)


def run_command(args) -> int:
    workers(args.jobs, "--jobs", low=1)
    console = output_console(soft_wrap=True)
    if args.plan:
        _, _, stages = prepare(args.spec, args.work, tuple(args.overrides))
        runner = StageRunner(Path(args.work).resolve(), stages)
        for number, stage in enumerate(stages, start=1):
            mark = "done" if runner.done(stage) else "    "
            console.print(f"{number:3d} {mark} {stage.name}", markup=False)
        return 0
    result = run_benchmark(args.spec, args.work, args.results, tuple(args.overrides),
                           echo=lambda line: console.print(line, markup=False, highlight=False), jobs=args.jobs)
    where = args.results or args.work
    console.print(f"benchmark {result['name']} complete ({result['total_seconds']} s of stages); "
                  f"report in {Path(args.work) / 'report.md'}" + (f" and {where}" if args.results else ""),
                  markup=False)
    if result["problems"]:
        console.print("results not well formed:\n- " + "\n- ".join(result["problems"]), markup=False)
        return 1
    return 0
