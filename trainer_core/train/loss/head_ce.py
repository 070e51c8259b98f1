"""The LM head and its cross-entropy, fused and chunked in forward *and* backward (docs/design.md §10).

At a 151,936-token vocabulary the float32 logits of a 2,048-token row are 1.2 GB, and autograd keeps
several copies; here at most one chunk of `chunk` target tokens x vocabulary exists at any time. The
result is the exact per-token cross-entropy (NLIRG, zones, the Inspector and flagged samples need every
token's loss), with a gradient for the hidden states and, when it trains, for the head weight:

- frozen head (LoRA): each chunk's gradient with respect to its hidden states, dL_i/dh_i, is computed in
  the forward right after the chunk's loss (the softmax is at hand) and kept (tokens x hidden); backward
  only scales it by the per-token upstream gradient. Two matmuls per chunk, as the plain path.
- trainable head (full fine-tuning, tied embeddings that train): backward recomputes each chunk's
  logits from the saved hidden states and weight (the gradient of the weight needs the upstream gradient,
  which the forward cannot know). One matmul more than the plain path, on the head only.

Both replay the plain path's arithmetic: logits in the compute dtype (the autocast dtype, else the
weight's), then float32 for scaling, soft-capping and the softmax. torch's own `F.linear_cross_entropy`
(reduction="none") computes the same losses but recomputes in backward even for a frozen head, has no
soft-capping and forms its low-precision logits its own way, so this one function covers every case.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CE_CHUNK_BYTES = 256 << 20
"""Default budget of one chunk's float32 logits (tokens x vocab x 4 bytes); see `chunk_tokens`."""


@dataclass(frozen=True)
class LogitTransform:
    """What the model does to its logits before the softmax (models that have neither use the defaults)."""

    scale: float = 1.0
    """Logits are divided by this (`config.logits_scaling`)."""
    softcap: float = 0.0
    """Logits become softcap * tanh(logits / softcap) when > 0 (`config.final_logit_softcapping`)."""


def chunk_tokens(configured: int, vocab: int) -> int:
    """Target tokens per chunk: `configured` when > 0, else as many as keep one chunk under CE_CHUNK_BYTES."""
    return configured if configured > 0 else max(64, CE_CHUNK_BYTES // (4 * vocab))


def compute_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype `F.linear` would compute the logits in here: the autocast dtype when autocast is on."""
    device = weight.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


def fused_head_ce(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                  transform: LogitTransform, chunk: int) -> torch.Tensor:
    """Per-token cross-entropy (float32, with graph) of `hidden` (N, H) under the head `weight` (V, H)."""
    dtype = compute_dtype(weight)
    grad_wanted = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    precompute = grad_wanted and not weight.requires_grad
    return _FusedHeadCE.apply(hidden, weight, targets, transform, chunk, dtype, precompute)


def softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    """The softmax runs in float32 for bf16/fp16/fp32 logits (float64 stays float64, for exactness tests)."""
    return torch.promote_types(dtype, torch.float32)


def _logits(h: torch.Tensor, weight: torch.Tensor, transform: LogitTransform) -> torch.Tensor:
    """float32 logits of one chunk, transformed as the model does (h and weight already in the compute dtype)."""
    z = F.linear(h, weight).to(softmax_dtype(h.dtype))
    if transform.scale != 1.0:
        z.div_(transform.scale)
    if transform.softcap:
        z.div_(transform.softcap).tanh_().mul_(transform.softcap)
    return z


def _exp_stats_(z: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logsumexp, target logit, sum of exp) per row, turning `z` into exp(z - row max) in place.

    In place because `torch.logsumexp` would allocate a second chunk-sized buffer for its exp.
    """
    target = z.gather(1, targets[:, None])[:, 0]
    row_max = z.amax(dim=1)
    total = z.sub_(row_max[:, None]).exp_().sum(dim=1)
    return row_max + total.log(), target, total


def _dloss_dlogits_(probs: torch.Tensor, targets: torch.Tensor, transform: LogitTransform,
                    capped: torch.Tensor | None) -> torch.Tensor:
    """d loss_i / d raw logits of one chunk, in place over its softmax `probs`; `capped` holds the soft-capped
    logits when the model soft-caps (the tanh derivative needs them)."""
    grad = probs.scatter_add_(1, targets[:, None], torch.full_like(probs[:, :1], -1.0))
    if capped is not None:  # d(c tanh(x / c)) / dx = 1 - tanh^2
        grad.mul_(capped.div_(transform.softcap).square_().neg_().add_(1))
    if transform.scale != 1.0:
        grad.div_(transform.scale)
    return grad


class _FusedHeadCE(torch.autograd.Function):
    """Chunked head + cross-entropy; saves hidden states (and weight) or dL/dh, never logits."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, transform, chunk, dtype, precompute):
        w = weight.to(dtype)
        losses = torch.empty(hidden.shape[0], dtype=softmax_dtype(dtype), device=hidden.device)
        lse_all = torch.empty_like(losses)
        grad_h = torch.empty_like(hidden) if precompute else None
        for start in range(0, hidden.shape[0], chunk):
            part = slice(start, start + chunk)
            z = _logits(hidden[part].to(dtype), w, transform)
            capped = z.clone() if grad_h is not None and transform.softcap else None
            lse, target, total = _exp_stats_(z, targets[part])
            losses[part] = lse - target
            lse_all[part] = lse
            if grad_h is not None:
                probs = z.div_(total[:, None])  # z held exp(z - max): now the softmax, in place
                grad_h[part] = _dloss_dlogits_(probs, targets[part], transform, capped).to(dtype) @ w
                del probs
            del z, capped  # before the next chunk's logits exist: one chunk at a time, not two
        ctx.transform, ctx.chunk, ctx.dtype, ctx.precompute = transform, chunk, dtype, precompute
        if precompute:
            ctx.save_for_backward(grad_h)
        else:
            ctx.save_for_backward(hidden, weight, targets, lse_all)
        return losses

    @staticmethod
    def backward(ctx, grad_losses):
        if ctx.precompute:
            (grad_h,) = ctx.saved_tensors
            return grad_h * grad_losses[:, None].to(grad_h.dtype), None, None, None, None, None, None
        hidden, weight, targets, lse_all = ctx.saved_tensors
        w = weight.to(ctx.dtype)
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=softmax_dtype(ctx.dtype), device=weight.device) if want_w else None
        for start in range(0, hidden.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            h = hidden[part].to(ctx.dtype)
            z = _logits(h, w, ctx.transform)
            capped = z.clone() if ctx.transform.softcap else None
            probs = z.sub_(lse_all[part, None]).exp_()
            dz = _dloss_dlogits_(probs, targets[part], ctx.transform, capped)
            dz = dz.mul_(grad_losses[part, None]).to(ctx.dtype)
            if grad_h is not None:
                grad_h[part] = dz @ w
            if grad_w is not None and grad_w.dtype == ctx.dtype:
                grad_w.addmm_(dz.T, h)
            elif grad_w is not None:  # bf16/fp16: each chunk's matmul in the compute dtype, summed in float32
                grad_w.add_(dz.T @ h)
            del z, capped, probs, dz  # before the next chunk's logits exist
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        return grad_h, grad_w, None, None, None, None, None
