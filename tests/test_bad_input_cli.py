"""Bad input that used to end in a traceback: one line naming the file or key, exit code 2, no run directory
left behind (issue 15, item 7). The real `nlirg train` on builtin:tiny; each case stops before training."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import TINY, nlirg_cli, set_args, write_alpaca

pytestmark = pytest.mark.slow


def _train(tmp_path, *sets: str, env: dict | None = None):
    data = tmp_path / "good.jsonl"
    if not data.exists():
        write_alpaca(data, n=8)
    return nlirg_cli("train", *set_args([*TINY, f"data.train={data}", *sets]), "--max-steps", "1", cwd=tmp_path,
                     env=env)


def _one_line_error(res, *words: str) -> str:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:") or line.startswith("  - ")]
    assert errors, res.stderr
    assert all(w in "\n".join(errors) for w in words), res.stderr
    return res.stderr


def test_a_binary_file_named_jsonl_is_one_line(tmp_path):
    binary = tmp_path / "data.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)  # an image under a data file's name
    res = _train(tmp_path, f"data.train={binary}")
    _one_line_error(res, str(binary), "not UTF-8")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("override", ["training.lr=nan", "training.lr=.inf", "nlirg.k=1e309",
                                      "training.betas=[0.9, .nan]"])
def test_a_non_finite_number_is_refused_naming_its_key(tmp_path, override):
    key = override.split("=")[0]
    res = _train(tmp_path, override)
    _one_line_error(res, key, "not a finite number")
    assert not (tmp_path / "runs").exists()


def test_a_model_folder_without_config_json_names_the_file(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}")
    res = _train(tmp_path, f"model.path={folder}")
    _one_line_error(res, str(folder), "config.json")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_an_unknown_hub_id_offline_fails_fast(tmp_path):
    """No network and no HF_HUB_OFFLINE: the old path retried for 48 s and printed 24 lines."""
    env = {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there: no network
    res = _train(tmp_path, "model.path=nlirg-test/no-such-model", env=env)
    _one_line_error(res, "nlirg-test/no-such-model", "not in the Hugging Face cache", "cannot be reached")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_workbench_refuses_the_same_model_folder_before_a_run_directory(tmp_path):
    """The workbench's launch (Runs screen, relaunch) checks model.path the same way: LaunchError, no run dir."""
    from nlirg_tui.launching import LaunchError, launch_config_file

    folder = tmp_path / "model"
    folder.mkdir()
    data = write_alpaca(tmp_path / "d.jsonl", n=8)
    config = tmp_path / "run.yaml"
    config.write_text(f"model:\n  path: {folder}\ndata:\n  train: {data}\n")
    with pytest.raises(LaunchError, match="config.json"):
        launch_config_file(config, tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_review_of_a_parquet_data_file_is_one_line(tmp_path):
    """A data file instead of its score file (its bytes are not UTF-8 text past the first line)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "train.parquet"
    pq.write_table(pa.table({"instruction": ["q"] * 50, "output": ["é"] * 50}), data)
    _one_line_error(nlirg_cli("review", str(data), cwd=tmp_path), f"{data}:1: not valid JSON", "give a score file")


def test_a_cached_hub_id_without_network_switches_this_process_offline(tmp_path):
    """huggingface_hub reads HF_HUB_OFFLINE once, at its import: the check must set it before that import, or a
    trainer started without the CLI (which exports it) would still wait on retries."""
    snapshot = tmp_path / "hub" / "models--nlirg-test--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    code = ("from trainer_core.config.model_source import check_model_source; check_model_source('nlirg-test/cached');"
            "from huggingface_hub import constants; print(constants.is_offline_mode())")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HUB_CACHE=str(tmp_path / "hub"), HF_ENDPOINT="http://127.0.0.1:9")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"


def test_a_config_with_several_problems_is_one_block_in_ab_as_in_train(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  path: builtin:tiny\ndata:\n  train: missing.jsonl\ntraining:\n  lrr: 1\n")
    blocks = {}
    for command in ("train", "ab"):
        res = nlirg_cli(command, str(config), cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        blocks[command] = res.stderr.strip()
    assert blocks["ab"] == blocks["train"]
    assert blocks["ab"].splitlines() == [
        f"error: {config}: 2 problems",
        "  - training.lrr: unknown key (did you mean 'training.lr'?)",
        f"  - data.train: file '{tmp_path / 'missing.jsonl'}' not found"]


def test_max_steps_zero_is_refused_and_says_what_to_do(tmp_path):
    """Issue 25: `--max-steps 0` started a 72-step run (0 is the config's `train for training.epochs`)."""
    data = write_alpaca(tmp_path / "good.jsonl", n=8)
    res = nlirg_cli("train", *set_args([*TINY, f"data.train={data}"]), "--max-steps", "0", cwd=tmp_path)
    _one_line_error(res, "--max-steps 0: give a number of optimizer steps >= 1", "training.epochs")
    assert not (tmp_path / "runs").exists()
