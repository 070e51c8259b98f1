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
    assert result["settings"]["domain"] == []  # no set named: the run's held-out records, read from its config


def test_eval_and_ab_score_a_runs_held_out_records_after_its_exclusions(tiny_lora_run, tmp_path):
    """eval.domain empty: `nlirg eval RUN` and `nlirg ab` read the records the trainer held out (data.eval, else
    the data.eval_fraction split) with data.exclude applied; a moved exclude file is one line."""
    import shutil

    from trainer_core.config import save_config
    from trainer_core.data.records import DataError
    from trainer_core.evaluate.commands import prepare_eval, prepare_experiment
    from trainer_core.evaluate.eval_data import held_out_items
    from trainer_core.evaluate.evaluator import read_sets
    from trainer_core.evaluate.options import EvalOptions
    from trainer_core.evaluate.targets import TargetError

    run_dir, _ = tiny_lora_run
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"instruction": f"{i} + {i}?", "output": str(2 * i)}) + "\n"
                            for i in range(3)), encoding="utf-8")
    copy = tmp_path / "runs" / "held-20260101-000000"
    shutil.copytree(run_dir / "final", copy / "final")
    data = write_alpaca(tmp_path / "train.jsonl", n=24)
    drop = tmp_path / "drop.txt"
    drop.write_text("".join(f"{data}:{line}\n" for line in range(1, 25, 2)) + f"{held}:2\n", encoding="utf-8")
    for overrides, lines in (([f"data.train={data}", "data.eval_fraction=0.5"], None),
                             ([f"data.train={data}", f"data.eval={held}"], {1, 3})):
        cfg = make_config([*TINY, *overrides, f"data.exclude={drop}", "lora.enabled=true"])
        save_config(cfg, copy / "config.yaml")
        req = prepare_eval(str(copy), [], [], None, None, tmp_path / "runs")
        domain, _ = read_sets(req.target, EvalOptions().resolved(req.target))
        got = [(item.source, item.line) for item in domain.items]
        assert req.domain == [] and got == [(i.source, i.line) for i in held_out_items(cfg)] and got
        assert all(line % 2 == 0 for src, line in got if src == str(data))  # the odd lines are excluded
        if lines is not None:
            assert {line for _, line in got} == lines
        exp_dir, _ = prepare_experiment(cfg, "plain,nlirg", 1, [], [], None, "nlirg ab", "t", True)
        assert json.loads((exp_dir / "experiment.json").read_text())["domain"] == []
    drop.rename(tmp_path / "moved.txt")
    try:
        prepare_eval(str(copy), [], [], None, None, tmp_path / "runs")
    except (DataError, TargetError) as exc:
        assert "data.exclude" in str(exc) and str(drop) in str(exc)  # named (one problem, as nlirg train says it)
    else:
        raise AssertionError("a moved exclude file must be refused")
