"""`nlirg ab` end to end on builtin:tiny: paired seeds, an interrupted experiment continued with the same command,
report.json / report.md against the runs' own eval.json, `nlirg runs` grouping, and a second runner refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.helpers import nlirg_cli
from trainer_core.evaluate.commands import experiment_complete
from trainer_core.evaluate.experiment import EXPERIMENT_FILE
from trainer_core.evaluate.report import METRIC_KEYS
from trainer_core.evaluate.runner import ExperimentRunner, experiment_lock
from trainer_core.live.events import read_events
from trainer_core.live.rundir import read_json

pytestmark = pytest.mark.slow

ARMS = ("plain", "nlirg")


def _config(run_dir) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))


def test_every_arm_is_the_same_config_but_the_weighting_and_seeds_pair(tiny_experiment):
    exp = tiny_experiment
    for i in range(2):
        configs = {arm: _config(exp.run_dir(f"{arm}-r{i}")) for arm in ARMS}
        for arm, cfg in configs.items():
            assert cfg["training"]["seed"] == 42 + i and cfg["nlirg"]["weighting"] == arm
        plain, nlirg = configs["plain"], configs["nlirg"]
        for cfg in (plain, nlirg):
            cfg["nlirg"].pop("weighting")
            cfg["output"].pop("name")
        assert plain == nlirg
    first_loss = {name: next(e["loss"] for e in read_events(exp.run_dir(name) / "events.jsonl")
                             if e["type"] == "step" and e["step"] == 1)
                  for name in ("plain-r0", "nlirg-r0", "plain-r1", "nlirg-r1")}
    # Same seed: the same first batch on the same weights, whatever the weighting; another seed: another batch.
    assert first_loss["plain-r0"] == first_loss["nlirg-r0"]
    assert first_loss["plain-r1"] == first_loss["nlirg-r1"]
    assert first_loss["plain-r0"] != first_loss["plain-r1"]


def test_an_interrupted_experiment_continues_where_it_stopped(tiny_experiment):
    exp = tiny_experiment
    assert exp.first_code == 130, exp.first_output
    assert "run the same command again to continue" in exp.first_output
    before = exp.at_interrupt
    assert before["plain-r0"]["eval"] is not None  # finished and evaluated before the Ctrl+C
    assert before["nlirg-r0"]["trainer"]["status"] == "stopped" and before["nlirg-r0"]["checkpoints"]
    assert exp.second_code == 0, exp.second_output
    out = exp.second_output
    assert "plain-r0 (seed 42): trained already; reused" in out and "plain-r0: evaluated already; reused" in out
    assert "base model builtin:tiny: evaluated already; reused" in out
    assert f"nlirg-r0 (seed 42): continuing from {before['nlirg-r0']['checkpoints'][-1]}" in out
    # The finished run was not touched: same start time, the same eval.json byte for byte.
    assert read_json(exp.run_dir("plain-r0") / "trainer.json")["started"] == before["plain-r0"]["trainer"]["started"]
    assert (exp.run_dir("plain-r0") / "eval.json").read_bytes() == before["plain-r0"]["eval"]
    # The resumed run went on from its checkpoint to the end, in one run directory.
    steps = sorted({e["step"] for e in read_events(exp.run_dir("nlirg-r0") / "events.jsonl") if e["type"] == "step"})
    assert steps == list(range(1, 21))
    assert read_json(exp.run_dir("nlirg-r0") / "summary.json")["status"] == "completed"


def test_report_matches_the_runs_evaluations(tiny_experiment):
    exp = tiny_experiment
    report = read_json(exp.exp_dir / "report.json")
    spec = read_json(exp.exp_dir / EXPERIMENT_FILE)
    assert report["complete"] and report["evaluated"] == report["planned"] == 4
    assert report["seeds"] == [42, 43] and report["command"].startswith("nlirg ab ") and spec["key"]
    for arm in ARMS:
        cell = report["arms"][arm]
        assert cell["runs"] == [str(exp.run_dir(f"{arm}-r{i}")) for i in range(2)]
        for key in ("eval_loss", "general_ppl", "repetition_3gram", "json_valid_rate", "loss_fluctuation"):
            assert set(cell[key]) >= {"mean", "std", "values"}
        values = [read_json(exp.run_dir(f"{arm}-r{i}") / "eval.json")["metrics"]["eval_loss"] for i in range(2)]
        assert cell["eval_loss"]["values"] == values
        assert cell["eval_loss"]["mean"] == pytest.approx(sum(values) / 2)
        assert cell["loss_fluctuation"]["mean"] is not None and cell["general_ppl_ratio"]["mean"] is not None
    diff = report["differences"]["nlirg"]["eval_loss"]
    assert diff["method"] == "welch" and diff["diff"] == pytest.approx(
        report["arms"]["nlirg"]["eval_loss"]["mean"] - report["arms"]["plain"]["eval_loss"]["mean"])
    assert set(report["differences"]["nlirg"]) == set(METRIC_KEYS)
    base, run = read_json(exp.exp_dir / "base" / "eval.json"), read_json(exp.run_dir("plain-r0") / "eval.json")
    assert base["settings"]["max_length"] == run["settings"]["max_length"] == 96  # the runs' length, not 1024
    assert run["metrics"]["base_general_ppl"] == base["metrics"]["general_ppl"]  # reused, not recomputed
    text = (exp.exp_dir / "report.md").read_text(encoding="utf-8")
    assert "| eval_loss | lower |" in text and "nlirg − plain (Welch 95% CI)" in text
    assert "nlirg − plain paired (95% CI)" in text  # the paired interval, which decides the *
    assert not list(exp.exp_dir.glob(".*.tmp-*"))  # atomic writes leave no temp files


def test_runs_groups_the_experiment_and_a_finished_one_is_not_rerun(tiny_experiment):
    exp = tiny_experiment
    listed = nlirg_cli("runs", "--root", str(exp.work / "runs"), cwd=exp.work)
    lines = listed.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith(f"EXPERIMENT {exp.exp_dir.name}"))
    assert "complete, 4/4 runs evaluated" in lines[head]
    assert [line.split()[0] for line in lines[head + 1:head + 5]] == ["plain-r0", "nlirg-r0", "plain-r1", "nlirg-r1"]
    again = nlirg_cli(*exp.args, cwd=exp.work)
    assert again.returncode == 0 and "| eval_loss |" in again.stdout and "is complete; --new" in again.stderr
    assert len(list((exp.work / "runs").glob("*/experiment.json"))) == 1


def test_a_second_runner_on_the_same_experiment_is_refused(tiny_experiment):
    with experiment_lock(tiny_experiment.exp_dir):
        proc = subprocess.run([sys.executable, "-m", "trainer_core.evaluate", "ab", str(tiny_experiment.exp_dir)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "already being run by another nlirg ab" in proc.stderr


def test_report_json_is_strict_json(tiny_experiment):
    """No NaN or Infinity (json.loads takes them; a strict reader does not), no torn file."""
    def refuse(constant: str) -> None:
        raise AssertionError(f"report.json holds {constant}")

    report = json.loads((tiny_experiment.exp_dir / "report.json").read_text(encoding="utf-8"), parse_constant=refuse)
    assert report["complete"] and report["evaluated"] == report["planned"] == 4


def test_an_evaluation_is_reused_only_while_its_sets_are_unchanged(tiny_experiment):
    exp = tiny_experiment
    runner = ExperimentRunner(exp.exp_dir, lambda _: None)
    assert len(list(exp.exp_dir.glob("*/eval.json"))) == 5  # the base model and four runs
    assert runner.evaluations_current() and experiment_complete(exp.exp_dir)  # the evaluator's digest is ours
    domain = exp.work / "domain.jsonl"
    saved = domain.read_bytes()
    try:
        domain.write_bytes(saved.replace(b'"reference": "6"', b'"reference": "six"'))  # a reference fixed in place
        assert not runner.evaluations_current() and not experiment_complete(exp.exp_dir)
    finally:
        domain.write_bytes(saved)
    assert runner.evaluations_current()
