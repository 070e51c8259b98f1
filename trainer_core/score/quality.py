"""From raw scores (higher is worse, in every mode) to `quality` in [0, 1] (higher is better), and the bands
the summary counts.

quality = 1 / (1 + exp(SLOPE * (z - CENTRE))), where z is the record's robust z-score within the file:
(score - median) / (1.4826 * MAD). A typical record (z = 0) gets 0.99, one at 3 robust standard deviations
0.5, one at 5 0.05. Strictly decreasing in the score, so the order of quality is the order of the scores;
comparable within a file (the median and MAD are the file's), not across files.
"""

from __future__ import annotations

import math
from statistics import median

SLOPE = 1.5
CENTRE = 3.0
MAD_TO_STD = 1.4826
"""MAD of a normal distribution times this is its standard deviation."""
MEAN_AD_TO_STD = 1.2533
"""Mean absolute deviation of a normal distribution times this is its standard deviation."""
BANDS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0))


def robust_scale(scores: list[float], centre: float) -> float:
    """1.4826 MAD; the mean absolute deviation (scaled) when over half the scores tie; 1 when all do."""
    deviations = [abs(s - centre) for s in scores]
    mad = median(deviations) * MAD_TO_STD
    if mad > 0:
        return mad
    mean_ad = sum(deviations) / len(deviations) * MEAN_AD_TO_STD
    return mean_ad if mean_ad > 0 else 1.0


def qualities(scores: list[float]) -> list[float]:
    if not scores:
        return []
    centre = median(scores)
    scale = robust_scale(scores, centre)
    return [_logistic(SLOPE * ((s - centre) / scale - CENTRE)) for s in scores]


def _logistic(x: float) -> float:
    """1 / (1 + e^x) without overflow."""
    if x >= 0:
        e = math.exp(-x)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(x))


def band_counts(values: list[float]) -> dict[str, int]:
    """Records per quality band, worst band first; the last band includes 1.0."""
    counts = {f"{lo:.1f}-{hi:.1f}": 0 for lo, hi in BANDS}
    for q in values:
        for lo, hi in BANDS:
            if lo <= q < hi or (hi == 1.0 and q == 1.0):
                counts[f"{lo:.1f}-{hi:.1f}"] += 1
                break
    return counts
