"""Is the model still made of numbers? Checked before a checkpoint or the final model is written: a checkpoint
of NaN weights looks like a way back but every resume from it fails again, so none is ever written."""

from __future__ import annotations

from collections.abc import Callable

import torch


def held_values(p: torch.Tensor) -> torch.Tensor:
    """The values this rank really holds: under ZeRO-3 a partitioned parameter is an empty placeholder between
    forwards and its numbers live in this rank's shard (`ds_tensor`); any other tensor holds its own."""
    shard = getattr(p, "ds_tensor", None)
    return shard if shard is not None else p


def non_finite_parameters(model: torch.nn.Module, device: torch.device,
                          reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> list[str]:
    """Names of the trainable parameters holding NaN or an infinity (empty when all are finite).

    Reduced on the device, one flag per tensor, and read back in one host sync: a save's cost, never a step's.
    `reduce` sums the flags over ranks (`backend.all_reduce_sum`): under ZeRO-3 each rank sees only its own shard,
    and a NaN in any rank's shard must stop the save on every rank, or the ranks would part at its collectives.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        return []
    # A shard may sit on the CPU (ZeRO-3 offload) while the collective needs the backend's device.
    flags = torch.stack([(~torch.isfinite(held_values(p).detach()).all()).to(device, torch.float32)
                         for _, p in named])
    bad = reduce(flags).nonzero().flatten().tolist()  # host sync: once per save
    return [named[i][0] for i in bad]
