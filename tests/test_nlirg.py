"""NLIRG weights, zones and the reduction, exactly as docs/design.md §5 defines them."""

import math

import pytest
import torch

from trainer_core.config import NlirgParams
from trainer_core.train.loss.weights import EPS, nlirg_weights, weighted_loss_sum, zone_of

LOSSES = [0, 0.5, 1, 1.45, 2, 3, 5, 6.6, 10, 14.9, 15, 20]
EXPECTED = [0.1151, 0.2333, 0.4158, 0.6047, 0.7958, 0.9552, 0.7685, 0.4013, 0.02188, 1.667e-4, 0, 0]


def test_default_weights_match_the_reference_table():
    w = nlirg_weights(torch.tensor(LOSSES))
    for got, want in zip(w.tolist(), EXPECTED, strict=True):
        assert got == pytest.approx(want, rel=2e-3, abs=1e-7)


def test_weights_follow_the_formula_including_eps_and_min_lr():
    p = NlirgParams()
    L = 2.0
    assert nlirg_weights(torch.tensor([L])).item() == pytest.approx(1 / (1 + math.exp(-1.7 * (L - 1.2))) + EPS)
    L = 8.0
    want = 1 / (1 + math.exp(1.0 * (L - 6.2))) + EPS + p.min_lr
    assert nlirg_weights(torch.tensor([L])).item() == pytest.approx(want, rel=1e-6)


def test_every_parameter_is_configurable():
    base = nlirg_weights(torch.tensor([5.0])).item()
    moved = nlirg_weights(torch.tensor([5.0]), NlirgParams(fall_center=4.0, fall_slope=2.0)).item()
    assert moved == pytest.approx(1 / (1 + math.exp(2.0 * (5.0 - 4.0))) + EPS + 5e-8, rel=1e-6)
    assert moved < base
    assert nlirg_weights(torch.tensor([16.0]), NlirgParams(loss_deadline=18.0)).item() > 0
    assert nlirg_weights(torch.tensor([1.0]), NlirgParams(max_lr=2.0)).item() == pytest.approx(2 * 0.4158, rel=2e-3)


def test_zones_use_the_seed_table_and_bounds_are_inclusive_as_documented():
    zones = zone_of(torch.tensor([0.0, 1.45, 1.46, 6.59, 6.6, 14.99, 15.0, 30.0])).tolist()
    assert zones == [0, 0, 1, 1, 2, 2, 3, 3]
    assert zone_of(torch.tensor([2.0]), NlirgParams(easy_max=2.5)).item() == 0


def test_weights_are_float32_and_detached_for_bf16_input():
    L = torch.tensor([0.5, 2.0, 7.0], dtype=torch.bfloat16, requires_grad=True)
    w = nlirg_weights(L)
    assert w.dtype == torch.float32 and not w.requires_grad


def test_plain_and_dft_weightings():
    L = torch.tensor([0.1, 3.0, 20.0])
    assert nlirg_weights(L, NlirgParams(weighting="plain")).tolist() == [1.0, 1.0, 1.0]
    assert nlirg_weights(L, NlirgParams(weighting="dft")).tolist() == pytest.approx(torch.exp(-L).tolist())
    assert nlirg_weights(L, NlirgParams(enabled=False)).tolist() == [1.0, 1.0, 1.0]


def test_reduction_divides_by_tokens_with_nonzero_weight():
    L = torch.tensor([1.0, 2.0, 16.0])
    w = nlirg_weights(L)
    total, count = weighted_loss_sum(L, w)
    assert count.item() == 2
    assert (total / count).item() == pytest.approx((w[0] * 1.0 + w[1] * 2.0).item() / 2)


def test_gradient_is_weighted_per_token():
    """Autograd through the NLIRG loss equals the gradient of a hand-weighted loss with constant weights."""
    torch.manual_seed(0)
    logits = torch.randn(6, 11, requires_grad=True)
    targets = torch.tensor([1, 2, 3, 4, 5, 6])
    with torch.no_grad():
        logits[0, 1] += 8  # an easy token
        logits[5, :] = 0
        logits[5, 0] = 40  # a token with loss >= 15: zeroed
    L = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    w = nlirg_weights(L)
    total, count = weighted_loss_sum(L, w)
    (total / count).backward()
    got = logits.grad.clone()

    logits2 = logits.detach().clone().requires_grad_(True)
    L2 = torch.nn.functional.cross_entropy(logits2, targets, reduction="none")
    hand = [float(x) for x in w]  # plain Python constants: no graph through the weights
    loss = sum(h * tok_loss for h, tok_loss in zip(hand, L2, strict=True)) / sum(1 for h in hand if h > 0)
    loss.backward()
    assert torch.allclose(got, logits2.grad, atol=1e-6)
    assert torch.count_nonzero(got[5]) == 0  # the zeroed token contributes nothing
    # and it differs from plain CE, so the weighting really acted
    logits3 = logits.detach().clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(logits3, targets).backward()
    assert not torch.allclose(got, logits3.grad, atol=1e-4)


def test_all_zeroed_batch_gives_zero_gradient_not_nan():
    logits = torch.zeros(3, 5, requires_grad=True)
    L = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2]), reduction="none")
    w = nlirg_weights(L, NlirgParams(easy_max=0.1, hard_min=0.2, loss_threshold=0.25, loss_deadline=0.3))
    total, count = weighted_loss_sum(L, w)
    (total / count.clamp(min=1)).backward()
    assert count.item() == 0 and torch.all(logits.grad == 0)
