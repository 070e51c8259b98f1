"""Data formats, label masking token by token, CPT packing isolation, padding invariance."""


import pytest
import torch

from tests.helpers import write_jsonl
from trainer_core.data.files import read_records
from trainer_core.data.records import DataError, Record
from trainer_core.train.data.batch import IGNORE, Sample, build_samples, collate, encode_chat, pack_documents
from trainer_core.train.loss.step import token_losses


def test_formats_are_detected_per_file(tmp_path):
    files = [
        write_jsonl(tmp_path / "a.jsonl", [{"instruction": "hi", "input": "x", "output": "yo", "system": "S"}]),
        write_jsonl(tmp_path / "m.jsonl", [{"messages": [{"role": "user", "content": "q"},
                                                    {"role": "assistant", "content": "a"}]}]),
        write_jsonl(tmp_path / "s.jsonl", [{"conversations": [{"from": "human", "value": "q"},
                                                         {"from": "gpt", "value": "a"}]}]),
        write_jsonl(tmp_path / "p.jsonl", [{"prompt": "p", "response": "r"}]),
        write_jsonl(tmp_path / "q.jsonl", [{"question": "q", "answer": "a"}]),
    ]
    recs = read_records([str(f) for f in files])
    assert recs[0].messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "hi\n\nx"},
                                {"role": "assistant", "content": "yo"}]
    assert recs[1].messages[1] == {"role": "assistant", "content": "a"}
    assert recs[2].messages[0] == {"role": "user", "content": "q"}
    assert recs[3].messages[-1]["content"] == "r"
    assert recs[4].messages[-1]["content"] == "a"
    text = read_records([str(write_jsonl(tmp_path / "t.jsonl", [{"text": "doc"}]))])
    assert text[0].text == "doc"


def test_alpaca_history_becomes_earlier_turns(tmp_path):
    f = write_jsonl(tmp_path / "h.jsonl", [{"instruction": "q2", "output": "a2", "history": [["q1", "a1"]]}])
    msgs = read_records([str(f)])[0].messages
    assert [m["content"] for m in msgs] == ["q1", "a1", "q2", "a2"]


@pytest.mark.parametrize("line,expect", [
    ('{"instruction": "x"}', "a.jsonl:2: cannot tell the format"),
    ('{"instruction": "x", "output": 3}', "a.jsonl:2: 'output' must be a string"),
    ('not json at all', "a.jsonl:2: not valid JSON"),
    ('{"instruction": "x", "output": ""}', "a.jsonl:2: no non-empty assistant answer"),
])
def test_malformed_record_names_file_and_line(tmp_path, line, expect):
    f = tmp_path / "a.jsonl"
    f.write_text('{"instruction": "ok", "output": "fine"}\n' + line + "\n")
    with pytest.raises(DataError) as err:
        read_records([str(f)], fmt="alpaca" if "cannot tell" not in expect else "auto")
    msg = str(err.value)
    if "cannot tell" in expect:  # auto-detect uses the first line, so line 2 fails as alpaca
        assert "a.jsonl:2" in msg and "missing key 'output'" in msg
    else:
        assert expect in msg


def test_unknown_role_is_reported(tmp_path):
    f = write_jsonl(tmp_path / "m.jsonl", [{"messages": [{"role": "wizard", "content": "q"}]}])
    with pytest.raises(DataError, match=r"m.jsonl:1: message 0 has unknown role 'wizard'"):
        read_records([str(f)])


def test_multi_turn_labels_cover_every_assistant_turn_token_by_token(tiny_tokenizer):
    tok = tiny_tokenizer
    msgs = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi there"}, {"role": "user", "content": "And 你好?"},
            {"role": "assistant", "content": "你好 too"}]
    ids, labels = encode_chat(tok, msgs, 10_000, "x")
    assert ids == tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=False, return_dict=False)
    targets = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE])
    assert targets == "Hi there<|im_end|>你好 too<|im_end|>"
    # token by token: every labelled token is exactly its input token, all others are IGNORE
    spans = []
    for i, (tid, lab) in enumerate(zip(ids, labels, strict=True)):
        assert lab in (IGNORE, tid)
        if lab != IGNORE and (i == 0 or labels[i - 1] == IGNORE):
            spans.append(i)
    assert len(spans) == 2  # two assistant turns, two separate labelled spans
    # the role headers (system, 2 user, 2 assistant) and the newline after each <|im_end|> are not labelled
    assert tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab == IGNORE]).count("<|im_start|>") == 5


def test_per_sample_system_prompt_reaches_the_tokens(tiny_tokenizer, tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "q", "output": "a", "system": "SYSTEM-X"},
                                      {"instruction": "q", "output": "a"}])
    recs = read_records([str(f)])
    samples, _ = build_samples(tiny_tokenizer, recs, "sft", 512)
    assert "SYSTEM-X" in tiny_tokenizer.decode(samples[0].input_ids)
    assert "SYSTEM-X" not in tiny_tokenizer.decode(samples[1].input_ids)


def test_packing_never_attends_across_documents_or_padding(tiny_tokenizer, tiny_model_fn):
    model = tiny_model_fn()
    doc_a = tiny_tokenizer("Alpha document about thermostats.")["input_ids"]
    doc_b1 = tiny_tokenizer("Bravo text one")["input_ids"]
    doc_b2 = tiny_tokenizer("Completely different second document, longer than the first one")["input_ids"]

    def logits_of(docs, width):
        rows = pack_documents([(i, d) for i, d in enumerate(docs)], width)
        batch = collate(rows, pad_id=tiny_tokenizer.pad_token_id)
        with torch.no_grad():
            return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         position_ids=batch.position_ids).logits

    la = logits_of([doc_a, doc_b1], 200)[0, : len(doc_a)]
    lb = logits_of([doc_a, doc_b2], 200)[0, : len(doc_a)]
    alone = logits_of([doc_a], 200)[0, : len(doc_a)]
    assert torch.allclose(la, lb, atol=1e-5)
    assert torch.allclose(la, alone, atol=1e-5)
    # document B alone equals document B after A: positions restart, nothing leaks from A
    after_a = logits_of([doc_a, doc_b1], 200)[0, len(doc_a): len(doc_a) + len(doc_b1)]
    b_alone = logits_of([doc_b1], 200)[0, : len(doc_b1)]
    assert torch.allclose(after_a, b_alone, atol=1e-5)


def test_packed_labels_do_not_cross_documents():
    rows = pack_documents([(0, [5, 6, 7]), (1, [8, 9])], 10)
    assert len(rows) == 1
    assert rows[0].labels == [IGNORE, 6, 7, IGNORE, 9]  # a segment's first token is never predicted
    assert rows[0].segments == [0, 0, 0, 1, 1]


def test_padding_does_not_change_any_token_loss(tiny_tokenizer, tiny_model_fn):
    """batch_size > 1 with padding gives the same per-token losses as one sample at a time."""
    model = tiny_model_fn()
    recs = [Record("x", 1, messages=[{"role": "user", "content": "short"},
                                      {"role": "assistant", "content": "ok"}]),
            Record("x", 2, messages=[{"role": "user", "content": "a much longer question with many words in it"},
                                      {"role": "assistant", "content": "and a longer answer as well, friend"}])]
    samples, _ = build_samples(tiny_tokenizer, recs, "sft", 512)
    pad = tiny_tokenizer.pad_token_id
    with torch.no_grad():
        both = token_losses(model, collate(samples, pad)).losses
        one = torch.cat([token_losses(model, collate([s], pad)).losses for s in samples])
    assert torch.allclose(both, one, atol=1e-5)


def test_truncated_samples_are_counted(tiny_tokenizer):
    rec = Record("x", 1, messages=[{"role": "user", "content": "q " * 50}, {"role": "assistant", "content": "a b"}])
    samples, truncated = build_samples(tiny_tokenizer, [rec, rec], "sft", 16)
    assert truncated == 2 and samples == []  # the answer was cut away: nothing to train, nothing crashes


def test_sample_target_count():
    assert Sample([1, 2, 3, 4], [IGNORE, IGNORE, 3, 4], 0).target_count == 2
