"""The fused, chunked LM head + cross-entropy against the plain path (autograd through the whole logits):
per-token losses and every gradient (hidden states, LoRA weights, a trainable head, tied embeddings), in
float64 on tiny shapes and in float32 on the Qwen2 shape; and that it keeps no logits for backward.
"""

from __future__ import annotations

import logging

import pytest
import torch

from bench.qwen2_shape import qwen2_shaped
from trainer_core.config import LoraConfig, NlirgParams
from trainer_core.train.data.batch import IGNORE, Batch
from trainer_core.train.loss import step
from trainer_core.train.loss.head_ce import LogitTransform, chunk_tokens, fused_head_ce
from trainer_core.train.model.load import apply_lora

TRANSFORMS = [LogitTransform(), LogitTransform(scale=2.5), LogitTransform(softcap=3.0),
              LogitTransform(scale=0.5, softcap=2.0)]


def plain_losses(hidden, weight, targets, transform):
    head = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False, dtype=weight.dtype)
    head.weight = weight if isinstance(weight, torch.nn.Parameter) else torch.nn.Parameter(weight, weight.requires_grad)
    return step.plain_head_ce(head, hidden, targets, transform, chunk=1 << 20)


def losses_and_grads(fn, hidden, weight, targets, upstream, train_head):
    h = hidden.clone().requires_grad_(True)
    w = torch.nn.Parameter(weight.clone(), requires_grad=train_head)
    losses = fn(h, w, targets)
    (losses * upstream).sum().backward()
    return losses.detach(), h.grad, w.grad


@pytest.mark.parametrize("train_head", [False, True], ids=["frozen-head", "trainable-head"])
@pytest.mark.parametrize("transform", TRANSFORMS, ids=["plain", "scaled", "softcapped", "both"])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_float64_losses_and_gradients_equal_the_plain_path(train_head, transform, chunk) -> None:
    gen = torch.Generator().manual_seed(0)
    n, hidden_size, vocab = 23, 16, 50
    hidden = torch.randn(n, hidden_size, dtype=torch.float64, generator=gen)
    weight = torch.randn(vocab, hidden_size, dtype=torch.float64, generator=gen)
    targets = torch.randint(0, vocab, (n,), generator=gen)
    upstream = torch.rand(n, dtype=torch.float64, generator=gen)  # per-token weights, as NLIRG's
    fused = losses_and_grads(lambda h, w, t: fused_head_ce(h, w, t, transform, chunk), hidden, weight, targets,
                             upstream, train_head)
    plain = losses_and_grads(lambda h, w, t: plain_losses(h, w, t, transform), hidden, weight, targets,
                             upstream, train_head)
    for got, want in zip(fused, plain, strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def saved_for_backward(fn) -> list[torch.Tensor]:
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fn()
    return saved


def test_no_logits_are_kept_for_backward() -> None:
    """Everything the fused op saves for backward is tokens x hidden (or the weight itself), never x vocab."""
    n, hidden_size, vocab = 64, 8, 4096
    hidden = torch.randn(n, hidden_size, requires_grad=True)
    targets = torch.randint(0, vocab, (n,))
    for weight in (torch.randn(vocab, hidden_size), torch.randn(vocab, hidden_size, requires_grad=True)):
        saved = saved_for_backward(lambda w=weight: fused_head_ce(hidden, w, targets, LogitTransform(), chunk=16))
        assert saved and max(t.numel() for t in saved if t is not weight) <= n * hidden_size
        plain = saved_for_backward(lambda w=weight: plain_losses(hidden, w, targets, LogitTransform()))
        assert max(t.numel() for t in plain) >= n * vocab, "the plain path keeps the logits: the check can fail"


def test_chunk_tokens_follows_the_memory_budget() -> None:
    assert chunk_tokens(0, 151_936) == 441
    assert chunk_tokens(0, 49_152) == 1365
    assert chunk_tokens(300, 151_936) == 300


# ----------------------------------------------------------------------------------------------- real models
def row_batch(length: int, targets: int, vocab: int, rows: int = 2, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab, (rows, length), generator=gen)
    labels = input_ids.clone()
    labels[:, : length - targets] = IGNORE
    labels[rows - 1, -3:] = IGNORE  # ragged targets when rows > 1
    positions = torch.arange(length).expand(rows, length).clone()
    return Batch(input_ids, labels, torch.ones(rows, length, dtype=torch.long), positions, list(range(rows)))


def step_grads(model, batch: Batch, fused: bool, monkeypatch, **kw) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    with monkeypatch.context() as m:
        if not fused:
            m.setattr(step, "_why_not_fused", lambda head: "the test asks for the plain path")
        model.zero_grad(set_to_none=True)
        out = step.loss_step(model, batch, NlirgParams(), **kw)
        out.weighted_sum.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.tokens.losses.detach(), grads


def assert_same_step(model, batch: Batch, monkeypatch, rtol: float, atol: float, **kw) -> dict[str, torch.Tensor]:
    fused_losses, fused_grads = step_grads(model, batch, True, monkeypatch, **kw)
    plain_losses_, plain_grads = step_grads(model, batch, False, monkeypatch, **kw)
    torch.testing.assert_close(fused_losses, plain_losses_, rtol=rtol, atol=atol)
    assert fused_grads.keys() == plain_grads.keys() and fused_grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")
    return fused_grads


def small(tied: bool, lora: bool, dtype=torch.float64):
    model = qwen2_shaped(vocab=300, hidden=32, layers=2, tied=tied, dtype=dtype)
    model.config.final_logit_softcapping = 7.0  # Qwen2 has none; the step reads it from any model's config
    if lora:
        model = apply_lora(model, LoraConfig(r=4, alpha=8, dropout=0.0))  # float32 adapter, as the trainer's
        model = model.to(torch.float64) if dtype == torch.float64 else model
    return model


@pytest.mark.parametrize("tied,lora", [(True, True), (True, False), (False, False)],
                         ids=["lora-tied", "full-ft-tied-embeddings", "full-ft-trainable-head"])
def test_float64_model_step_equals_the_plain_path(tied, lora, monkeypatch) -> None:
    model = small(tied, lora)
    grads = assert_same_step(model, row_batch(24, 17, 300), monkeypatch, rtol=1e-10, atol=1e-12, ce_chunk=5)
    if lora:
        assert all("lora_" in name for name in grads)
    else:
        assert any("embed_tokens" in n for n in grads) and (tied or any("lm_head" in n for n in grads))


def test_token_batch_window_equals_the_plain_path(monkeypatch) -> None:
    model = small(True, True)
    batch = row_batch(24, 17, 300)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[:, 9:14] = True  # one window: labels 9..13, forward over the 20-position prefix
    assert_same_step(model, batch, monkeypatch, rtol=1e-10, atol=1e-12, label_mask=mask, prefix_len=20, ce_chunk=3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_low_precision_autocast_matches_the_plain_path_to_its_rounding(dtype, monkeypatch) -> None:
    """bf16/fp16 logits, float32 softmax, float32 LoRA: the losses agree to float32 rounding; the gradients to
    bf16 rounding (the fused op rounds dL/dlogits to the compute dtype before the per-token weight, the plain
    path after)."""
    model = small(True, True, dtype=dtype)
    batch = row_batch(24, 17, 300)
    with torch.autocast("cpu", dtype=dtype):
        fused_losses, fused = step_grads(model, batch, True, monkeypatch, ce_chunk=5)
        plain_losses_, plain = step_grads(model, batch, False, monkeypatch, ce_chunk=5)
    torch.testing.assert_close(fused_losses, plain_losses_, rtol=1e-6, atol=1e-6)
    nonzero = [name for name, grad in plain.items() if grad.abs().max() > 0]
    assert nonzero and fused.keys() == plain.keys()
    for name in nonzero:
        assert (fused[name] - plain[name]).abs().max() <= 2e-2 * plain[name].abs().max(), name


def test_float32_qwen2_shape_lora_equals_the_plain_path(monkeypatch) -> None:
    """The real vocabulary (151,936), one short row: LoRA gradients and losses to float32 rounding."""
    model = apply_lora(qwen2_shaped(), LoraConfig(r=8, alpha=16, dropout=0.0))
    batch = row_batch(40, 30, model.config.vocab_size, rows=1)
    assert_same_step(model, batch, monkeypatch, rtol=1e-4, atol=1e-6, ce_chunk=16)


def test_lora_on_the_lm_head_falls_back_to_the_plain_path_with_one_log_line(monkeypatch, caplog) -> None:
    """A head the fused op cannot take (peft's LoRA layer on lm_head) runs the plain path: exact losses, a gradient
    for the head's adapter, and one log line naming why, however many steps run."""
    model = qwen2_shaped(vocab=300, hidden=32, layers=1, tied=False, dtype=torch.float64)
    model = apply_lora(model, LoraConfig(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "lm_head"])).double()
    for name, param in model.named_parameters():
        if "lora_B" in name:  # a trained adapter: the head's output differs from its base weight's
            torch.nn.init.normal_(param, std=0.1)
    batch = row_batch(24, 17, 300)
    monkeypatch.setattr(step, "_logged_fallbacks", set())
    with caplog.at_level(logging.INFO, logger="trainer_core"):
        outs = [step.loss_step(model, batch, NlirgParams(), ce_chunk=5) for _ in range(2)]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("LM head")]
    assert len(lines) == 1 and "peft" in lines[0] and "not a plain torch.nn.Linear" in lines[0], lines
    tokens = outs[0].tokens
    log_probs = torch.log_softmax(model(input_ids=batch.input_ids).logits, dim=-1)
    reference = -log_probs[tokens.rows, tokens.positions - 1, tokens.targets]
    torch.testing.assert_close(tokens.losses, reference, rtol=1e-10, atol=1e-12)
    outs[0].weighted_sum.backward()
    assert any("lm_head.lora_" in n and p.grad is not None and p.grad.abs().max() > 0
               for n, p in model.named_parameters())
