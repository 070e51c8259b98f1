"""Structural tokens of the chat template (end of turn, EOS, role markers) among the targets.

`nlirg.protect_special_tokens` trains them with weight 1 and keeps them out of the zones: their loss says how
the template is written, not whether the content is noise (an end-of-turn token after a Chinese answer can sit
at loss 20 under a model that rarely ends there). The mask is `torch.isin` on the device against a small
sorted tensor of the tokenizer's special ids: no host sync. `ZeroedSpecialWatch` says once when a large share of
the zeroed tokens are special tokens (the option is off, or the weighting zeroes them otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainer_core.config import NlirgParams
from trainer_core.live.protocol import SPECIAL_ZEROED_PREFIX

WARN_SHARE = 0.05
"""Above this share of the zeroed tokens being special tokens, the trainer says so (once)."""
WARN_MIN_TOKENS = 3
"""...and only once at least this many special tokens were zeroed (one stray token is not a pattern)."""
NOTE_PREFIX = SPECIAL_ZEROED_PREFIX
"""The `log` event's message starts with this (the workbench header shows the line)."""


def special_ids(tokenizer, device: torch.device | str = "cpu") -> torch.Tensor:
    """The tokenizer's special token ids, sorted, as an int64 tensor on `device` (empty when it has none)."""
    ids = sorted({int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []) if i is not None and i >= 0})
    return torch.tensor(ids, dtype=torch.long, device=device)


def special_mask(targets: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor | None:
    """Per target token: is it a special token? None when there are no special ids."""
    if ids is None or ids.numel() == 0:
        return None
    return torch.isin(targets, ids.to(targets.device))


def protected(params: NlirgParams) -> bool:
    """True when special tokens leave the zones: the option is on and the weighting has zones (nlirg)."""
    return params.protect_special_tokens and params.effective_weighting == "nlirg"


def protect_weights(weights: torch.Tensor, special: torch.Tensor | None, params: NlirgParams) -> torch.Tensor:
    """Weight 1 for special tokens when `protected(params)`; the weights unchanged otherwise."""
    if special is None or not protected(params):
        return weights
    return torch.where(special, torch.ones_like(weights), weights)


@dataclass
class ZeroedSpecialWatch:
    """Counts zeroed special tokens per id over the run and makes the one warning when they are a large share."""

    ids: list[int]
    names: list[str]
    zeroed_total: int = 0
    special_zeroed: list[int] | None = None
    warned: bool = False

    @classmethod
    def for_tokenizer(cls, tokenizer, ids: torch.Tensor) -> ZeroedSpecialWatch:
        as_list = ids.tolist()
        return cls(as_list, [str(tokenizer.convert_ids_to_tokens(i)) for i in as_list], special_zeroed=[0] * len(ids))

    def add(self, zeroed: int, special_zeroed: list[int]) -> str | None:
        """Fold one interval's counts (all zeroed tokens, zeroed special tokens per id); return the warning the
        first time the share crosses WARN_SHARE, else None."""
        self.zeroed_total += zeroed
        counts = self.special_zeroed or [0] * len(special_zeroed)
        self.special_zeroed = [a + b for a, b in zip(counts, special_zeroed, strict=True)]
        n = sum(self.special_zeroed)
        if self.warned or n < WARN_MIN_TOKENS or n <= WARN_SHARE * self.zeroed_total:
            return None
        self.warned = True
        worst = max(range(len(self.ids)), key=lambda i: self.special_zeroed[i])
        return (f"{NOTE_PREFIX}{n} of {self.zeroed_total} zeroed tokens ({n / self.zeroed_total:.0%}) are special "
                f"tokens, most often {self.names[worst]!r} (id {self.ids[worst]}): NLIRG gives them weight 0, so the "
                "model does not learn them (an end-of-turn token: when to stop); set nlirg.protect_special_tokens: "
                "true to train them with weight 1")
