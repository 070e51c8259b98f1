"""The CLI's help says what the CLI does (flags as flags, repeatable --set, bare `nlirg`, --root everywhere)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from nlirg_tui.cli import app

COMMANDS = ["train", "demo", "review", "runs", "attach", "stop", "pause", "resume", "save", "set", "eval", "ab",
            "serve", "export", "plan", "chat"]


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


@pytest.mark.parametrize("where", ["before", "after"])
def test_review_looks_for_its_run_under_root_before_or_after_the_command(tmp_path, where):
    """`--root` means the same folder for every command: review ignored `nlirg --root DIR review RUN`."""
    (tmp_path / "runs-here").mkdir()
    root = ["--root", str(tmp_path / "runs-here")]
    args = [*root, "review", "no-such-run"] if where == "before" else ["review", "no-such-run", *root]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 2
    assert f"no run of that name under {tmp_path / 'runs-here'}" in res.output


def test_score_options_are_one_list_from_the_cli_to_the_scoring_process(tmp_path):
    """Every ScoreOptions field is a flag of `nlirg score` and reaches `python -m trainer_core.score` unchanged."""
    from dataclasses import fields

    from trainer_core.score.__main__ import parse_args
    from trainer_core.score.options import ScoreOptions, flag

    text = _help("score")
    assert all(flag(f.name) in text for f in fields(ScoreOptions)[1:])
    opts = ScoreOptions(data=["a.jsonl", "b/"], model="builtin:tiny", out=tmp_path / "s.jsonl", mode="ifd", top=3,
                        max_length=64, num_procs=2, batch_size=4, format="alpaca", system_prompt="Be brief.",
                        dtype="fp32")
    assert parse_args(opts.argv()) == opts
