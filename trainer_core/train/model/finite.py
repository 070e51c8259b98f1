"""Is the model still made of numbers? Checked before a checkpoint or the final model is written: a checkpoint
of NaN weights looks like a way back but every resume from it fails again, so none is ever written."""

from __future__ import annotations

import torch


def non_finite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the trainable parameters holding NaN or an infinity (empty when all are finite).

    Reduced on the device, one flag per tensor, and read back in one host sync: a save's cost, never a step's.
    Under ZeRO-3 a rank holds empty placeholders and sees its own shard's view only (all finite here).
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        return []
    flags = torch.stack([~torch.isfinite(p.detach()).all() for _, p in named])
    bad = flags.nonzero().flatten().tolist()  # host sync: once per save
    return [named[i][0] for i in bad]
