"""Output for people in a log, and for machines: no wrapped paths when stdout is not a terminal, and
`--json` documents that hold what the text says (semguard.console, `data check --json`, `eval --json`)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.markup import escape
from rich.table import Table

from semguard.cli import main
from semguard.console import output_console, table_lines
from semguard.data.toyworld import make_toy_world

from eval_fixtures import make_judge, make_world

H, W = 16, 24
CITY = "city_with_a_long_name[v2]"   # '[...]' is rich markup: it must come out as written


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def damaged_cityscapes(root: Path, damage: bool = True) -> list[str]:
    """A Cityscapes copy with paths longer than any log line, and the files it damaged:
    a truncated image, a label cut to its header, a label of the wrong size."""
    rng = np.random.default_rng(0)
    damaged = []
    for index in range(4):
        stem = f"{CITY}_{index:06d}_000019_a_frame_name_long_enough_to_wrap_in_any_table_cell"
        image = root / "leftImg8bit" / "train" / CITY / f"{stem}_leftImg8bit.png"
        label = root / "gtFine" / "train" / CITY / f"{stem}_gtFine_labelIds.png"
        _save(image, rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        _save(label, np.full((H, W), 7, np.uint8))
        if not damage:
            continue
        if index == 1:
            image.write_bytes(image.read_bytes()[:70])
            damaged.append(str(image))
        elif index == 2:
            label.write_bytes(label.read_bytes()[:40])
            damaged.append(str(label))
        elif index == 3:
            _save(label, np.full((H, W + 1), 7, np.uint8))
            damaged.append(str(label))
    return damaged


def test_data_check_in_a_pipe_prints_every_damaged_path_whole_on_one_line(tmp_path):
    damaged = damaged_cityscapes(tmp_path / "cityscapes")
    assert min(len(path) for path in damaged) > 160
    result = subprocess.run([sys.executable, "-m", "semguard.cli", "data", "check", str(tmp_path / "cityscapes"),
                             "--format", "cityscapes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=300, env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 1, result.stderr + result.stdout
    lines = result.stdout.splitlines()
    for path in damaged:
        holding = [line for line in lines if path in line]
        assert len(holding) == 1, f"{path} not whole on one line of:\n{result.stdout}"
    assert not any(char in result.stdout for char in "│┃━─"), result.stdout   # no box drawing in a log
    assert "NOT usable" in lines[-1]


def test_data_check_json_lists_the_problems_of_the_text(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    root = tmp_path / "cityscapes"
    damaged = damaged_cityscapes(root)
    argv = ["data", "check", str(root), "--format", "cityscapes"]
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert main([*argv, "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)                    # stdout holds the JSON document and nothing else
    assert "NOT usable" in captured.err
    assert report["usable"] is False and report["root"] == str(root) and report["format"] == "cityscapes"
    assert sorted(problem["path"] for problem in report["problems"]) == sorted(damaged)
    text_rows = [line for line in text.splitlines() if any(path in line for path in damaged)]
    assert len(text_rows) == len(report["problems"])
    for problem in report["problems"]:
        row = next(line for line in text_rows if problem["path"] in line)
        assert row.startswith(problem["kind"])
    assert report["counts"] == {"unreadable file": 2, "size mismatch": 1}
    assert report["summary"] in text and report["checked"] == report["frames"] == 4
    # a usable set: exit 0, the same document shape
    damaged_cityscapes(root, damage=False)
    assert main([*argv, "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["usable"] is True and clean["problems"] == [] and clean["counts"] == {}


def test_data_check_json_keeps_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing"), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "missing" in captured.err


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    make_world(root, count=2)
    make_judge(root / "judge.pt")
    return root


def test_eval_json_is_the_report_json(world, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["eval", "--translated", str(world / "translated"), "--data", str(world), "--judge",
                 str(world / "judge.pt"), "--features", "none", "--no-lpips", "--worst", "0", "--flip-report",
                 "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)                   # nothing but the document on stdout
    written = json.loads((out / "report.json").read_text())
    assert printed == written
    for variant in ("translated", "source", "paired_truth"):
        assert printed["variants"][variant]["flip"]["headline"] == written["variants"][variant]["flip"]["headline"]
    assert printed["judge"]["miou"] == written["judge"]["miou"]
    assert "wrote" in captured.err and "report.json" in captured.err
    # --json and --compare: the reports given are JSON already
    assert main(["eval", "--compare", str(out / "report.json"), "--json"]) == 2
    assert "--json" in capsys.readouterr().err


def test_eval_flicker_json_is_the_flicker_json(world, tmp_path, capsys):
    make_toy_world(tmp_path / "toy", train=0, val=0, judge=0, size=(32, 64), seed=2, clips=2, clip_length=2)
    clips = tmp_path / "toy" / "clips"
    out = tmp_path / "flicker"
    code = main(["eval", "--flicker", "--translated", str(clips / "paired"), "--clips", str(clips), "--judge",
                 str(world / "judge.pt"), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)
    assert printed == json.loads((out / "flicker.json").read_text())
    assert "wrote" in captured.err


def test_tables_are_plain_lines_off_a_terminal_and_boxed_on_one():
    path = "/data/" + "a_very_long_folder_name/" * 8 + "frame[v2].png"
    table = Table(title="problems")
    table.add_column("kind", no_wrap=True)
    table.add_column("file", overflow="fold")
    table.add_column("pixels", justify="right")
    table.add_row("size mismatch", escape(path), "12")
    table.add_row("unreadable file", "x.png", "3")
    assert table_lines(table) == [
        "problems",
        f"kind             {'file'.ljust(len(path))}  pixels",
        f"size mismatch    {path}      12",
        f"unreadable file  {'x.png'.ljust(len(path))}       3",
    ]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log, terminal = io.StringIO(), Terminal()
    for stream in (log, terminal):
        console = output_console(file=stream, width=60)
        console.print(table)
        console.print("a line longer than the console's sixty columns " * 3)
    assert path in log.getvalue() and "│" not in log.getvalue()
    assert len(log.getvalue().splitlines()) == 5                 # 4 table lines, the long line unwrapped
    assert "│" in terminal.getvalue() and path not in terminal.getvalue()   # today's boxed table, folded
