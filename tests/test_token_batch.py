"""token_batch: window arithmetic, equality with the reference's full-sequence method, batch_size > 1,
gradient accumulation over windows, and resume inside a sample's windows."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import TINY, make_config, step_losses, train_in_process
from trainer_core.config import ConfigError, NlirgParams
from trainer_core.data.files import read_records
from trainer_core.live.events import read_events
from trainer_core.train.data.batch import IGNORE, Batch, build_samples, collate
from trainer_core.train.data.token_batch import plan_windows, row_lengths, select
from trainer_core.train.loss.step import loss_step
from trainer_core.train.loss.weights import nlirg_weights

# ----------------------------------------------------------------------------- window arithmetic


def _labels(rows: list[tuple[int, list[int]]]) -> tuple[torch.Tensor, list[int]]:
    """A right-padded (B, T) label tensor from (row length, trained positions) pairs."""
    width = max(n for n, _ in rows)
    labels = torch.full((len(rows), width), IGNORE)
    for r, (_, pos) in enumerate(rows):
        labels[r, pos] = 7
    return labels, [n for n, _ in rows]


# Row 0: 23 contiguous targets then 2 trailing tokens; row 1: two assistant turns (targets not contiguous);
# row 2: 4 targets and a label at position 0, which nothing predicts and no window may take.
ROWS = [(30, list(range(5, 28))), (26, [*range(3, 9), *range(14, 25)]), (12, [0, *range(6, 10)])]


@pytest.mark.parametrize("size", [1, 3, 4, 10, 23, 100])
def test_every_target_token_is_in_exactly_one_window(size: int) -> None:
    labels, lengths = _labels(ROWS)
    windows = plan_windows(labels, lengths, size)
    targets = [[t for t in pos if t >= 1] for _, pos in ROWS]
    assert len(windows) == math.ceil(max(len(t) for t in targets) / size)
    seen: list[list[int]] = [[] for _ in ROWS]
    for k, w in enumerate(windows):
        assert w.index == k
        assert w.label_mask.shape == (len(w.rows), w.prefix_len)
        for i, r in enumerate(w.rows):
            got = torch.nonzero(w.label_mask[i]).flatten().tolist()
            assert got == targets[r][k * size:(k + 1) * size]  # in order, N per row, the tail in the last
            seen[r] += got
        assert w.prefix_len == 1 + max(torch.nonzero(w.label_mask)[:, 1].tolist())  # nothing past the last label
        assert w.target_tokens == int(w.label_mask.sum())
    assert seen == targets  # every target once: no dropped tail, no dropped last token of a window
    assert sum(w.input_tokens for w in windows) == sum(lengths)


def test_the_reference_bugs_are_gone() -> None:
    """23 targets in windows of 10: the reference trains 9 + 9 and drops 5; here 10 + 10 + 3."""
    labels, lengths = _labels([ROWS[0]])
    sizes = [w.target_tokens for w in plan_windows(labels, lengths, 10)]
    assert sizes == [10, 10, 3]


def test_rows_that_ran_out_drop_out_of_later_windows() -> None:
    labels, lengths = _labels(ROWS)
    windows = plan_windows(labels, lengths, 5)
    assert [w.rows for w in windows] == [[0, 1, 2], [0, 1], [0, 1], [0, 1], [0]]
    assert [w.prefix_len for w in windows] == [10, 18, 23, 25, 28]


def test_select_keeps_the_window_rows_and_prefix() -> None:
    labels, lengths = _labels(ROWS)
    mask = torch.zeros_like(labels)
    for r, n in enumerate(lengths):
        mask[r, :n] = 1
    batch = Batch(labels.clamp(min=0), labels, mask, torch.arange(labels.shape[1]).expand_as(labels).clone(),
                  [10, 11, 12])
    assert row_lengths(batch) == lengths
    window = plan_windows(labels, lengths, 5)[1]
    sub = select(batch, window)
    assert sub.sample_ids == [10, 11]
    assert sub.input_ids.shape == sub.attention_mask.shape == (2, window.prefix_len)
    assert torch.equal(sub.labels, labels[:2, :window.prefix_len])


# ----------------------------------------------------------------------------- equality with the reference


def _long_answers(path, n: int = 6) -> str:
    """Alpaca records whose answers vary from ~20 to ~70 target tokens."""
    words = "the parcel ships in two days check the email battery lasts eight hours refund order".split()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            answer = " ".join(words[(i + j) % len(words)] for j in range(8 + 6 * i))
            fh.write(json.dumps({"instruction": f"Question {i}: tell me about the order.", "output": answer}) + "\n")
    return str(path)


def _reference_window_loss(model, batch: Batch, window_mask: torch.Tensor, params: NlirgParams):
    """The reference's method: a full forward of the whole batch, full-vocabulary float32 logits, cross-entropy
    everywhere, then the NLIRG loss of the window's label positions only."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids).logits.float()
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), batch.labels[:, 1:], reduction="none", ignore_index=IGNORE)
    chosen = window_mask[:, 1:] & (batch.labels[:, 1:] != IGNORE)
    losses = ce[chosen]
    w = nlirg_weights(losses, params)
    return (losses * w).sum() / (w > 0).sum().clamp(min=1), losses


def _grads(model) -> list[torch.Tensor]:
    out = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("lora", [False, True])
def test_windows_match_the_full_sequence_method_at_every_window(tmp_path, tiny_path, tiny_tokenizer, lora) -> None:
    from transformers import AutoModelForCausalLM

    from trainer_core.config import LoraConfig
    from trainer_core.train.model.load import apply_lora

    samples, _ = build_samples(tiny_tokenizer, read_records([_long_answers(tmp_path / "d.jsonl")], "auto", None),
                               "sft", 512)
    batch = collate(samples[1:4], tiny_tokenizer.pad_token_id)  # three rows with different target counts
    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    if lora:
        model = apply_lora(model, LoraConfig(r=4, dropout=0.0))
    model.train()
    params = NlirgParams()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    windows = plan_windows(batch.labels, row_lengths(batch), 7)
    assert len(windows) >= 4 and len(windows[-1].rows) < 3  # rows drop out along the way
    for window in windows:
        full_mask = torch.zeros_like(batch.labels, dtype=torch.bool)
        full_mask[window.rows, :window.prefix_len] = window.label_mask
        ref_loss, ref_tokens = _reference_window_loss(model, batch, full_mask, params)
        ref_loss.backward()
        ref_grads = _grads(model)

        out = loss_step(model, select(batch, window), params, label_mask=window.label_mask)
        (out.weighted_sum / out.nonzero.clamp(min=1)).backward()
        assert out.tokens.losses.numel() == window.target_tokens
        torch.testing.assert_close(out.tokens.losses, ref_tokens, atol=1e-5, rtol=1e-5)
        for got, want in zip(_grads(model), ref_grads, strict=True):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-4)
        # Step with the reference's gradients so the next window runs under new weights, as in training.
        for p, g in zip((p for p in model.parameters() if p.requires_grad), ref_grads, strict=True):
            p.grad = g
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


# ----------------------------------------------------------------------------- the training loop


@pytest.fixture()
def long_data(tmp_path) -> str:
    return _long_answers(tmp_path / "long.jsonl", n=5)


def test_one_epoch_with_batches_of_two_trains_every_target_token_once(tmp_path, long_data) -> None:
    trainer, status = train_in_process(tmp_path / "r", [*TINY, f"data.train={long_data}", "training.token_batch=6",
                                                         "data.max_length=512"])
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    steps = [e for e in read_events(tmp_path / "r" / "events.jsonl") if e["type"] == "step"]
    assert status == "completed" and trainer.cfg.training.batch_size == 2
    assert summary["train_tokens"] == sum(s.target_count for s in trainer.samples)
    assert summary["input_tokens"] == sum(len(s.input_ids) for s in trainer.samples)
    # The planned step count is what one epoch of windows really took: no step into a second epoch, none missing.
    assert len(steps) == trainer.total_steps == trainer.step > trainer.batches_per_epoch
    assert all(e["target_tokens"] <= 2 * 6 for e in steps)
    epochs = [e["epoch"] for e in steps]
    assert epochs == sorted(epochs) and 0 < epochs[0] < epochs[1] < 1 and epochs[-1] == summary["epochs_done"] == 1
    done = [e["samples_done"] for e in steps]  # a sample counts once its last window is trained
    assert done == sorted(done) and done[0] == 0 and done[-1] == len(trainer.samples)
    assert len(set(done)) == len(trainer.samples) + 1  # the rows of a batch finish at different windows


def test_accumulation_normalises_over_all_windows_of_the_step(tmp_path, long_data) -> None:
    """grad_accum=2: one optimizer step = two windows, divided by the non-zero-weight tokens of both."""
    seen: dict = {}

    def capture(trainer) -> None:
        seen["start"] = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        original = trainer._optimizer_step

        def spy(nonzero):
            if "grads" not in seen:
                seen["grads"] = [p.grad.detach().clone() for p in trainer.model.parameters()]
                seen["nonzero"] = float(nonzero)
            original(nonzero)

        trainer._optimizer_step = spy

    trainer, _ = train_in_process(tmp_path / "r", [*TINY, f"data.train={long_data}", "training.token_batch=5",
                                                   "training.grad_accum=2", "data.max_length=512",
                                                   "training.max_steps=1"], before_fit=capture)
    first = collate(_first_batch(trainer), trainer.tokenizer.pad_token_id)
    windows = plan_windows(first.labels, row_lengths(first), 5)[:2]
    with torch.no_grad():  # back to the weights the captured step started from
        for n, p in trainer.model.named_parameters():
            p.copy_(seen["start"][n])
    total, nonzero = 0.0, 0
    for window in windows:
        out = loss_step(trainer.model, select(first, window), trainer.params, label_mask=window.label_mask)
        total = total + out.weighted_sum
        nonzero += int(out.nonzero)
    assert seen["nonzero"] == nonzero
    (total / nonzero).backward()
    for got, p in zip(seen["grads"], trainer.model.parameters(), strict=True):
        torch.testing.assert_close(got / nonzero, p.grad, atol=1e-6, rtol=1e-4)


def _first_batch(trainer):
    from trainer_core.train.data.batch import epoch_order

    order = epoch_order(len(trainer.samples), trainer.cfg.training.seed, 0)
    return [trainer.samples[i] for i in order[:trainer.cfg.training.batch_size]]


def test_resume_continues_inside_a_sample_windows(tmp_path, long_data) -> None:
    args = [*TINY, f"data.train={long_data}", "training.token_batch=4", "data.max_length=512",
            "training.max_steps=14", "training.save_every=5", "training.save_total_limit=0", "training.warmup_steps=2"]
    straight, _ = train_in_process(tmp_path / "straight", args)
    ckpt = tmp_path / "straight" / "checkpoints" / "step-5"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["window_in_batch"] > 0  # the checkpoint really is in the middle of a batch's windows
    resumed, _ = train_in_process(tmp_path / "resumed", args, resume=ckpt)
    full, tail = step_losses(tmp_path / "straight"), step_losses(tmp_path / "resumed")
    assert len(tail) == 9
    assert tail == pytest.approx(full[5:], abs=1e-6)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_resume_mid_batch_with_another_token_batch_is_a_config_error(tmp_path, long_data) -> None:
    from trainer_core.live.events import EventLog
    from trainer_core.train.loop import Trainer

    base = [*TINY, f"data.train={long_data}", "data.max_length=512", "training.max_steps=6"]
    train_in_process(tmp_path / "a", [*base, "training.token_batch=4", "training.save_every=5"])
    assert json.loads((tmp_path / "a" / "checkpoints" / "step-5" / "trainer_state.json").read_text())["window_in_batch"]
    (tmp_path / "b").mkdir()
    cfg = make_config([*base, "training.token_batch=3"])
    trainer = Trainer(cfg, tmp_path / "b", EventLog(tmp_path / "b" / "events.jsonl"),
                      resume=tmp_path / "a" / "checkpoints" / "step-5")
    with pytest.raises(ConfigError, match=r"training.token_batch=4"):
        trainer.setup()


def test_flagged_tokens_of_later_windows_sit_at_their_own_positions(tmp_path, long_data) -> None:
    """With one window per logged step, a flagged sample arrives in parts; each part is placed where it belongs."""
    zero_all = ["nlirg.easy_max=0.1", "nlirg.hard_min=0.2", "nlirg.loss_threshold=0.25", "nlirg.loss_deadline=0.3",
                "nlirg.protect_special_tokens=false"]  # every token zeroed, the end tokens too
    trainer, _ = train_in_process(tmp_path / "r", [*TINY, f"data.train={long_data}", "training.token_batch=6",
                                                   "data.max_length=512", "training.max_steps=8", *zero_all])
    entries = [json.loads(line) for line in (tmp_path / "r" / "flagged.jsonl").read_text().splitlines()]
    by_id = {s.sample_id: s for s in trainer.samples}
    starts = set()
    for e in entries:
        sample = by_id[e["sample_id"]]
        targets = [t for t in range(1, len(sample.labels)) if sample.labels[t] != IGNORE]
        placed = [t for t, loss in enumerate(e["losses"]) if loss is not None]
        assert len(placed) == e["zeroed_tokens"] <= 6  # one window's tokens...
        k = targets.index(placed[0])
        assert placed == targets[k:k + len(placed)]  # ...at that window's own target positions
        starts.add(k)
    assert starts > {0}  # later windows were flagged too, not only each sample's first
