"""`--root` means one thing everywhere, and a config's relative paths are read from the config's own folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, nlirg_cli, write_alpaca
from trainer_core.config import build_config
from trainer_core.live.rundir import write_json_atomic


def _fake_run(root: Path, name: str) -> Path:
    run = root / name
    run.mkdir(parents=True)
    write_json_atomic(run / "trainer.json", {"name": name.split("-")[0], "status": "completed", "pid": None})
    return run


def _config(folder: Path) -> Path:
    """conf/tiny.yaml naming data/d.jsonl next to it, as a user keeps a project's files together."""
    (folder / "data").mkdir(parents=True)
    write_alpaca(folder / "data" / "d.jsonl")
    cfg = folder / "tiny.yaml"
    cfg.write_text("model: {path: builtin:tiny}\ndata: {train: data/d.jsonl}\nlora: {enabled: false}\n"
                   "training: {batch_size: 2, save_every: 0}\n")
    return cfg


@pytest.mark.parametrize("where", ["before", "after"])
def test_root_lists_the_same_runs_before_or_after_the_command(tmp_path, where):
    _fake_run(tmp_path / "elsewhere", "alpha-20260101-000000")
    args = ["--root", str(tmp_path / "elsewhere"), "runs"] if where == "before" else [
        "runs", "--root", str(tmp_path / "elsewhere")]
    res = nlirg_cli(*args, cwd=tmp_path)
    assert res.returncode == 0 and "alpha-20260101-000000" in res.stdout, res.stderr


def test_relative_paths_in_a_config_are_read_from_its_folder(tmp_path, monkeypatch):
    conf = tmp_path / "project"
    cfg_file = _config(conf)
    (conf / "ds.json").write_text("{}")
    text = yaml.safe_load(cfg_file.read_text())
    text["distributed"] = {"deepspeed_config": "ds.json"}
    text["data"]["eval"] = ["builtin:demo"]
    cfg_file.write_text(yaml.safe_dump(text))
    monkeypatch.chdir(tmp_path)  # the shell is elsewhere
    cfg = build_config(cfg_file.relative_to(tmp_path))
    assert cfg.data.train == [str(conf / "data" / "d.jsonl")]
    assert cfg.data.eval == ["builtin:demo"] and cfg.model.path == "builtin:tiny"
    assert cfg.distributed.deepspeed_config == str(conf / "ds.json")
    (conf / "skip.txt").write_text("")
    text.update(eval={"domain": ["data/d.jsonl"], "general": ["builtin:general-text"]})
    text["data"]["exclude"] = "skip.txt"
    cfg_file.write_text(yaml.safe_dump(text))
    cfg = build_config(cfg_file.relative_to(tmp_path))  # data.exclude was 'not found' from the shell's folder
    assert cfg.data.exclude == str(conf / "skip.txt")
    assert cfg.eval.domain == [str(conf / "data" / "d.jsonl")] and cfg.eval.general == ["builtin:general-text"]
    hub = build_config(cfg_file, ["model.path=Qwen/Qwen2.5-0.5B"])  # a hub id is no path
    assert hub.model.path == "Qwen/Qwen2.5-0.5B"


@pytest.mark.slow
def test_train_from_another_folder_uses_the_config_folder_and_root_and_prints_a_working_attach(tmp_path):
    cfg = _config(tmp_path / "project")
    shell = tmp_path / "shell"
    shell.mkdir()
    res = nlirg_cli("--root", str(tmp_path / "store"), "train", str(cfg), "--max-steps", "1", "--detach", cwd=shell)
    assert res.returncode == 0, res.stderr
    run = Path(res.stdout.strip().splitlines()[-1])
    assert run.parent == tmp_path / "store" and not (shell / "runs").exists()
    assert f"nlirg attach {run}" in res.stdout  # a full path: works from any folder
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["data"]["train"] == [str(tmp_path / "project" / "data" / "d.jsonl")]
    assert (run / "flagged.jsonl").is_file()  # exists from the start, empty until a sample is flagged
    hint = res.stdout.split("follow it with: ")[1].splitlines()[0].split()
    other = tmp_path / "third"
    other.mkdir()
    streamed = nlirg_cli(*hint[1:], "--stream", cwd=other)  # `nlirg attach RUN`, as printed, from elsewhere
    assert streamed.returncode == 0 and streamed.stdout.rstrip().splitlines()[-1].startswith("end completed")


@pytest.mark.slow
@pytest.mark.skipif(Path(sys.executable).parent != REPO / ".venv" / "bin", reason="./run uses the repo's .venv")
def test_the_run_script_trains_a_config_given_relative_to_the_shell(tmp_path):
    _config(tmp_path / "project")
    res = subprocess.run([str(REPO / "run"), "train", "project/tiny.yaml", "--max-steps", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    run = next((tmp_path / "runs").glob("tiny-*"))
    assert json.loads((run / "summary.json").read_text())["steps"] == 1
