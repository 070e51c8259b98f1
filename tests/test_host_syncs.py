"""No hidden host syncs in the training step: the loss step (forward, fused head, NLIRG weights, backward) and
the telemetry fold run on the `meta` device, where every op whose result size or value the host must read
(`nonzero`, `bincount`, `.item()`, `.all()` in an `if`) raises. On a GPU those are the ops that wait for it.

The batches carry a prepared 4-D mask: given a 2-D padding mask (or none), transformers' own mask preparation
reads it (or the positions) back once per forward, a sync outside this trainer (see `step`'s docstring).
"""

from __future__ import annotations

import pytest
import torch

from tests.test_head_ce import row_batch, small
from trainer_core.config import NlirgParams
from trainer_core.train.loss import step
from trainer_core.train.telemetry.step_stats import Telemetry

META = torch.device("meta")


@pytest.fixture(scope="module")
def meta_model():
    return small(tied=True, lora=True, dtype=torch.float32).to(META)


def meta_batch():
    batch = row_batch(24, 17, 300)
    batch.attention_mask = torch.ones(24, 24, dtype=torch.bool).tril().expand(2, 1, 24, 24).clone()
    return batch.to(META)  # the host copy of the labels travels with the batch


def test_loss_step_backward_and_telemetry_never_read_the_device(meta_model) -> None:
    batch = meta_batch()
    special = torch.tensor([0, 7], device=META)  # nlirg.protect_special_tokens: the mask is built on the device
    out = step.loss_step(meta_model, batch, NlirgParams(), ce_chunk=5, special_ids=special)
    out.weighted_sum.backward()
    assert out.tokens.losses.device == META and out.tokens.losses.shape == (31,)
    assert out.special is not None and out.special.device == META
    assert any(p.grad is not None for p in meta_model.parameters())
    tel = Telemetry(META, special)
    tel.add(out.tokens.losses, out.weights, out.tokens.rows, batch.sample_ids, NlirgParams(),
            positions=out.tokens.positions, special=out.special, targets=out.tokens.targets)


def test_token_batch_window_plans_from_the_host_mask(meta_model) -> None:
    batch = meta_batch()
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[:, 9:14] = True
    out = step.loss_step(meta_model, batch, NlirgParams(), label_mask=mask, prefix_len=20)
    assert out.tokens.losses.shape == (10,)


def test_the_checks_can_fail(meta_model) -> None:
    """Without the host copy of the labels, planning the targets needs the device: meta refuses."""
    batch = meta_batch()
    batch.host_labels = None
    with pytest.raises(NotImplementedError):
        step.loss_step(meta_model, batch, NlirgParams())
    with pytest.raises(NotImplementedError):
        torch.bincount(torch.zeros(3, dtype=torch.long, device=META))
