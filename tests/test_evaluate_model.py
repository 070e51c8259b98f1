"""The model side of evaluation on builtin:tiny: batched greedy generation, eval loss and perplexity against
hand computations, `nlirg eval`'s evaluator on a run and a checkpoint, and generation metrics during training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import TINY, make_config, train_in_process, write_alpaca, write_jsonl
from trainer_core.config import NlirgParams, save_config
from trainer_core.data.files import read_records
from trainer_core.evaluate import metrics as m
from trainer_core.evaluate.eval_data import read_domain_set, read_general_set
from trainer_core.evaluate.evaluator import EvalOptions, evaluate
from trainer_core.evaluate.generate import _answers, greedy_answers, left_pad
from trainer_core.evaluate.losses import domain_losses, text_perplexity
from trainer_core.evaluate.targets import resolve_target
from trainer_core.live import protocol
from trainer_core.live.events import read_events
from trainer_core.train.data.batch import IGNORE, build_samples
from trainer_core.train.loss.weights import nlirg_weights
from trainer_core.train.prompts import stop_token_ids

DOMAIN = [
    {"instruction": "What is 3 plus 3?", "output": "The answer is 6.", "reference": "6"},
    {"instruction": "What is 10 plus 10? Answer in a full sentence, please.", "output": "The answer is 20."},
    {"instruction": "Return JSON.", "output": "{\"a\": 1}"},
    {"instruction": "十加十等于多少？", "output": "答案是20。", "reference": ["20", "二十"]},
]


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("sets")
    return {"domain": str(write_jsonl(d / "domain.jsonl", DOMAIN)),
            "text": str(write_jsonl(d / "text.jsonl", [{"text": "The quick brown fox jumps over the lazy dog."},
                                                   {"text": "欢迎来到客服中心。请告诉我们您的订单号。"}])),
            "instruct": str(write_jsonl(d / "instruct.jsonl", [{"question": "Capital of France?", "answer": "Paris"}]))}


@pytest.fixture(scope="module")
def probed_lora_run(tmp_path_factory, sets) -> Path:
    """A tiny LoRA run with checkpoints and generation metrics (eval.domain) every 2 steps, for this module."""
    d = tmp_path_factory.mktemp("lora")
    data = write_alpaca(d / "train.jsonl")
    run_dir = d / "run"
    overrides = [*TINY, "lora.enabled=true", f"data.train={data}", f"eval.domain={sets['domain']}",
                 "training.max_steps=4", "training.save_every=2", "training.save_total_limit=0",
                 "eval.generate_every=2", "eval.max_new_tokens=6", "training.eval_at_start=false"]
    _, status = train_in_process(run_dir, overrides)
    assert status == "completed"
    save_config(make_config(overrides), run_dir / "config.yaml")  # what `nlirg train` writes first
    return run_dir


@pytest.fixture
def varied_model(tiny_model_fn):
    """The tiny model with scrambled weights: its greedy answers differ from prompt to prompt."""
    model = tiny_model_fn()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def test_left_pad_aligns_the_last_tokens():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_batched_answers_equal_one_prompt_at_a_time(varied_model, tiny_tokenizer):
    prompts = [[{"role": "user", "content": text}] for text in
               ("Hi", "What is the status of my parcel, please tell me now?", "发烧怎么办？", "Reset password",
                "How long does the battery last when I use it all day long?")]
    batched = greedy_answers(varied_model, tiny_tokenizer, prompts, max_new_tokens=12, batch_size=3)
    stops = stop_token_ids(tiny_tokenizer)
    for prompt, answer in zip(prompts, batched.answers, strict=True):
        text = tiny_tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = torch.tensor([tiny_tokenizer(text, add_special_tokens=False)["input_ids"]])
        out = varied_model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=stops,
                                    pad_token_id=tiny_tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
        end = next((i for i, t in enumerate(out) if t in stops), len(out))
        expected = tiny_tokenizer.decode(out[:end], skip_special_tokens=True).strip()
        if end == len(out):  # cut by the length bound: a character cut in half is dropped (the next test)
            expected = expected.rstrip("\ufffd").rstrip()
        assert answer.text == expected
        assert answer.tokens == min(end + 1, len(out)) and answer.hit_limit == (end == len(out))
    assert len({a.text for a in batched.answers}) > 1  # the answers really differ: the comparison means something


def test_an_answer_cut_inside_a_character_drops_its_remains(tiny_tokenizer):
    ids = tiny_tokenizer("OK 北京", add_special_tokens=False)["input_ids"]
    assert "\ufffd" in tiny_tokenizer.decode(ids[:-1])  # the last character spans two byte-level tokens
    stop = tiny_tokenizer.eos_token_id
    (cut,) = _answers(tiny_tokenizer, torch.tensor([ids[:-1]]), {stop})
    (whole,) = _answers(tiny_tokenizer, torch.tensor([[*ids, stop]]), {stop})
    assert cut.text == "OK 北" and cut.hit_limit
    assert whole.text == "OK 北京" and not whole.hit_limit and whole.tokens == len(ids) + 1


def test_eval_loss_and_perplexity_by_hand(tiny_model_fn, tiny_tokenizer, sets):
    model = tiny_model_fn()
    items = read_domain_set([sets["domain"]]).items
    totals = domain_losses(model, tiny_tokenizer, items, NlirgParams(), max_length=96, batch_size=3)
    samples, _ = build_samples(tiny_tokenizer, read_records([sets["domain"]]), "sft", 96)
    losses = torch.cat([_token_losses(model, s.input_ids, s.labels) for s in samples])
    assert totals.tokens == losses.numel()
    assert totals.loss == pytest.approx(losses.mean().item(), rel=1e-5)
    w = nlirg_weights(losses)
    assert totals.weighted_loss == pytest.approx(((w * losses).sum() / (w > 0).sum()).item(), rel=1e-5)
    texts = read_general_set([sets["text"]]).texts
    ppl, tokens = text_perplexity(model, tiny_tokenizer, texts, max_length=96, batch_size=2)
    by_hand = []
    for t in texts:
        ids = tiny_tokenizer(t.text, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
        by_hand.append(_token_losses(model, ids, ids))
    assert tokens == sum(x.numel() for x in by_hand)
    assert ppl == pytest.approx(math.exp(torch.cat(by_hand).mean().item()), rel=1e-5)


def _token_losses(model, ids: list[int], labels: list[int]) -> torch.Tensor:
    """Cross-entropy of every labelled next token from the model's full logits, one unpadded row."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    target = torch.tensor(labels[1:])
    keep = target != IGNORE
    return F.cross_entropy(logits[keep], target[keep], reduction="none")


def test_generation_metrics_stream_during_training(probed_lora_run):
    events = [e for e in read_events(probed_lora_run / "events.jsonl") if e.get("kind") == "generation"]
    assert [e["step"] for e in events] == [2, 4]
    for e in events:
        assert set(m.GENERATION_EVENT_KEYS) <= set(e) and e["items"] == len(DOMAIN)
        assert e["json_valid_rate"] is not None  # the domain set has one JSON item
        assert e["examples"] and {"prompt", "output", "reference"} <= set(e["examples"][0])
        assert protocol.event_problems(e) == [], e  # the protocol's definition of a generation event
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(probed_lora_run / "tb"))
    acc.Reload()
    assert [s.step for s in acc.Scalars("eval/domain_accuracy")] == [2, 4]
    assert "eval/json_valid_rate" in acc.Tags()["scalars"]


def test_evaluate_a_run_and_a_checkpoint(probed_lora_run, sets):
    opts = EvalOptions(domain=[sets["domain"]], general=[sets["text"], sets["instruct"]], base="builtin:tiny",
                       max_new_tokens=6, batch_size=4)
    run = evaluate(resolve_target(str(probed_lora_run)), opts)
    base = evaluate(resolve_target("builtin:tiny"), opts)
    got = run["metrics"]
    assert run["target"]["kind"] == "run" and run["target"]["adapter"].endswith("final")
    assert got["base_general_ppl"] == pytest.approx(base["metrics"]["general_ppl"], rel=1e-6)
    assert got["general_ppl_ratio"] == pytest.approx(got["general_ppl"] / got["base_general_ppl"])
    assert got["eval_loss"] < base["metrics"]["eval_loss"]  # four steps of LoRA moved the model
    steps = m.step_losses(read_events(probed_lora_run / "events.jsonl"))
    assert got["loss_fluctuation"] == pytest.approx(m.loss_fluctuation(steps))
    assert base["metrics"]["loss_fluctuation"] is None  # not a run
    for key in ("domain_accuracy", "domain_exact_match", "general_accuracy", "repetition_3gram" , "json_valid_rate"):
        assert key in got
    assert run["counts"]["json_items"] == 1 and len(run["generations"]) == len(DOMAIN) + 1
    step_2 = probed_lora_run / "checkpoints" / "step-2"
    ckpt = evaluate(resolve_target(str(step_2)), EvalOptions(domain=[sets["domain"]]))
    assert ckpt["target"]["kind"] == "checkpoint"
    assert ckpt["metrics"]["eval_loss"] != pytest.approx(got["eval_loss"])  # step 2, not the final model
