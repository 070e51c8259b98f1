"""`nlirg check`: the first hour's dry run. The real CLI on builtin:tiny: no weights, no run directory."""

from __future__ import annotations

import json

import pytest

from tests.helpers import TINY, nlirg_cli, set_args, write_alpaca

pytestmark = pytest.mark.slow


def test_check_reports_data_model_and_plan_and_makes_no_run(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl", n=20)
    exclude = tmp_path / "exclude.txt"
    exclude.write_text(f"{data}:1\n{data}:2\n{data}:99\n")
    sets = [*TINY, f"data.train={data}", "data.eval_fraction=0.2", "data.max_length=40", f"data.exclude={exclude}",
            f"data.cache_dir={tmp_path / 'cache'}"]
    res = nlirg_cli("check", *set_args(sets), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "model: qwen2, 2 layers, hidden 64" in out and "chat template present" in out
    assert f"data.train {data} (format auto): 14 records ->" in out  # 20 - 2 excluded - 4 held out
    assert "truncated at data.max_length 40" in out
    assert "data.exclude: excluded 2 records" in out and "named no record" in out  # line 99: a warning
    assert "plan: " in out
    assert out.strip().endswith("no run directory made)")
    assert not (tmp_path / "runs").exists()


def test_check_exits_2_naming_each_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n{not json\n")
    res = nlirg_cli("check", *set_args([*TINY, f"data.train={bad}", f"data.cache_dir={tmp_path / 'cache'}"]),
                    cwd=tmp_path)
    assert res.returncode == 2
    assert "error: 1 problem would stop this run" in res.stderr and f"{bad}:2" in res.stderr
    (tmp_path / "model").mkdir()  # a folder, but no model in it
    missing = nlirg_cli("check", *set_args([*TINY, f"model.path={tmp_path / 'model'}", f"data.train={bad}"]),
                        cwd=tmp_path)
    assert missing.returncode == 2 and "has no config.json" in missing.stderr
    config = nlirg_cli("check", "--set", "training.lrr=1", cwd=tmp_path)
    assert config.returncode == 2 and "training.lrr: unknown key" in config.stderr
