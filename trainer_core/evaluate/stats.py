"""Statistics of an experiment: mean ± std over repeats and Welch's 95% interval of a difference of means.

Student's t quantile is computed here (regularised incomplete beta by its continued fraction, inverted by
bisection) so the workbench needs no scipy. Pure Python, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_TINY = 1e-300
_EPS = 1e-15


def finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def sample_std(values: Sequence[float]) -> float | None:
    """Standard deviation with n - 1 in the denominator; None for fewer than 2 values."""
    if len(values) < 2:
        return None
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def summarise(values: Sequence[float | None]) -> dict[str, object]:
    """`{"mean", "std", "values", "n"}` over the finite values; `values` keeps every run's entry (None too)."""
    kept = finite(values)
    return {"mean": mean(kept) if kept else None, "std": sample_std(kept), "values": list(values), "n": len(kept)}


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz evaluation)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 1000):
        for aa in (m * (b - m) * x / ((qam + 2 * m) * (a + 2 * m)),
                   -(a + m) * (qab + m) * x / ((a + 2 * m) * (qap + 2 * m))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` (> 0, not necessarily whole) degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value with P(T <= t) = p, found by bisection on `t_cdf` to about 1e-12."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


@dataclass
class Difference:
    """mean(arm) - mean(reference) with Welch's interval; `low`/`high` are None when it cannot be formed."""

    diff: float
    low: float | None
    high: float | None
    df: float | None
    relative: float | None
    """diff / |mean(reference)|: the change as a share of the reference (None when the reference mean is 0)."""
    method: str = "welch"

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def welch_difference(arm: Sequence[float], reference: Sequence[float], level: float = 0.95) -> Difference | None:
    """Welch's t interval for mean(arm) - mean(reference) (unequal variances, Welch–Satterthwaite df).

    None unless both groups have a value; no interval unless both have two or more. Two groups without any
    spread give the difference as a point (an interval of width 0, df None).
    """
    if not arm or not reference:
        return None
    ma, mr = mean(arm), mean(reference)
    diff = ma - mr
    relative = diff / abs(mr) if mr else None
    if len(arm) < 2 or len(reference) < 2:
        return Difference(diff, None, None, None, relative)
    va, vr = sample_std(arm) ** 2 / len(arm), sample_std(reference) ** 2 / len(reference)  # type: ignore[operator]
    if va + vr == 0.0:
        return Difference(diff, diff, diff, None, relative)
    df = (va + vr) ** 2 / (va ** 2 / (len(arm) - 1) + vr ** 2 / (len(reference) - 1))
    half = t_quantile(0.5 + level / 2.0, df) * math.sqrt(va + vr)
    return Difference(diff, diff - half, diff + half, df, relative)


def paired_difference(pairs: Sequence[tuple[float, float]], level: float = 0.95) -> Difference | None:
    """The mean of per-seed differences (arm - reference) with the paired t interval (df = n - 1).

    Seeds pair the runs of two arms (same data order, same initial weights), so the seed's own effect cancels and
    the interval is narrower than Welch's when the seeds move both arms alike. None without a pair; no interval
    with one pair; pairs that all differ by the same amount give that amount as a point (width 0, df None).
    """
    if not pairs:
        return None
    diffs = [a - r for a, r in pairs]
    diff = mean(diffs)
    ref_mean = mean([r for _, r in pairs])
    relative = diff / abs(ref_mean) if ref_mean else None
    if len(diffs) < 2:
        return Difference(diff, None, None, None, relative, "paired")
    sd = sample_std(diffs) or 0.0
    if sd == 0.0:
        return Difference(diff, diff, diff, None, relative, "paired")
    df = len(diffs) - 1
    half = t_quantile(0.5 + level / 2.0, df) * sd / math.sqrt(len(diffs))
    return Difference(diff, diff - half, diff + half, df, relative, "paired")
