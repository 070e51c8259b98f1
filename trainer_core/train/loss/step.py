"""One loss step: forward, per-token cross-entropy on target positions only, NLIRG weighting.

The LM head runs only on the positions that have a label (and, for token_batch, only on the window's
positions), fused with its cross-entropy and chunked in forward and backward (`head_ce`), so the
full-vocabulary logits never exist. The target positions are planned on the host copy of the labels
(`Batch.host_labels`), so nothing here waits for the GPU (tests/test_host_syncs.py runs it on the meta device).
One sync per forward is not ours: transformers' mask preparation reads a 2-D padding mask (`.all()`) or, without
one, the positions (a packed-rows check) back to the host; only a prepared 4-D mask (packed CPT rows) skips it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainer_core.config import NlirgParams
from trainer_core.train.data.batch import IGNORE, Batch
from trainer_core.train.loss.head_ce import LogitTransform, chunk_tokens, fused_head_ce, softmax_dtype
from trainer_core.train.loss.special_tokens import protect_weights, special_mask
from trainer_core.train.loss.weights import nlirg_weights, weighted_loss_sum

log = logging.getLogger("trainer_core")
_logged_fallbacks: set[str] = set()


@dataclass
class TokenLosses:
    """Per-target-token results of one forward pass, flat over the batch."""

    losses: torch.Tensor
    """Cross-entropy per target token (float32, with graph)."""
    rows: torch.Tensor
    """Batch row of every target token."""
    positions: torch.Tensor
    """Position (in the row) of the token being predicted."""
    targets: torch.Tensor
    """The target token ids."""


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The CausalLM under a DeepSpeed engine and/or a peft wrapper (LoRA layers stay injected)."""
    inner = getattr(model, "module", model)
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner


def _decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, LogitTransform]:
    causal_lm = _unwrap(model)
    decoder = causal_lm.get_decoder() if hasattr(causal_lm, "get_decoder") else causal_lm.model
    head = causal_lm.get_output_embeddings()
    cfg = causal_lm.config
    softcap = float(getattr(cfg, "final_logit_softcapping", None) or 0.0)
    scale = float(getattr(cfg, "logits_scaling", None) or 1.0)
    return decoder, head, LogitTransform(scale=scale, softcap=softcap)


def lm_head(model: torch.nn.Module) -> torch.nn.Module:
    """The model's LM head module (under any DeepSpeed or peft wrapper)."""
    return _decoder_and_head(model)[1]


def _zero3_sharded(weight: torch.Tensor) -> bool:
    """True for a parameter that DeepSpeed ZeRO-3 partitions over the ranks (it carries a `ds_id`)."""
    return hasattr(weight, "ds_id")


def _vocab(head: torch.nn.Module) -> int:
    """The head's output size, also when ZeRO-3 has emptied its weight (the full shape is then `ds_shape`)."""
    weight = head.weight
    return int(getattr(head, "out_features", 0) or getattr(weight, "ds_shape", weight.shape)[0])


def _why_not_fused(head: torch.nn.Module) -> str | None:
    """Why the fused head cannot run for this head (None: it can)."""
    if type(head) is not torch.nn.Linear:
        kind = f"{type(head).__module__}.{type(head).__qualname__}"
        return f"the LM head is a {kind}, not a plain torch.nn.Linear (e.g. LoRA on lm_head)"
    if head.bias is not None:
        return "the LM head has a bias"
    return None


def lm_logits(head: torch.nn.Module, hidden: torch.Tensor, transform: LogitTransform) -> torch.Tensor:
    """Logits of some hidden states in the softmax dtype (float32 or wider), with the model's logit scaling and
    soft-capping applied: what the plain path and the scoring pass compute the softmax of."""
    logits = head(hidden)
    logits = logits.to(softmax_dtype(logits.dtype))
    if transform.scale != 1.0:
        logits = logits / transform.scale
    if transform.softcap:
        logits = torch.tanh(logits / transform.softcap) * transform.softcap
    return logits


def plain_head_ce(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, transform: LogitTransform,
                  chunk: int) -> torch.Tensor:
    """LM head + cross-entropy through autograd, chunked in forward only: every chunk's logits stay saved for
    backward. The fallback where the fused path cannot run, and the reference the tests hold it to."""
    out = []
    for start in range(0, hidden.shape[0], chunk):
        logits = lm_logits(head, hidden[start : start + chunk], transform)
        out.append(F.cross_entropy(logits, targets[start : start + chunk], reduction="none"))
    return torch.cat(out) if len(out) > 1 else out[0]


def head_losses(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, transform: LogitTransform,
                ce_chunk: int = 0) -> torch.Tensor:
    """Per-token cross-entropy of the selected hidden states: fused where it can run, else the plain path."""
    chunk = chunk_tokens(ce_chunk, _vocab(head))
    reason = _why_not_fused(head)
    if reason is not None:
        if reason not in _logged_fallbacks:
            _logged_fallbacks.add(reason)
            log.info("LM head: plain chunked cross-entropy (logits kept for backward) because %s", reason)
        return plain_head_ce(head, hidden, targets, transform, chunk)
    if _zero3_sharded(head.weight):
        return _call_as_forward(head, _fused_with_own_weight, hidden, targets, transform, chunk)
    return fused_head_ce(hidden, head.weight, targets, transform, chunk)


def _fused_with_own_weight(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor,
                           transform: LogitTransform, chunk: int) -> torch.Tensor:
    return fused_head_ce(hidden, head.weight, targets, transform, chunk)


def _call_as_forward(module: torch.nn.Module, fn, *args):
    """Call `fn(module, *args)` as `module`'s own forward, so the module's hooks wrap it as they wrap the plain head.

    ZeRO-3 needs this: its hooks gather the sharded weight before the forward and again before the backward
    (once per micro-step each, as for the plain head), release it after, and reduce its gradient when it trains.
    """
    own = module.__dict__.get("forward")  # an instance-level forward (another library's wrapper) is put back
    module.forward = lambda *a: fn(module, *a)
    try:
        return module(*args)
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own


def _target_index(batch: Batch, label_mask: torch.Tensor | None, prefix_len: int | None,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, columns, target ids) of the scored positions, on `device`.

    Planned on the host copy of the labels and the host label mask, so the `nonzero` (whose output size
    depends on the data) never waits for the GPU; only a batch built on the device itself pays that sync.
    """
    labels = batch.host_labels if batch.host_labels is not None else batch.labels
    # Token t predicts token t+1: the label of position t+1 is scored from hidden state t.
    shifted = labels[:, 1:prefix_len]
    select = shifted != IGNORE
    if label_mask is not None:
        select = select & label_mask[:, 1:prefix_len].to(select.device)
    rows, cols = select.nonzero(as_tuple=True)
    targets = shifted[rows, cols]
    return tuple(t.to(device, non_blocking=True) for t in (rows, cols, targets))  # type: ignore[return-value]


def token_losses(model: torch.nn.Module, batch: Batch, label_mask: torch.Tensor | None = None,
                 prefix_len: int | None = None, ce_chunk: int = 0) -> TokenLosses:
    """Cross-entropy of every target token in `batch`.

    `label_mask` (B, T) restricts the targets further (token_batch windows; pass the host tensor);
    `prefix_len` runs the forward only over the first `prefix_len` positions, which is exact for any
    window whose labels all lie inside that prefix (causal attention never looks ahead). `ce_chunk` is
    `training.ce_chunk_tokens`.
    """
    input_ids, attn, pos = batch.input_ids, batch.attention_mask, batch.position_ids
    if prefix_len is not None:
        input_ids, pos = input_ids[:, :prefix_len], pos[:, :prefix_len]
        attn = attn[..., :prefix_len, :prefix_len] if attn.dim() == 4 else attn[:, :prefix_len]
    rows, cols, targets = _target_index(batch, label_mask, prefix_len, input_ids.device)
    decoder, head, transform = _decoder_and_head(model)
    hidden = decoder(input_ids=input_ids, attention_mask=attn, position_ids=pos, use_cache=False)[0]
    losses = head_losses(head, hidden[rows, cols], targets, transform, ce_chunk)
    return TokenLosses(losses=losses, rows=rows, positions=cols + 1, targets=targets)


@dataclass
class LossStep:
    """What one micro-batch contributes: the weighted-loss sum to backpropagate and its telemetry inputs."""

    weighted_sum: torch.Tensor
    """sum(w * L) with graph; divide by the window's `nonzero` total before stepping."""
    nonzero: torch.Tensor
    """Number of target tokens whose weight is > 0 (no graph)."""
    tokens: TokenLosses
    weights: torch.Tensor
    special: torch.Tensor | None = None
    """Per target token: a special (structural) token; None when no special ids were given."""


def loss_step(model: torch.nn.Module, batch: Batch, params: NlirgParams,
              label_mask: torch.Tensor | None = None, prefix_len: int | None = None, ce_chunk: int = 0,
              special_ids: torch.Tensor | None = None) -> LossStep:
    """The one place the training loss is computed: per-token CE, NLIRG weights, weighted sum.

    `special_ids` (sorted, on the device: `special_tokens.special_ids`) marks the structural targets, which
    `nlirg.protect_special_tokens` trains with weight 1."""
    tokens = token_losses(model, batch, label_mask, prefix_len, ce_chunk)
    special = special_mask(tokens.targets, special_ids)
    weights = protect_weights(nlirg_weights(tokens.losses, params), special, params)
    weighted_sum, nonzero = weighted_loss_sum(tokens.losses, weights)
    return LossStep(weighted_sum=weighted_sum, nonzero=nonzero, tokens=tokens, weights=weights, special=special)
