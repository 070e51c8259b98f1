"""Hostile inputs met in one line (issue 24, "One line, not a traceback"): a huge record, deep nesting, packing
rows of one token, a max_length beyond the model's context."""

from __future__ import annotations

import random

import pytest

from tests.helpers import nlirg_cli
from trainer_core.config import ConfigError, build_config
from trainer_core.train.data.tokenize import Renderer, encode_chats, tokenize_batch, truncate_spans


def _words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "x1", "42,"]) for _ in range(n))


def test_a_huge_answer_is_cut_before_it_is_tokenized(tiny_tokenizer):
    """A multi-megabyte answer: only what max_length tokens can hold is tokenized, and the row is what the whole
    answer gives, cut to max_length."""
    answer = _words(400_000)  # ~2.6 MB; every word a token or two
    batch = {"messages": [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": answer}]],
             "text": [None], "file": [0], "line": [1]}
    out = tokenize_batch(batch, [0], tokenizer=tiny_tokenizer, kind="sft", max_length=256, source=0,
                         file_names=["big.jsonl"])
    assert len(out["input_ids"][0]) == 256
    assert out["read_tokens"][0] < 20_000  # the uncut answer is ~600k tokens
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": answer[:100_000]}]
    (ids, spans), = encode_chats(tiny_tokenizer, Renderer(tiny_tokenizer), [conversation], ["big.jsonl:1"])
    assert len(ids) > 10 * out["read_tokens"][0]  # the whole (well, 100k characters of it) tokenized
    assert ids[:256] == out["input_ids"][0] and truncate_spans(spans, 256) == out["spans"][0]


def test_packing_rows_of_one_token_is_a_config_error():
    with pytest.raises(ConfigError, match="data.pack_length: 1 must be 0"):
        build_config(None, ["model.path=builtin:tiny", "data.train=builtin:demo", "training.type=cpt",
                            "data.pack_length=1"])


def test_a_config_nested_hundreds_deep_is_one_line_exit_2(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("model:\n  path: builtin:tiny\ndata:\n  train: " + "[" * 600 + "]" * 600 + "\n")
    res = nlirg_cli("train", str(deep), "--root", str(tmp_path / "runs"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "nested too deeply" in res.stderr and "Traceback" not in res.stderr and len(res.stderr) < 300
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="nested too deeply"):
        build_config(None, ["data.train=" + "{a: " * 600 + "1" + "}" * 600])


def test_max_length_beyond_the_models_context_is_capped_with_a_warning(tiny_path):
    from trainer_core.train.model.context import fit_to_context, model_context

    context = model_context(tiny_path)
    assert isinstance(context, int) and context > 96
    cfg = build_config(None, ["model.path=builtin:tiny", "data.train=builtin:demo", f"data.max_length={context * 8}"])
    warnings = fit_to_context(cfg, context)
    assert cfg.data.max_length == context
    assert warnings == [f"data.max_length: {context * 8} is above the model's context ({context} tokens); "
                        f"using {context}"]
    assert fit_to_context(cfg, context) == []
