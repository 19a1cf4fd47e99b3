"""The toy-world benchmark profiles, now spec files run by `semguard benchmark` (a thin wrapper).

    python benchmarks/run_benchmark.py --profile ci   --work /tmp/bench      # = semguard benchmark configs/benchmarks/toy_ci.yaml
    python benchmarks/run_benchmark.py --profile full --work runs/bench_full  # results in benchmarks/results

Every stage, the resume, the report and its shape live in semguard/benchmark/ (see
`semguard benchmark --help`); a profile is configs/benchmarks/toy_<profile>.yaml. The earlier
optional variants (semguard_seg16, semguard_attr, ...) are a spec's variants now: copy a profile's
spec and add them (`variants: {semguard_seg16: {config: ../toy.yaml, guide: target, overrides:
[model.discriminator.seg_base_channels=16]}}`). `machine` and `summarise_report` stay importable here
for benchmarks/run_curves.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from semguard.benchmark.results import machine, summarise_report  # noqa: E402,F401  (run_curves imports these)

PROFILES = {"ci": REPO / "configs/benchmarks/toy_ci.yaml", "full": REPO / "configs/benchmarks/toy_full.yaml"}
RESULTS = REPO / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    parser.add_argument("--work", type=Path, required=True, help="working folder for data, checkpoints and reports")
    parser.add_argument("--results", type=Path, default=None,
                        help="where to write benchmark_<profile>.json/.md (default: benchmarks/results for full, --work for ci)")
    args = parser.parse_args(argv)
    from semguard.cli import main as semguard

    results = args.results or (RESULTS if args.profile == "full" else args.work)
    return semguard(["benchmark", str(PROFILES[args.profile]), "--work", str(args.work), "--results", str(results)])


if __name__ == "__main__":
    sys.exit(main())
