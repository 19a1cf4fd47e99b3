"""The command line: help, version, bad subcommands and user errors print one clear line."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from semguard import __version__
from semguard.cli import COMMAND_GROUPS, build_parser, main


def test_help_lists_every_group(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for group in COMMAND_GROUPS:
        assert group in out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_bad_subcommand_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "invalid choice: 'bogus'" in err and len(err.splitlines()) <= 2


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "semguard.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "semguard" in result.stdout


def test_top_level_help_version_and_errors_leave_torch_out():
    # a fresh interpreter: this one may hold torch from other tests
    code = ("import sys\n"
            "from semguard.cli import main\n"
            "for argv in (['--help'], ['--version'], ['bogus'], ['--bogus'], []):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "heavy = [name for name in ('torch', 'torchvision', 'torchmetrics') if name in sys.modules]\n"
            "print('heavy modules:', heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "heavy modules: []"


def test_group_summaries_are_what_their_modules_register():
    """`semguard --help` lists cli.py's summaries without importing the modules; they must agree."""
    for name, group in COMMAND_GROUPS.items():
        parser = build_parser(name)
        subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        registered = {choice.dest: choice.help for choice in subparsers._choices_actions}
        assert registered[name] == group.summary, name


def test_bad_config_gives_one_line_not_a_traceback(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  stpes: 3\n")
    result = subprocess.run([sys.executable, "-m", "semguard.cli", "train", "--config", str(config)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "train.stpes" in result.stderr


@pytest.mark.parametrize("argv", [
    ["train", "--config", "configs/toy.yaml"],
    ["segmenter", "train", "--role", "guide", "--data", "nowhere", "--out", "x.pt"],
    ["translate", "--checkpoint", "x.pt", "--input", "nowhere", "--out", "out"],
    ["detector", "train", "--data", "nowhere", "--out", "x.pt"],
])
def test_every_computing_command_takes_a_thread_count_and_refuses_a_bad_one(argv, capsys):
    """--threads N (0: torch's own choice) is checked first and named; a good one reaches torch."""
    import torch

    assert main([*argv, "--threads", "-1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--threads" in error[0]
    before = torch.get_num_threads()
    try:
        assert main([*argv, "--threads", "1"]) == 2   # gets past the thread count, then stops at the missing files
        assert torch.get_num_threads() == 1 and "--threads" not in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
