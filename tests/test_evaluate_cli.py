"""`nlirg eval` and `nlirg ab` from the real console script: bad input is one line and exit 2 with nothing written;
a good `nlirg eval` writes eval.json and prints its table; a run still training offers its latest checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import TINY, nlirg_cli, write_alpaca
from trainer_core.live.processes import pid_alive
from trainer_core.live.rundir import checkpoint_dirs

DOMAIN = [{"instruction": "What is 3 plus 3?", "output": "The answer is 6.", "reference": "6"},
          {"instruction": "Return JSON.", "output": "{\"a\": 1}"}]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_eval_bad_input(tmp_path, tiny_path):
    text = _jsonl(tmp_path / "text.jsonl", [{"text": "no answer here"}])
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_path, corrupt)
    (corrupt / "model.safetensors").write_bytes((corrupt / "model.safetensors").read_bytes()[:5000])  # cut short
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    domain = _jsonl(tmp_path / "domain.jsonl", DOMAIN)
    (tmp_path / "folder").mkdir()
    cases = [
        (["eval", "no-such-model"], ["not a run, checkpoint, model folder, hub id or builtin"]),
        (["eval", str(tmp_path / "folder"), "--domain", str(domain)], ["not a model"]),
        (["eval", "builtin:tiny", "--domain", str(text)], ["text.jsonl:1", "no reference answer"]),
        (["eval", "builtin:tiny", "--domain", str(domain), "--general", str(empty)], ["empty.jsonl", "no records"]),
        (["eval", "builtin:tiny"], ["nothing to evaluate on"]),
        (["eval", str(corrupt), "--domain", str(domain)], ["cannot load folder", "deserializing header"]),
        (["eval", "builtin:tiny", "--domain", str(domain), "--out", str(tmp_path / "no" / "e.json")],
         ["does not exist"]),
    ]
    for args, needles in cases:
        _one_line_error(nlirg_cli(*args, cwd=tmp_path), *needles)
    assert not list(tmp_path.glob("eval*.json"))


def test_ab_bad_input_writes_nothing(tmp_path):
    root = tmp_path / "runs"
    text = _jsonl(tmp_path / "text.jsonl", [{"text": "no answer here"}])
    base = ["ab", "--set", f"output.root={root}", "--set", "model.path=builtin:tiny"]
    _one_line_error(nlirg_cli(*base, "--arms", "plain,foo", cwd=tmp_path), "foo is not an arm")
    _one_line_error(nlirg_cli(*base, "--arms", "plain", cwd=tmp_path), "two or more different arms")
    _one_line_error(nlirg_cli(*base, "--repeats", "0", cwd=tmp_path), "--repeats 0")
    _one_line_error(nlirg_cli(*base, "--limit", "-1", cwd=tmp_path), "--limit -1")
    _one_line_error(nlirg_cli(*base, "--domain", str(text), cwd=tmp_path), "no reference answer")
    bad_key = nlirg_cli(*base, "--set", "training.lrr=1", cwd=tmp_path)  # a config's problems: one block, as train
    assert bad_key.returncode == 2
    assert bad_key.stderr.strip().splitlines()[1:] == ["  - training.lrr: unknown key (did you mean 'training.lr'?)"]
    assert not root.exists()


@pytest.mark.slow
def test_eval_writes_eval_json_and_offers_a_checkpoint_of_a_live_run(tmp_path):
    data = write_alpaca(tmp_path / "train.jsonl")
    domain = _jsonl(tmp_path / "domain.jsonl", DOMAIN)
    sets = [f"--set={s}" for s in (*TINY, f"data.train={data}", "training.save_every=2",
                                   "training.max_steps=100000", f"output.root={tmp_path / 'runs'}")]
    started = nlirg_cli("train", *sets, "--detach", cwd=tmp_path)
    run_dir = Path(started.stdout.strip().splitlines()[-1])
    try:
        deadline = time.monotonic() + 180
        while not checkpoint_dirs(run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        live = nlirg_cli("eval", str(run_dir), "--domain", str(domain), cwd=tmp_path)
        _one_line_error(live, "is still training", "nlirg eval ", "checkpoints/step-")
        assert not (run_dir / "eval.json").exists()
        scored = nlirg_cli("score", str(data), "--model", str(run_dir), "--out", str(tmp_path / "s.jsonl"),
                           cwd=tmp_path)  # the same offer, in the words of `nlirg score`
        _one_line_error(scored, "is still training", "score with its newest checkpoint: --model ", "checkpoints/step-")
        assert not (tmp_path / "s.jsonl").exists()
    finally:
        nlirg_cli("stop", str(run_dir), cwd=tmp_path)
    out = tmp_path / "tiny-eval.json"
    good = nlirg_cli("eval", "builtin:tiny", "--domain", str(domain), "--out", str(out), "--max-new-tokens", "4",
                     cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["counts"]["domain_items"] == 2 and result["metrics"]["eval_loss"] > 0
    assert "eval_loss" in good.stdout and f"written to {out}" in good.stdout


@pytest.mark.slow
def test_ab_detach_runs_in_the_background_and_stops_on_sigterm(tmp_path):
    data = write_alpaca(tmp_path / "train.jsonl")
    domain = _jsonl(tmp_path / "domain.jsonl", DOMAIN)
    sets = [f"--set={s}" for s in (*TINY, f"data.train={data}", f"output.root={tmp_path / 'runs'}")]
    started = nlirg_cli("ab", *sets, "--max-steps", "100000", "--repeats", "1", "--domain", str(domain), "--detach",
                        cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    exp_dir = Path(started.stdout.strip().splitlines()[-1])
    pid = int(started.stdout.split("(pid ")[1].split(")")[0])
    log = exp_dir / "experiment.log"
    deadline = time.monotonic() + 300
    while "plain-r0 (seed 42): training" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the detached experiment never started its first run"
        time.sleep(0.2)
    os.kill(pid, signal.SIGTERM)
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    text = log.read_text()
    assert "SIGTERM: stopping the current run with a checkpoint" in text and "interrupted:" in text
    assert (exp_dir / "plain-r0" / "trainer.json").is_file() and (exp_dir / "report.json").is_file()
