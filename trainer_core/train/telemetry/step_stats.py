"""Step telemetry reduced on the device and moved to the host once per logged step.

Everything a `step` event needs (zone counts, gradient share per zone, the loss histogram, sums for
the mean losses, per-sample flags) accumulates in a few device tensors; `sync()` is the single
host transfer of a logging interval.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field

import psutil
import torch

from trainer_core.config import NlirgParams
from trainer_core.train.loss.special_tokens import protected
from trainer_core.train.loss.weights import zone_of

HIST_BIN = 0.5
HIST_BINS = 40  # 0..20 in 0.5 steps, plus one overflow bin
# Layout of the flat accumulator: zone counts, zone sum(w*L), histogram, then scalar sums.
_ZC, _ZW, _H = 0, 4, 8
_SUM_L, _SUM_WL, _N, _NZ = _H + HIST_BINS + 1, _H + HIST_BINS + 2, _H + HIST_BINS + 3, _H + HIST_BINS + 4
_SP = _NZ + 1  # special (structural) target tokens; then one slot per special id: its zeroed tokens
_SIZE = _SP + 1


@dataclass
class IntervalStats:
    """Host-side values of one logging interval."""

    zone_counts: list[int]
    zone_weighted: list[float]
    loss_hist: list[int]
    sum_loss: float
    sum_weighted: float
    target_tokens: int
    nonzero_tokens: int
    rows: list[tuple[int, float, int, int, float]] = field(default_factory=list)
    """Per sample row seen: (sample_id, sum loss, tokens, zeroed tokens, max loss)."""
    special_tokens: int = 0
    """Special (structural) target tokens; kept out of zone_counts when nlirg.protect_special_tokens applies."""
    special_zeroed: list[int] = field(default_factory=list)
    """Per special id (in `Telemetry.special_ids` order): its tokens given weight 0."""

    @property
    def loss(self) -> float:
        return self.sum_loss / self.target_tokens if self.target_tokens else float("nan")

    @property
    def weighted_loss(self) -> float:
        return self.sum_weighted / self.nonzero_tokens if self.nonzero_tokens else 0.0

    @property
    def zone_grad_share(self) -> list[float]:
        total = sum(self.zone_weighted)
        return [z / total if total > 0 else 0.0 for z in self.zone_weighted]


class Telemetry:
    """Device-side accumulator for one logging interval."""

    def __init__(self, device: torch.device, special_ids: torch.Tensor | None = None):
        self.device = device
        self.special_ids = special_ids if special_ids is not None else torch.zeros(0, dtype=torch.long)
        self.special_ids = self.special_ids.to(device)
        self.acc = torch.zeros(_SIZE + len(self.special_ids), dtype=torch.float64, device=device)
        self._rows: list[torch.Tensor] = []
        self._row_ids: list[list[int]] = []
        self._kept: list[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                               torch.Tensor | None]] = []

    def add(self, losses: torch.Tensor, weights: torch.Tensor, rows: torch.Tensor, sample_ids: list[int],
            params: NlirgParams, keep_tokens: bool = True, positions: torch.Tensor | None = None,
            special: torch.Tensor | None = None, targets: torch.Tensor | None = None) -> None:
        """Fold one micro-batch's per-token losses into the interval (no host sync).

        `positions` (in-row position of each token) lets `token_detail` place the tokens of a sample that
        arrives in several parts (token_batch windows). `special` (per token: a special token) and `targets`
        (the token ids) count the structural tokens apart: out of the zones when `protected(params)`.
        """
        L = losses.detach().float()
        w = weights.detach().float()
        zones = zone_of(L, params)
        acc = self.acc
        # Counts go through index_add_ into the fixed slots: torch.bincount reads its input's max back to the
        # host to size its output, a GPU sync per micro-batch.
        ones = torch.ones_like(L, dtype=acc.dtype)
        in_zones = ones
        if special is not None:
            acc[_SP] += special.sum()
            if protected(params):
                in_zones = (~special).to(acc.dtype)
            if targets is not None and len(self.special_ids):
                slot = torch.searchsorted(self.special_ids, targets).clamp(max=len(self.special_ids) - 1)
                acc[_SIZE:].index_add_(0, slot, (special & (w == 0)).to(acc.dtype))
        acc[_ZC:_ZC + 4].index_add_(0, zones, in_zones)
        acc[_ZW:_ZW + 4].index_add_(0, zones, (w * L).to(acc.dtype) * in_zones)
        bins = torch.clamp((L / HIST_BIN).long(), 0, HIST_BINS)
        acc[_H:_H + HIST_BINS + 1].index_add_(0, bins, ones)
        acc[_SUM_L] += L.sum()
        acc[_SUM_WL] += (w * L).sum()
        acc[_N] += L.numel()
        acc[_NZ] += (w > 0).sum()
        n_rows = len(sample_ids)
        per_row = torch.zeros(n_rows, 4, dtype=torch.float32, device=L.device)
        per_row[:, 0].index_add_(0, rows, L)
        per_row[:, 1].index_add_(0, rows, torch.ones_like(L))
        per_row[:, 2].index_add_(0, rows, (zones == 3).float() * in_zones.float())
        per_row[:, 3] = torch.zeros(n_rows, device=L.device).scatter_reduce(0, rows, L, "amax", include_self=False)
        self._rows.append(per_row)
        self._row_ids.append(list(sample_ids))
        if keep_tokens:
            self._kept.append((list(sample_ids), rows, L, w, zones, positions))

    def sync(self) -> IntervalStats:
        """Move the interval to the host (the one sync per logged step) and reset the accumulator."""
        values = self.acc.tolist()  # host sync: once per logged step
        rows: list[tuple[int, float, int, int, float]] = []
        if self._rows:
            table = torch.cat(self._rows).tolist()  # same sync point, small (rows x 4)
            ids = [i for chunk in self._row_ids for i in chunk]
            merged: dict[int, tuple[int, float, int, int, float]] = {}
            for sid, r in zip(ids, table, strict=True):  # one row per sample, even if it came in windows
                old = merged.get(sid, (sid, 0.0, 0, 0, 0.0))
                merged[sid] = (sid, old[1] + r[0], old[2] + int(r[1]), old[3] + int(r[2]), max(old[4], r[3]))
            rows = list(merged.values())
        stats = IntervalStats(
            zone_counts=[int(x) for x in values[_ZC:_ZC + 4]],
            zone_weighted=values[_ZW:_ZW + 4],
            loss_hist=[int(x) for x in values[_H:_H + HIST_BINS + 1]],
            sum_loss=values[_SUM_L],
            sum_weighted=values[_SUM_WL],
            target_tokens=int(values[_N]),
            nonzero_tokens=int(values[_NZ]),
            rows=rows,
            special_tokens=int(values[_SP]),
            special_zeroed=[int(x) for x in values[_SIZE:]],
        )
        self.acc.zero_()
        self._rows.clear()
        self._row_ids.clear()
        return stats

    def token_detail(self, sample_id: int) -> tuple[list[float], list[float], list[int], list[int] | None] | None:
        """Per-token (losses, weights, zones, positions) of a sample seen this interval, all its parts in order;
        positions is None when they were not given (then the tokens are the sample's targets in order).
        Call after `sync` found the sample."""
        parts = [(rows == ids.index(sample_id), L, w, zones, pos)
                 for ids, rows, L, w, zones, pos in self._kept if sample_id in ids]
        if not parts:
            return None
        if any(pos is None for *_, pos in parts):
            parts = parts[:1]  # without positions only a whole sample can be placed: its first sighting
        L, w, z = (torch.cat([part[i + 1][part[0]] for part in parts]) for i in range(3))
        pos = None if parts[0][4] is None else torch.cat([part[4][part[0]] for part in parts]).tolist()
        return L.tolist(), w.tolist(), z.tolist(), pos  # host transfer only for flagged samples

    def drop_tokens(self) -> None:
        self._kept.clear()


def memory_reading(device: torch.device) -> dict[str, int]:
    """Memory now: GPU allocated/reserved/peak on CUDA, process RSS (and peak RSS) on the CPU."""
    if device.type == "cuda":
        return {
            "allocated": torch.cuda.memory_allocated(device),
            "reserved": torch.cuda.memory_reserved(device),
            "peak": torch.cuda.max_memory_allocated(device),
        }
    rss = psutil.Process().memory_info().rss
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"rss": rss, "peak": peak}
