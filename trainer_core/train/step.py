"""One loss step: forward, per-token cross-entropy on target positions only, NLIRG weighting.

The LM head is applied only to the positions that have a label (and, for token_batch, only to the
window's positions), so full-vocabulary logits are never materialised for prompt tokens, and the
float32 copy of the logits lives one chunk at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainer_core.config import NlirgParams
from trainer_core.train.data import IGNORE, Batch
from trainer_core.train.nlirg import nlirg_weights, weighted_loss_sum

CE_CHUNK = 4096
"""Target tokens per LM-head/cross-entropy chunk: bounds the float32 logits to CE_CHUNK x vocab."""


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


def _decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, float, float]:
    causal_lm = _unwrap(model)
    decoder = causal_lm.get_decoder() if hasattr(causal_lm, "get_decoder") else causal_lm.model
    head = causal_lm.get_output_embeddings()
    cfg = causal_lm.config
    softcap = float(getattr(cfg, "final_logit_softcapping", None) or 0.0)
    scale = float(getattr(cfg, "logits_scaling", None) or 1.0)
    return decoder, head, softcap, scale


def _head_ce(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, softcap: float,
             scale: float) -> torch.Tensor:
    """LM head + cross-entropy over selected hidden states, chunked so float32 logits stay small."""
    out = []
    for start in range(0, hidden.shape[0], CE_CHUNK):
        logits = head(hidden[start : start + CE_CHUNK]).float()
        if scale != 1.0:
            logits = logits / scale
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        out.append(F.cross_entropy(logits, targets[start : start + CE_CHUNK], reduction="none"))
    return torch.cat(out) if len(out) > 1 else out[0]


def token_losses(model: torch.nn.Module, batch: Batch, label_mask: torch.Tensor | None = None,
                 prefix_len: int | None = None) -> TokenLosses:
    """Cross-entropy of every target token in `batch`.

    `label_mask` (B, T) restricts the targets further (token_batch windows); `prefix_len` runs the
    forward only over the first `prefix_len` positions, which is exact for any window whose labels
    all lie inside that prefix (causal attention never looks ahead).
    """
    input_ids, labels, attn, pos = batch.input_ids, batch.labels, batch.attention_mask, batch.position_ids
    if prefix_len is not None:
        input_ids, labels, pos = input_ids[:, :prefix_len], labels[:, :prefix_len], pos[:, :prefix_len]
        attn = attn[..., :prefix_len, :prefix_len] if attn.dim() == 4 else attn[:, :prefix_len]
        if label_mask is not None:
            label_mask = label_mask[:, :prefix_len]
    decoder, head, softcap, scale = _decoder_and_head(model)
    hidden = decoder(input_ids=input_ids, attention_mask=attn, position_ids=pos, use_cache=False)[0]
    # Token t predicts token t+1: the label of position t+1 is scored from hidden state t.
    shifted = labels[:, 1:]
    select = shifted != IGNORE
    if label_mask is not None:
        select = select & label_mask[:, 1:]
    rows, cols = select.nonzero(as_tuple=True)
    targets = shifted[rows, cols]
    losses = _head_ce(head, hidden[rows, cols], targets, softcap, scale)
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


def loss_step(model: torch.nn.Module, batch: Batch, params: NlirgParams,
              label_mask: torch.Tensor | None = None, prefix_len: int | None = None) -> LossStep:
    """The one place the training loss is computed: per-token CE, NLIRG weights, weighted sum."""
    tokens = token_losses(model, batch, label_mask, prefix_len)
    weights = nlirg_weights(tokens.losses, params)
    weighted_sum, nonzero = weighted_loss_sum(tokens.losses, weights)
    return LossStep(weighted_sum=weighted_sum, nonzero=nonzero, tokens=tokens, weights=weights)
