"""Evaluation sets (the shipped demo sets, references, bad files) and TARGET resolution; no model is loaded."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from tests.helpers import make_config, write_jsonl
from trainer_core.config import save_config
from trainer_core.data.files import builtin_data_path, read_records
from trainer_core.data.records import DataError
from trainer_core.evaluate.__main__ import _parser, eval_options
from trainer_core.evaluate.commands import prepare_eval
from trainer_core.evaluate.eval_data import (
    default_sets,
    held_out_items,
    limit,
    read_domain_set,
    read_eval_set,
    read_general_set,
    sets_digest,
)
from trainer_core.evaluate.metrics import contains_match, ngrams, parse_json_answer, units
from trainer_core.evaluate.options import EvalOptions
from trainer_core.evaluate.targets import TargetError, resolve_target


def test_demo_heldout_set():
    found = read_domain_set(["builtin:demo-heldout"])
    assert len(found.items) == 60 and not found.texts
    json_items = [i for i in found.items if parse_json_answer(i.references[0]) is not None]
    assert len(json_items) == 8
    chinese = [i for i in found.items if not i.prompt[-1]["content"].isascii()]
    assert 20 <= len(chinese) <= 40
    for item in found.items:  # every full answer holds its own short reference: the references are fair
        assert contains_match(item.messages[-1]["content"], item.references), item.where
        assert item.prompt[-1]["role"] == "user"


def _bigrams(record) -> set:
    u = units(record.messages[-2]["content"])
    return set(ngrams(u, 2)) or set(u)


def test_heldout_prompts_do_not_overlap_the_training_set():
    train = read_records(["builtin:demo"])
    held = read_records(["builtin:demo-heldout"])
    train_prompts = {tuple(units(r.messages[-2]["content"])) for r in train}
    train_grams = [_bigrams(r) for r in train]
    for rec in held:
        assert tuple(units(rec.messages[-2]["content"])) not in train_prompts, rec.where
        grams = _bigrams(rec)
        closest = max(len(grams & g) / len(grams | g) for g in train_grams)
        assert closest < 0.5, f"{rec.where} is close to a training prompt ({closest:.2f})"


def test_demo_general_sets():
    instruct = read_general_set(["builtin:general-instruct"])
    assert len(instruct.items) == 40 and not instruct.texts
    assert sum(not i.prompt[-1]["content"].isascii() for i in instruct.items) == 20
    assert sum(parse_json_answer(i.references[0]) is not None for i in instruct.items) == 6
    text = read_general_set(["builtin:general-text"])
    assert len(text.texts) == 24 and not text.items
    trained = {json.loads(line)["text"] for line in builtin_data_path("builtin:general").open(encoding="utf-8")}
    assert not trained & {t.text for t in text.texts}


@pytest.mark.parametrize("spec", ["builtin:demo-heldout", "builtin:general-instruct"])
def test_no_short_reference_is_given_away_by_its_prompt(spec):
    """An answer that repeats its question must not score: no (non-JSON) reference is found in its own prompt."""
    for item in read_eval_set([spec]).items:
        if parse_json_answer(item.references[0]) is None:
            prompt = " ".join(m["content"] for m in item.prompt)
            assert not contains_match(prompt, item.references), item.where


def test_demo_config_evaluates_on_the_demo_sets_by_default():
    domain, general = default_sets(make_config([]))
    assert domain == ["builtin:demo-heldout"] and general == ["builtin:general-instruct", "builtin:general-text"]
    own = make_config(["data.train=builtin:demo-chat", "data.eval=builtin:demo-chat"])
    assert default_sets(own) == ([], [])  # no set named: the run's held-out records (eval_data.held_out_items)
    assert {Path(i.source).name for i in held_out_items(own)} == {"chat.jsonl"}



def _finished_run(root: Path, overrides: list[str]) -> Path:
    """A run folder as a finished `nlirg train` leaves it, less the weights (resolving a TARGET loads none)."""
    run_dir = root / "mine-20260101-000000"
    (run_dir / "final").mkdir(parents=True)
    for name in ("config.json", "tokenizer_config.json"):
        (run_dir / "final" / name).write_text("{}", encoding="utf-8")
    save_config(make_config(overrides), run_dir / "config.yaml")
    return run_dir


def test_a_run_is_evaluated_on_its_own_held_out_set_not_the_demos(tmp_path):
    train = write_jsonl(tmp_path / "mine.jsonl", [{"instruction": "q", "output": "a"}])
    held = write_jsonl(tmp_path / "held.jsonl", [{"instruction": "q2", "output": "b", "reference": "b"}])
    run_dir = _finished_run(tmp_path / "runs", [f"data.train={train}", f"data.eval={held}"])
    train.unlink()  # the training data moved since: evaluation never reads it
    req = prepare_eval(str(run_dir), [], [], None, None, tmp_path / "runs")
    assert (req.domain, req.general) == ([], [])  # no set named: the run's held-out records, from its config
    assert [i.where for i in held_out_items(req.target.config)] == [f"{held}:1"]
    assert req.out == run_dir / "eval.json"


def test_references_default_to_the_last_answer_and_accept_lists(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"instruction": "q1", "output": "long answer", "reference": "short"},
        {"instruction": "q2", "output": "only answer"},
    ])
    chat = write_jsonl(tmp_path / "c.jsonl", [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                      {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}],
         "reference": ["d", "D!"]},
    ])
    items = read_domain_set([str(path), str(chat)]).items
    assert [i.references for i in items] == [["short"], ["only answer"], ["d", "D!"]]
    assert [m["content"] for m in items[2].prompt] == ["a", "b", "c"]  # up to the last assistant turn
    assert items[0].where == f"{path}:1"


@pytest.mark.parametrize("rows,message", [
    ([{"instruction": "q", "output": "a", "reference": 3}], ":1: 'reference' must be a non-empty string"),
    ([{"text": "plain"}], "plain-text record has no reference"),
])
def test_bad_domain_files_name_the_line(tmp_path, rows, message):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        read_domain_set([str(path)])


def test_empty_and_mixed_general_sets(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="holds no records"):
        read_general_set([str(empty)])
    text = write_jsonl(tmp_path / "t.jsonl", [{"text": "one"}, {"text": "two"}])
    qa = write_jsonl(tmp_path / "q.jsonl", [{"question": "q", "answer": "a"}])
    both = read_eval_set([str(text), str(qa)])
    assert len(both.texts) == 2 and len(both.items) == 1 and both.files == [str(text), str(qa)]


def test_targets_that_are_not_models(tmp_path):
    assert resolve_target("builtin:tiny").kind == "builtin"
    assert resolve_target("someone/some-model", tmp_path).kind == "hub"
    with pytest.raises(TargetError, match="unknown builtin"):
        resolve_target("builtin:huge")
    with pytest.raises(TargetError, match="not a run, checkpoint, model folder"):
        resolve_target("nothing-here", tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(TargetError, match="a file, not a model"):
        resolve_target(str(tmp_path / "notes.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TargetError, match="not a model"):
        resolve_target(str(tmp_path / "empty"))


def test_limit_spreads_the_items_over_the_set():
    assert limit(list(range(10)), 3) == [0, 3, 6]
    assert limit(list(range(4)), 0) == [0, 1, 2, 3] and limit(list(range(4)), 9) == [0, 1, 2, 3]
    held = limit(read_domain_set(["builtin:demo-heldout"]).items, 20)
    assert any(parse_json_answer(i.references[0]) is not None for i in held)  # the JSON items at the end too
    assert any(not i.prompt[-1]["content"].isascii() for i in held)


def test_sets_digest_follows_what_the_sets_hold(tmp_path):
    path = tmp_path / "domain.jsonl"
    path.write_text(json.dumps({"instruction": "q", "output": "a", "reference": "a"}) + "\n", encoding="utf-8")
    first = sets_digest([str(path)])
    path.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")  # rewritten, same bytes
    assert sets_digest([str(path)]) == first
    path.write_text(json.dumps({"instruction": "q", "output": "a", "reference": "b"}) + "\n", encoding="utf-8")
    assert sets_digest([str(path)]) != first
    assert sets_digest(["builtin:demo-heldout"]) == sets_digest(["builtin:demo-heldout"]) != first
    assert sets_digest(["builtin:demo-heldout", "builtin:general-text"]) != sets_digest(["builtin:demo-heldout"])


def test_a_set_given_as_a_source_mapping_keeps_its_columns(tmp_path):
    held = write_jsonl(tmp_path / "held.jsonl", [{"ask": "q", "reply": "a b", "reference": "b"}])
    mapping = json.dumps({"path": str(held), "columns": {"instruction": "ask", "output": "reply"}})
    req = prepare_eval("builtin:tiny", [mapping], [], None, tmp_path / "e.json", tmp_path)
    assert req.domain == [json.loads(mapping)]
    assert [i.references for i in read_domain_set(req.domain).items] == [["b"]]
    with pytest.raises(DataError, match="needs a string 'path'"):
        prepare_eval("builtin:tiny", ['{"columns": {}}'], [], None, tmp_path / "e.json", tmp_path)
    with pytest.raises(DataError, match="cannot tell the format"):
        read_domain_set([str(held)])  # without its columns the file is no known format


def test_every_eval_option_reaches_the_evaluator_and_its_comparison(tmp_path):
    """One list of settings: a field added to EvalOptions travels to the evaluator process and into the settings
    an experiment compares before it reuses an eval.json (this test needs a value for it, too)."""
    held = write_jsonl(tmp_path / "held.jsonl", [{"ask": "q", "reply": "a"}])
    given = {"domain": [str(held), {"path": str(held), "columns": {"instruction": "ask", "output": "reply"}}],
             "general": ["builtin:general-text"], "base": "builtin:tiny", "max_new_tokens": 7, "batch_size": 3,
             "limit": 5, "base_result": "base/eval.json", "max_length": 77, "system_prompt": "Be brief.",
                 "labels": ["yes", "no"]}
    assert set(given) == {f.name for f in fields(EvalOptions)}
    assert all(value != asdict(EvalOptions())[key] for key, value in given.items())
    opts = EvalOptions(**given)
    command = opts.command("runs/x", tmp_path / "eval.json")
    assert eval_options(_parser().parse_args(command[3:])) == opts
    assert set(opts.settings()) == set(given) - {"base_result"} | {"sets_digest"}
