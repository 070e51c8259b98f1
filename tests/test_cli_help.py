"""The CLI's help says what the CLI does (flags as flags, repeatable --set, bare `nlirg`, --root everywhere)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from nlirg_tui.cli import app

COMMANDS = ["train", "demo", "runs", "attach", "stop", "pause", "resume", "save", "set", "eval", "ab", "serve",
            "export"]


def _help(*args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    return res.output


def test_top_level_help_says_a_bare_nlirg_opens_the_workbench():
    text = _help()
    assert "`nlirg` alone opens the workbench" in text
    assert all(re.search(rf"^\s+{c}\s", text, re.M) for c in COMMANDS)


def test_flags_show_as_flags_and_set_says_it_repeats():
    text = _help("train")
    assert re.search(r"-d, --detach\s+Run in the background", text)
    assert "<bool>" not in text  # a flag takes no value
    assert "--set KEY=VALUE" in text and "repeat it for more (--set a=1 --set b=2)" in text
    assert "run name `train`" in text  # how a run without a config is named (README, output.name)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_root(command):
    assert "--root DIR" in _help(command)


def test_stop_documents_no_wait():
    assert "--no-wait" in _help("stop")
