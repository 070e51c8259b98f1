"""The records a run holds out are the same everywhere: the generation probe answers exactly the trainer's
held-out records (after data.exclude), and `nlirg eval RUN` reads the run's data.eval with its own columns."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import TINY, make_config, nlirg_cli, write_alpaca
from trainer_core.evaluate.probe import held_out_items
from trainer_core.train.data.prepare import prepare_data


def test_the_probe_answers_exactly_the_records_the_trainer_holds_out(tmp_path, tiny_tokenizer):
    data = write_alpaca(tmp_path / "train.jsonl", n=24)
    (tmp_path / "drop.txt").write_text("".join(f"{data}:{line}\n" for line in (1, 2, 3, 9)), encoding="utf-8")
    cfg = make_config([*TINY, f"data.train={data}", "data.eval_fraction=0.25", f"data.exclude={tmp_path / 'drop.txt'}",
                       f"data.cache_dir={tmp_path / 'cache'}", "training.seed=3"])
    held = prepare_data(cfg, tiny_tokenizer).eval
    trainer = {(o["source"], o["line"]) for o in map(held.origin, range(len(held)))}
    probe = {(item.source, item.line) for item in held_out_items(cfg)}
    assert len(trainer) == 5 and probe == trainer  # 25% of the 20 records left after the exclusion
    assert not {line for _, line in probe} & {1, 2, 3, 9}


def test_nlirg_eval_reads_a_runs_data_eval_with_its_columns(tiny_lora_run, tmp_path):
    run_dir, held = tiny_lora_run
    out = tmp_path / "eval.json"
    proc = nlirg_cli("eval", str(run_dir), "--out", str(out), "--max-new-tokens", "4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["sets"] == {"domain": [str(held)], "general": []}
    rows = [json.loads(line) for line in Path(held).read_text(encoding="utf-8").splitlines()]
    assert [g["prompt"] for g in result["generations"]] == [r["ask"] for r in rows]
    assert [g["references"] for g in result["generations"]] == [[r["reference"]] for r in rows]
    assert result["settings"]["domain"] == [{"path": str(held), "columns": {"instruction": "ask",
                                                                             "output": "reply"}}]
