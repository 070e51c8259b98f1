"""Corpus scoring on builtin:tiny with planted faults: loss and entropy of the same position, every row paired with
its own record, worst first, one-token and empty answers defined and flagged, bad input as one line and exit 2.
Each test pins one of the reference implementation's bugs or a promise of docs/score.md."""

from __future__ import annotations

import io
import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.helpers import nlirg_cli, write_alpaca
from tests.score_helpers import SCORE_MAX_LENGTH, read_rows
from trainer_core.data.files import read_records
from trainer_core.data.records import Record
from trainer_core.score.__main__ import main as score_main
from trainer_core.score.encode import encode_records
from trainer_core.score.forward import token_signals
from trainer_core.score.modes import MODES, SUSPECT, divergence, similarity_score, spans, zscore
from trainer_core.score.options import ScoreOptions
from trainer_core.score.quality import band_counts, qualities
from trainer_core.score.run import run
from trainer_core.score.scoring import score_samples
from trainer_core.train.data.batch import IGNORE, collate
from trainer_core.train.loss.step import token_losses


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)


def test_loss_and_entropy_are_of_the_same_predicted_token(tiny_model_fn, tiny_tokenizer):
    """The reference took the entropy of the next position; a sharpened head makes any shift visible."""
    model = tiny_model_fn()
    head = model.get_output_embeddings()  # untied from the input embeddings, then sharpened: the entropies
    head.weight = torch.nn.Parameter(head.weight.detach() * 8.0)  # now differ by whole nats between positions
    records = [Record("x", 1, [{"role": "user", "content": "What is 3 plus 3?"},
                               {"role": "assistant", "content": "The answer is 6, and 答案是6。"}]),
               Record("x", 2, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}])]
    items = encode_records(tiny_tokenizer, records, 512, with_bare=False)
    batch = collate([it.sample() for it in items], tiny_tokenizer.pad_token_id)  # row 2 is padded
    rows = token_signals(model, batch)
    shifted_matches = 0
    for r, (item, sig) in enumerate(zip(items, rows, strict=True)):
        ids = torch.tensor([item.input_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0]
        targets = [t for t in range(1, len(item.labels)) if item.labels[t] != IGNORE]
        assert sig.positions == targets
        expect_loss = torch.nn.functional.cross_entropy(logits[[t - 1 for t in targets]], ids[0, targets],
                                                        reduction="none")
        expect_entropy = _entropy(logits[[t - 1 for t in targets]])
        assert np.allclose(sig.losses, expect_loss.numpy(), atol=1e-4), f"row {r}"
        assert np.allclose(sig.entropies, expect_entropy.numpy(), atol=1e-4), f"row {r}"
        shifted = _entropy(logits[[min(t, len(item.input_ids) - 1) for t in targets]]).numpy()
        shifted_matches += int(np.allclose(sig.entropies, shifted, atol=1e-4))
    assert shifted_matches == 0  # the shift would be caught


def test_scoring_takes_the_trainers_targets_and_losses_planned_on_the_host(tiny_model_fn, tiny_tokenizer):
    """The scorer's positions and losses are the trainer's (`step.token_losses`), with or without entropy, and its
    targets come from the labels' host copy: the device labels (here on the meta device, which holds no values)
    are never read, so no `nonzero` waits for a GPU."""
    model = tiny_model_fn()
    records = read_records(["builtin:demo"])[:3]
    batch = collate([it.sample() for it in encode_records(tiny_tokenizer, records, 96, with_bare=False)],
                    tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        trainer = token_losses(model, batch)
    on_device = replace(batch, labels=batch.labels.to("meta"), host_labels=batch.labels)
    for with_entropy in (True, False):
        rows = token_signals(model, on_device, with_entropy)
        assert [p for sig in rows for p in sig.positions] == trainer.positions.tolist()
        got = torch.tensor([x for sig in rows for x in sig.losses])
        assert torch.allclose(got, trainer.losses, atol=1e-5)


def test_score_file_rows_carry_the_entropy_of_their_loss_position(tiny_scores, tiny_model_fn, tiny_tokenizer):
    data, scores, lines, _ = tiny_scores
    row = next(r for r in read_rows(scores) if r["source"].endswith(f":{lines['garbled']}"))
    record = read_records([str(data)], allow_empty_answer=True)[lines["garbled"] - 1]
    item = encode_records(tiny_tokenizer, [record], SCORE_MAX_LENGTH, False)[0]
    with torch.no_grad():
        logits = tiny_model_fn()(input_ids=torch.tensor([item.input_ids])).logits[0]
    for t, (loss, entropy) in enumerate(zip(row["losses"], row["entropies"], strict=True)):
        if loss is None:
            assert item.labels[t] == IGNORE or t == 0  # prompt tokens are never scored
            continue
        assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits[t - 1], torch.tensor(
            item.input_ids[t]))), abs=1e-3)
        assert entropy == pytest.approx(float(_entropy(logits[t - 1])), abs=1e-3)


def test_every_row_describes_and_scores_its_own_record(tiny_scores, tiny_model_fn, tiny_tokenizer):
    """The reference zipped records sorted by score with scores in input order: every row here is re-derived."""
    data, scores, lines, _ = tiny_scores
    rows = read_rows(scores)
    records = read_records([str(data)], allow_empty_answer=True)
    assert sorted(r["index"] for r in rows) == list(range(len(records)))  # every record, once
    items = encode_records(tiny_tokenizer, records, SCORE_MAX_LENGTH, False)
    alone = {}
    model = tiny_model_fn()
    for it in items:  # each record scored by itself: no batch, no padding, no sorting
        alone.update(score_samples(model, [it.sample()], tiny_tokenizer.pad_token_id, 1, True, torch.float32))
    for row in rows:
        item = items[row["index"]]
        assert row["source"] == f"{data.resolve()}:{item.record.line}"
        assert "".join(row["tokens"]) == tiny_tokenizer.decode(item.input_ids)
        if item.answer_tokens:
            assert np.allclose([x for x in row["losses"] if x is not None], alone[item.index].losses, atol=1e-3)
    garbled = next(r for r in rows if r["index"] == lines["garbled"] - 1)
    assert "zq#@" in "".join(garbled["tokens"])
    assert next(r for r in rows if r["index"] == lines["with_id"] - 1)["id"] == "rec-7"


def test_rows_are_sorted_worst_first_with_quality_in_step(tiny_scores):
    """The reference sorted the opposite way of its --desc flag: here the first row is the worst, always."""
    _, scores, _, stdout = tiny_scores
    rows = read_rows(scores)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert [r["quality"] for r in rows] == sorted(r["quality"] for r in rows)
    assert all(0.0 <= r["quality"] <= 1.0 for r in rows)
    assert rows[0]["quality"] < rows[-1]["quality"]
    summary = json.loads(scores.with_name("scores.summary.json").read_text())
    assert sum(summary["bands"].values()) == len(rows) == summary["records"]
    assert summary["mode"] == "ifd"  # the default for prompt/answer data: it found the most planted records
    assert "quality bands:" in stdout and "0.8-1.0" in stdout


def test_truncated_answers_are_cut_counted_and_flagged(tiny_scores):
    _, scores, lines, stdout = tiny_scores
    rows = {r["index"] + 1: r for r in read_rows(scores)}
    assert "truncated" in rows[lines["long"]]["flags"]
    assert len(rows[lines["long"]]["tokens"]) == SCORE_MAX_LENGTH
    assert sum("truncated" in r["flags"] for r in rows.values()) == 1
    assert "truncated: 1" in stdout


@pytest.mark.parametrize("mode", MODES)
def test_one_token_and_empty_answers_get_a_score_and_a_flag(tiny_scores, tmp_path, mode, capsys, tiny_model_fn,
                                                           tiny_tokenizer):
    """The reference gave NaN for one-token answers: every mode here gives a number and a flag."""
    data, _, lines, _ = tiny_scores
    out = tmp_path / f"{mode}.jsonl"
    run(ScoreOptions(data=[str(data)], model="builtin:tiny", out=out, mode=mode, max_length=SCORE_MAX_LENGTH))
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    rows = {r["index"] + 1: r for r in read_rows(out)}
    assert all(math.isfinite(r["score"]) and math.isfinite(r["quality"]) for r in rows.values())
    assert {"empty_answer", "short_answer"} <= set(rows[lines["empty"]]["flags"])
    assert "short_answer" in rows[lines["one_token"]]["flags"]
    assert rows[lines["empty"]]["answer_tokens"] == 0  # the end-of-turn token alone, structural: not scored
    assert rows[lines["empty"]]["structural_tokens"] == 1 and "no_answer_tokens" not in rows[lines["empty"]]["flags"]
    if mode == "ifd":  # the answer's mean loss after its prompt / after an empty prompt, the latter by hand
        garbled = rows[lines["garbled"]]
        record = read_records([str(data)], allow_empty_answer=True)[lines["garbled"] - 1]
        bare = encode_records(tiny_tokenizer, [record], SCORE_MAX_LENGTH, with_bare=True)[0].bare
        ids = torch.tensor([bare.input_ids])
        with torch.no_grad():
            logits = tiny_model_fn()(input_ids=ids).logits[0]
        special = set(tiny_tokenizer.all_special_ids)  # structural tokens leave the score
        targets = [t for t in range(1, len(bare.labels))
                   if bare.labels[t] != IGNORE and bare.input_ids[t] not in special]
        bare_loss = torch.nn.functional.cross_entropy(logits[[t - 1 for t in targets]], ids[0, targets]).item()
        assert garbled["score"] == pytest.approx(garbled["mean_loss"] / bare_loss, rel=1e-3)
    assert "scored 17 records" in capsys.readouterr().out


def test_statistics_of_short_sequences_are_defined():
    assert zscore(np.array([3.0])).tolist() == [0.0]
    assert zscore(np.array([2.0, 2.0, 2.0])).tolist() == [0.0, 0.0, 0.0]
    assert similarity_score(np.array([5.0]), np.array([1.0])) == 0.0
    div = divergence(np.array([]), np.array([]))
    assert div.labels == [] and spans(div) == []


def test_a_planted_label_error_is_labelled_and_spanned():
    """One token with a high loss where the model was sure: the textbook label error."""
    loss = np.array([1.0, 1.2, 0.9, 1.1, 9.0, 9.5, 1.0, 1.1, 0.8, 1.0, 1.2, 0.9])
    entropy = np.array([2.0, 2.1, 1.9, 2.0, 0.1, 0.1, 2.0, 2.1, 1.9, 2.0, 2.2, 1.8])
    div = divergence(loss, entropy)
    assert div.labels[4] == SUSPECT and div.labels[5] == SUSPECT
    found = spans(div)
    assert found and found[0].start <= 4 < found[0].end and found[0].pattern == SUSPECT
    assert similarity_score(loss, entropy) > 0.5  # loss and entropy move against each other


def test_quality_is_monotone_and_banded():
    scores = [0.1, 0.2, 0.15, 0.12, 3.0, 0.18, 0.11]
    q = qualities(scores)
    assert all((a - b) * (qa - qb) <= 0 for a, qa in zip(scores, q, strict=True) for b, qb in zip(scores, q,
                                                                                                   strict=True))
    assert q[4] < 0.2 < min(q[:4])
    assert band_counts(q)["0.0-0.2"] == 1
    assert qualities([0.5, 0.5, 0.5]) == pytest.approx([qualities([0.5])[0]] * 3)


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok", "output": "fine"}\nnot json\n')
    proc = nlirg_cli("score", str(bad), "--model", "builtin:tiny", "--out", str(tmp_path / "o.jsonl"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "bad.jsonl:2: not valid JSON" in proc.stderr and not (tmp_path / "o.jsonl").exists()
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(bad, folder / "a.jsonl")
    proc = nlirg_cli("score", str(folder), "--model", "builtin:tiny", "--out", str(folder / "s.jsonl"), cwd=tmp_path)
    assert proc.returncode == 2 and "lies inside the input" in proc.stderr
    plain = tmp_path / "no-template"
    shutil.copytree(tiny_path, plain)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    good = tmp_path / "good.jsonl"
    good.write_text('{"instruction": "ok", "output": "fine"}\n')
    proc = nlirg_cli("score", str(good), "--model", str(plain), "--out", str(tmp_path / "o.jsonl"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "good.jsonl:1: the tokenizer has no chat template" in proc.stderr
    proc = nlirg_cli("score", str(good), "--model", "builtin:tiny", "--out", str(tmp_path / "o.jsonl"), "--dtype",
                     "fp99", cwd=tmp_path)  # `nlirg score` passes --dtype on, where it is checked
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --dtype: 'fp99' is not one of auto, fp32, bf16, fp16"


@pytest.mark.slow
def test_num_procs_splits_the_records_and_merges_them_back(tiny_scores, tmp_path, capsys, monkeypatch):
    """Several chunks over two processes, started once: the same two processes score every chunk (each loads
    the model once), and the rows equal one process's."""
    from trainer_core.score import run as score_run
    from trainer_core.score.parallel import ScorePool

    pools: list[ScorePool] = []

    class Watched(ScorePool):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(score_run, "ScorePool", Watched)
    data, scores, _, _ = tiny_scores
    out = tmp_path / "two.jsonl"
    run(ScoreOptions(data=[str(data)], model="builtin:tiny", out=out, max_length=SCORE_MAX_LENGTH, num_procs=2,
                     chunk=3))  # 3 records per process per chunk: several chunks
    one, two = read_rows(scores), read_rows(out)
    assert len(one) > 2 * 3 * 2  # more than two chunks
    assert [r["source"] for r in one] == [r["source"] for r in two]
    assert np.allclose([r["score"] for r in one], [r["score"] for r in two], atol=1e-3)
    (pool,) = pools
    assert len(pool.pids) == 2 and not any(proc.is_alive() for proc in pool.procs)


def test_a_lora_runs_final_model_scores_with_its_adapter_merged(tiny_lora_run, tmp_path):
    """docs/score.md's own example: `--model runs/my-run/final`, a folder with an adapter and no config.json."""
    run_dir, _ = tiny_lora_run
    data = write_alpaca(tmp_path / "train.jsonl", n=6)  # the records the run trained on
    proc = nlirg_cli("score", str(data), "--model", str(run_dir / "final"), "--out", str(tmp_path / "lora.jsonl"),
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run(ScoreOptions(data=[str(data)], model="builtin:tiny", out=tmp_path / "base.jsonl"), stream=io.StringIO())
    lora, base = (sorted(read_rows(tmp_path / f"{name}.jsonl"), key=lambda r: r["index"]) for name in ("lora", "base"))
    assert len(lora) == 6 and all(a["mean_loss"] < b["mean_loss"] for a, b in zip(lora, base, strict=True))


def test_a_data_error_is_reported_before_any_weights_are_read(tmp_path, tiny_path, capsys):
    """The weights of `broken` cannot be read (cut short), its tokenizer can: the data's problem must be the error."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_path, broken)
    (broken / "model.safetensors").write_bytes((broken / "model.safetensors").read_bytes()[:5000])
    data = tmp_path / "text.jsonl"
    data.write_text(json.dumps({"text": "plain text has no prompt to leave out"}) + "\n", encoding="utf-8")
    args = [str(data), "--model", str(broken), "--out", str(tmp_path / "s.jsonl")]
    assert score_main([*args, "--mode", "ifd"]) == 2  # ifd needs a prompt: the error names the modes that do not
    assert "text.jsonl:1: mode ifd needs prompt/answer records" in (err := capsys.readouterr().err)
    assert "score plain text with --mode auto, divergence" in err and err.count("\n") == 1
    # the default (auto) scores plain text with divergence, says so, and only then reads the weights, whose
    # failure is one line
    assert score_main(args) == 2
    err = capsys.readouterr().err
    assert "--mode auto: " in err and "text.jsonl:1 is plain text, so every record is scored with divergence" in err
    assert err.count("\n") == 2 and "cannot load folder" in err and "deserializing header" in err


def test_structural_tokens_leave_the_smoothing_and_the_score_and_ties_are_ordered():
    """An end-of-turn token at loss 20 after a clean answer: with it, its smoothed loss spills onto the answer's
    last tokens (a `label_error` on a token the model got right); without it, the answer is flat and scores 0."""
    from types import SimpleNamespace

    from trainer_core.score.encode import ScoreItem
    from trainer_core.score.forward import RowSignals
    from trainer_core.score.output import make_summary, rank_rows
    from trainer_core.score.report import build_row

    end = 2
    ids = [5, 6, 7, 8, 9, 10, 11, 12, end]
    item = ScoreItem(0, SimpleNamespace(id=None, source="x.jsonl", line=1), ids, [IGNORE] * 3 + ids[3:], False, False)
    sig = RowSignals(list(range(3, 9)), [0.2, 0.3, 0.2, 0.25, 0.001, 20.0], [1.0, 1.1, 0.9, 1.0, 0.004, 0.5])
    texts = [str(i) for i in ids]
    old = build_row(item, sig, None, "divergence", texts)
    new = build_row(item, sig, None, "divergence", texts, frozenset({end}))
    assert "label_error" in old["flags"] and old["score"] > 0 and old["labels"][7] is not None
    assert new["flags"] == [] and new["labels"][7] is None and new["answer_tokens"] == 5
    assert new["structural_tokens"] == 1 and new["losses"][8] == 20.0  # still shown, never scored
    rows = [{"score": 0.0, "mean_loss": loss, "index": i, "flags": [], "answer_tokens": 1}
            for i, loss in enumerate([0.5, 2.0, 1.0])] + [{"score": 1.0, "mean_loss": 0.1, "index": 3, "flags": [],
                                                          "answer_tokens": 1}]
    ranked = rank_rows(rows)
    assert [r["index"] for r in ranked] == [3, 1, 2, 0]  # equal scores: the higher mean loss first
    assert make_summary(ranked, 4, {})["tied"] == 3
