"""Training behaviour on builtin:tiny, in process: seeds, accumulation, resume, NaN and zeroed steps, LoRA."""

import json
import math

import pytest
import torch

from tests.helpers import TINY, step_losses, train_in_process, write_alpaca, write_text
from trainer_core.live.events import read_events
from trainer_core.train.loss.special_tokens import NOTE_PREFIX


@pytest.fixture()
def data(tmp_path):
    return write_alpaca(tmp_path / "d.jsonl", n=24)


def test_same_seed_same_losses_other_seed_differs(tmp_path, data):
    args = [*TINY, f"data.train={data}", "training.max_steps=4"]
    train_in_process(tmp_path / "a", args)
    train_in_process(tmp_path / "b", args)
    train_in_process(tmp_path / "c", [*args, "training.seed=7"])
    a, b, c = (step_losses(tmp_path / x) for x in "abc")
    assert a == b
    assert a != c


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path, data):
    base = [*TINY, f"data.train={data}", "training.max_steps=4", "training.scheduler=constant"]
    train_in_process(tmp_path / "big", [*base, "training.batch_size=4", "training.grad_accum=1"])
    train_in_process(tmp_path / "acc", [*base, "training.batch_size=2", "training.grad_accum=2"])
    big, acc = step_losses(tmp_path / "big"), step_losses(tmp_path / "acc")
    assert big == pytest.approx(acc, abs=1e-4)
    assert big[0] != pytest.approx(big[-1], abs=1e-3)  # training did move


def test_resume_continues_exactly(tmp_path, data):
    """10 steps straight == the same run resumed from its step-5 checkpoint (model, optimizer, LR, RNG, data)."""
    args = [*TINY, f"data.train={data}", "training.max_steps=10", "training.save_every=5",
            "training.save_total_limit=0", "training.warmup_steps=2"]
    straight, _ = train_in_process(tmp_path / "straight", args)
    ckpt = tmp_path / "straight" / "checkpoints" / "step-5"
    assert ckpt.is_dir()
    resumed, _ = train_in_process(tmp_path / "resumed", args, resume=ckpt)
    full, tail = step_losses(tmp_path / "straight"), step_losses(tmp_path / "resumed")
    assert len(tail) == 5
    assert tail == pytest.approx(full[5:], abs=1e-6)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_non_finite_loss_skips_steps_then_stops_with_checkpoint(tmp_path, data):
    def poison(trainer):
        # NaN activations, finite weights: every loss is NaN, and the checkpoint of the (untouched) weights may be
        # written (non-finite weights are never saved: tests/test_live_limits.py).
        trainer.model.get_input_embeddings().register_forward_hook(lambda _m, _i, out: out * float("nan"))

    trainer, status = train_in_process(tmp_path / "r", [*TINY, f"data.train={data}", "training.max_steps=20",
                                                        "training.max_nan_steps=3"], before_fit=poison)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert status == "failed" and summary["status"] == "failed" and summary["reason"] == "nan"
    assert trainer.step == 3 and summary["skipped_steps"] == 3
    assert (tmp_path / "r" / "checkpoints" / "step-3").is_dir()
    errors = [e for e in read_events(tmp_path / "r" / "events.jsonl") if e["type"] == "error"]
    assert errors and "non-finite" in errors[0]["message"]


def test_fully_zeroed_steps_are_counted_and_change_nothing(tmp_path, data):
    zeroed = ["nlirg.easy_max=0.1", "nlirg.hard_min=0.2", "nlirg.loss_threshold=0.25", "nlirg.loss_deadline=0.3",
              "nlirg.protect_special_tokens=false"]  # protected end tokens would still train
    before = {}

    def remember(trainer):
        before.update({n: p.detach().clone() for n, p in trainer.model.named_parameters()})

    trainer, status = train_in_process(tmp_path / "z", [*TINY, f"data.train={data}", "training.max_steps=3",
                                                        *zeroed], before_fit=remember)
    summary = json.loads((tmp_path / "z" / "summary.json").read_text())
    assert status == "completed" and summary["skipped_steps"] == 3
    assert summary["zone_counts"][3] == summary["train_tokens"] > 0
    assert summary["final_weighted_loss"] == 0.0
    for n, p in trainer.model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_special_tokens_zeroed_are_named_once_and_protected_ones_train(tmp_path):
    """Short label answers: the end-of-turn token is a large share of the targets. Everything at loss >= 0.3 is
    zeroed; unprotected, the trainer names the token and the option once; protected, the end tokens train."""
    short = tmp_path / "labels.jsonl"
    short.write_text("".join(json.dumps({"instruction": f"Is {i} even?", "output": "yes" if i % 2 == 0 else "no"})
                             + "\n" for i in range(16)))
    zeroed = ["nlirg.easy_max=0.1", "nlirg.hard_min=0.2", "nlirg.loss_threshold=0.25", "nlirg.loss_deadline=0.3"]
    base = [*TINY, f"data.train={short}", "training.max_steps=3", *zeroed]
    runs = {flag: tmp_path / flag for flag in ("true", "false")}
    for flag, run in runs.items():
        train_in_process(run, [*base, f"nlirg.protect_special_tokens={flag}"])
    notes = {flag: [e["message"] for e in read_events(run / "events.jsonl")
                    if e["type"] == "log" and e["message"].startswith(NOTE_PREFIX)] for flag, run in runs.items()}
    assert len(notes["false"]) == 1 and "nlirg.protect_special_tokens" in notes["false"][0]
    assert "'<|im_end|>'" in notes["false"][0] and notes["true"] == []
    summary = json.loads((runs["true"] / "summary.json").read_text())
    assert summary["skipped_steps"] == 0 and summary["final_weighted_loss"] > 0  # the end tokens trained
    assert summary["zone_counts"][3] + summary["special_tokens"] == summary["train_tokens"]
    assert json.loads((runs["false"] / "summary.json").read_text())["skipped_steps"] == 3


def test_summary_contract_and_step_events(tmp_path, data):
    run = tmp_path / "s"
    train_in_process(run, [*TINY, f"data.train={data}", "training.max_steps=4", "data.eval_fraction=0.2",
                           "training.eval_every=2"])
    summary = json.loads((run / "summary.json").read_text())
    for key in ("status", "steps", "epochs_done", "train_tokens", "tokens_per_s", "final_loss",
                "final_weighted_loss", "zone_counts", "wall_s", "peak_memory_bytes"):
        assert key in summary, key
    assert summary["status"] == "completed" and summary["steps"] == 4
    special = summary["special_tokens"]  # protected by default: counted apart from the zones
    assert sum(summary["zone_counts"]) + special == summary["train_tokens"] > special > 0
    events = read_events(run / "events.jsonl")
    assert [e["seq"] for e in events] == list(range(len(events)))
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) == 4
    for e in steps:
        for key in ("step", "epoch", "loss", "weighted_loss", "lr", "grad_norm", "target_tokens", "tokens_per_s",
                    "zone_counts", "zone_grad_share", "loss_hist", "memory", "step_time_s"):
            assert key in e, key
        assert len(e["loss_hist"]) == 41
        assert sum(e["loss_hist"]) == e["target_tokens"] == sum(e["zone_counts"]) + e["special_tokens"]
        assert sum(e["zone_grad_share"]) == pytest.approx(1.0)
    assert sum(sum(e["zone_counts"]) + e["special_tokens"] for e in steps) == summary["train_tokens"]
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [0, 2, 4] and all(e["eval_loss"] > 0 for e in evals)
    assert events[-1]["type"] == "end"


def test_lr_schedule_warms_up_then_decays(tmp_path, data):
    run = tmp_path / "lr"
    train_in_process(run, [*TINY, f"data.train={data}", "training.max_steps=6", "training.warmup_steps=2",
                           "training.scheduler=linear", "training.lr=0.01"])
    lrs = [e["lr"] for e in read_events(run / "events.jsonl") if e["type"] == "step"]
    assert lrs[0] == pytest.approx(0.01)  # after the warmup's first step
    assert lrs[1] > lrs[2] > lrs[3] > lrs[-1]


def test_lora_run_writes_adapter_and_merged_model(tmp_path, data):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "lora"
    args = [*TINY, f"data.train={data}", "training.max_steps=3", "lora.enabled=true", "lora.r=4",
            "output.merge_lora=true", "lora.dropout=0.0"]
    trainer, status = train_in_process(run, args)
    assert status == "completed"
    assert (run / "final" / "adapter_config.json").is_file()
    assert (run / "final" / "adapter_model.safetensors").is_file()
    assert (run / "final" / "tokenizer_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(run / "final" / "merged")
    ids = torch.tensor([[1, 5, 9, 20]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, trainer.model(ids).logits, atol=1e-4)


def test_cpt_with_packing_trains(tmp_path):
    data = write_text(tmp_path / "t.jsonl")
    run = tmp_path / "cpt"
    _, status = train_in_process(run, [*TINY, f"data.train={data}", "training.type=cpt", "data.pack_length=64",
                                       "training.max_steps=3"])
    assert status == "completed"
    assert json.loads((run / "summary.json").read_text())["train_tokens"] > 0


def test_bf16_lora_with_gradient_checkpointing_keeps_float32_adapter(tmp_path, data):
    trainer, status = train_in_process(tmp_path / "bf", [*TINY, f"data.train={data}", "training.max_steps=2",
                                                         "model.dtype=bf16", "model.gradient_checkpointing=true",
                                                         "lora.enabled=true", "lora.r=4"])
    assert status == "completed"
    trainable = [p for p in trainer.model.parameters() if p.requires_grad]
    frozen = [p for p in trainer.model.parameters() if not p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    assert any(p.dtype == torch.bfloat16 for p in frozen)
    assert all(math.isfinite(x) for x in step_losses(tmp_path / "bf"))


def test_save_total_limit_keeps_the_newest_checkpoints(tmp_path, data):
    run = tmp_path / "keep"
    train_in_process(run, [*TINY, f"data.train={data}", "training.max_steps=6", "training.save_every=2",
                           "training.save_total_limit=2"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-4", "step-6"]
