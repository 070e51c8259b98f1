"""`nlirg train` end to end: the real console script, a real trainer subprocess, the run directory contract."""

import json
import time
from pathlib import Path

import pytest

from tests.helpers import TINY, nlirg_cli, write_alpaca
from trainer_core.live.events import read_events

pytestmark = pytest.mark.slow


def _sets(args):
    return [x for a in args for x in ("--set", a)]


def test_train_writes_the_run_directory(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    cfg = tmp_path / "myrun.yaml"
    cfg.write_text(f"model:\n  path: builtin:tiny\ndata:\n  train: {data}\nlora:\n  enabled: false\n"
                   "training:\n  batch_size: 2\n  save_every: 2\n")
    res = nlirg_cli("train", str(cfg), "--max-steps", "4", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("myrun-")
    run = runs[0]
    for name in ("config.yaml", "trainer.json", "events.jsonl", "trainer.log", "summary.json", "tb", "final",
                 "checkpoints/step-4"):
        assert (run / name).exists(), name
    ckpt = run / "checkpoints" / "step-4"
    for name in ("model", "optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json"):
        assert (ckpt / name).exists(), name
    trainer = json.loads((run / "trainer.json").read_text())
    assert trainer["status"] == "completed" and trainer["pid"] > 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 4
    assert "step 4/4" in res.stderr  # the progress display (plain lines when not on a terminal)


def test_resume_through_the_cli_matches_a_straight_run(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    args = _sets([*TINY, f"data.train={data}", "training.scheduler=constant"])
    assert nlirg_cli("train", *args, "--max-steps", "6", "--set", "output.name=straight", cwd=tmp_path).returncode == 0
    assert nlirg_cli("train", *args, "--max-steps", "3", "--set", "output.name=part", cwd=tmp_path).returncode == 0
    part = next((tmp_path / "runs").glob("part-*"))
    res = nlirg_cli("train", "--resume", str(part), "--max-steps", "6", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    straight = next((tmp_path / "runs").glob("straight-*"))
    a = [e["loss"] for e in read_events(straight / "events.jsonl") if e["type"] == "step"]
    b = [e["loss"] for e in read_events(part / "events.jsonl") if e["type"] == "step"]
    assert len(b) == 6
    assert b == pytest.approx(a, abs=1e-6)


def test_malformed_data_line_is_one_clear_error(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q", "output": "a"\n')
    res = nlirg_cli("train", *_sets([*TINY, f"data.train={data}"]), "--max-steps", "2", cwd=tmp_path)
    assert res.returncode == 2
    assert f"{data}:2: not valid JSON" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()  # checked before the run directory is made: nothing left behind


def test_data_cache_lists_and_clears_entries_with_their_sizes(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    cache = tmp_path / "cache"
    env = {"NLIRG_DATA_CACHE": str(cache)}
    res = nlirg_cli("train", *_sets([*TINY, f"data.train={data}"]), "--max-steps", "1", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    listing = nlirg_cli("data", "cache", cwd=tmp_path, env=env)
    lines = listing.stdout.splitlines()
    assert listing.returncode == 0 and lines[-1].startswith("2 entries") and str(cache) in lines[-1]
    tokens = next(line for line in lines if line.startswith("tokens-"))
    assert "KiB" in tokens and "24 train rows from 24 records" in tokens
    records = next(line.split()[0] for line in lines if line.startswith("records-"))
    cleared = nlirg_cli("data", "cache", "--clear", records, cwd=tmp_path, env=env)
    assert cleared.returncode == 0 and cleared.stdout.startswith("removed 1 entry")
    assert not (cache / records).exists() and len(list(cache.glob("tokens-*"))) == 1
    assert nlirg_cli("data", "cache", "--clear", "nope", cwd=tmp_path, env=env).returncode == 2
    assert nlirg_cli("data", "cache", "--clear", cwd=tmp_path, env=env).stdout.startswith("removed 1 entry")
    assert "no cached data" in nlirg_cli("data", "cache", cwd=tmp_path, env=env).stdout


def test_missing_model_is_one_clear_error_and_nlirg_runs_says_why_a_detached_run_failed(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    args = ["--set", "model.path=nobody/no-such-model-xyz", "--set", f"data.train={data}", "--max-steps", "1"]
    for detach in ([], ["--detach"]):  # checked before a run directory exists, detached or not
        res = nlirg_cli("train", *args, *detach, cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
        assert res.returncode == 2
        assert "model.path" in res.stderr and "Traceback" not in res.stderr
        assert not (tmp_path / "runs").exists()  # the error is on the terminal; no debris
    broken = tmp_path / "broken-model"  # passes the launcher's check (config.json is there), fails to load
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    args[1] = f"model.path={broken}"
    detached = nlirg_cli("train", *args, "--detach", cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    run = Path(detached.stdout.strip().splitlines()[-1])  # kept: a detached user learns why from `nlirg runs`
    deadline = time.monotonic() + 120
    while json.loads((run / "trainer.json").read_text())["status"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.2)
    listed = nlirg_cli("runs", cwd=tmp_path).stdout.splitlines()
    assert listed[1].split()[:2] == [run.name, "failed"]
    assert listed[2].startswith("  └ model.path: cannot load") and str(broken) in listed[2]
