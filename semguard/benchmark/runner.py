"""`run_benchmark`: a spec and a work folder in, the benchmark's result out (the library form of the command).

Order: read the spec, check it against the disk (before any stage), refuse a work folder that
holds a run of another spec (its finished stages would be skipped as if they were this one's),
run the stages (resuming), gather the result, write WORK/report.{json,md} (and, with
`results`, NAME.{json,md} and NAME_comparison.png there).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from semguard.benchmark.plan import build_plan
from semguard.benchmark.preflight import check_spec
from semguard.benchmark.results import check_well_formed, collect, to_markdown
from semguard.benchmark.spec import load_spec
from semguard.benchmark.stages import StageRunner
from semguard.config import config_to_dict
from semguard.errors import ConfigError

# the runner class the benchmark uses (a test replaces it to stop a run between stages)
RUNNER = StageRunner


def prepare(spec_path: str | Path, work: str | Path, overrides: tuple[str, ...] = ()):
    """(loaded spec, preflight, stages) after every check; nothing written."""
    work = Path(work).resolve()
    loaded = load_spec(spec_path, overrides)
    preflight = check_spec(loaded)
    return loaded, preflight, build_plan(loaded, preflight, work)


def stage_threads(spec_threads: int, jobs: int) -> int:
    """Torch threads per stage: the spec's, else with several jobs the cores shared among them (0: torch's default)."""
    if spec_threads or jobs <= 1:
        return spec_threads
    return max(1, len(os.sched_getaffinity(0)) // jobs)


def run_benchmark(spec_path: str | Path, work: str | Path, results: str | Path | None = None,
                  overrides: tuple[str, ...] = (), echo: Callable[[str], None] = print, jobs: int = 1) -> dict:
    """jobs: how many stages may run at once (each started when the stages it reads are done)."""
    work = Path(work).resolve()
    loaded, preflight, stages = prepare(spec_path, work, overrides)
    _claim_work_folder(work, config_to_dict(loaded.spec), loaded.path)
    threads = stage_threads(loaded.spec.threads, jobs)
    runner = RUNNER(work, stages, threads, echo, jobs=jobs)
    start = time.perf_counter()
    records = runner.run_all()
    wall = time.perf_counter() - start
    result = collect(loaded, preflight, work, records)
    # stage seconds summed (they overlap with jobs > 1), and this sitting's wall clock when it ran every stage
    result["total_seconds"] = round(sum(record["seconds"] for record in records.values()), 1)
    result["jobs"], result["threads_per_stage"] = jobs, threads
    result["wall_seconds"] = round(wall, 1) if len(runner.ran) == len(stages) else None
    result["problems"] = check_well_formed(result)
    _write(result, work, "report")
    if results is not None:
        results = Path(results)
        results.mkdir(parents=True, exist_ok=True)
        copy = dict(result)
        if result.get("figure"):
            figure = results / f"{loaded.spec.name}_comparison.png"
            shutil.copyfile(result["figure"], figure)
            copy["figure"] = figure.name
        _write(copy, results, loaded.spec.name)
    return result


def _write(result: dict, folder: Path, stem: str) -> None:
    shown = dict(result)
    figure = shown.get("figure")
    if figure and Path(figure).is_absolute() and Path(figure).parent == folder:
        shown["figure"] = Path(figure).name   # the Markdown links it beside itself
    (folder / f"{stem}.json").write_text(json.dumps(shown, indent=1))
    (folder / f"{stem}.md").write_text(to_markdown(shown))


def _claim_work_folder(work: Path, spec: dict, spec_path: Path) -> None:
    """Record the spec in WORK/spec.json; refuse a folder holding a run of another spec."""
    work.mkdir(parents=True, exist_ok=True)
    record = work / "spec.json"
    if record.is_file():
        earlier = json.loads(record.read_text())
        if earlier.get("spec") != json.loads(json.dumps(spec)):
            changed = sorted(_differences(earlier.get("spec") or {}, json.loads(json.dumps(spec))))
            raise ConfigError(f"{work} holds a benchmark of another spec ({earlier.get('file')}; differs in "
                              f"{', '.join(changed[:8])}); its finished stages would count as this one's: give "
                              "another --work, or delete that folder to start over")
        return
    record.write_text(json.dumps({"file": str(spec_path), "spec": spec}, indent=1))


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            keys += _differences(left, right, f"{prefix}{key}.")
        elif left != right:
            keys.append(f"{prefix}{key}")
    return keys
