"""Report maths against values computed by hand: mean ± std, Student's t quantile, Welch's interval."""

from __future__ import annotations

import math

import pytest

from trainer_core.evaluate.report import build_report, differences, render_markdown
from trainer_core.evaluate.stats import paired_difference, sample_std, summarise, t_cdf, t_quantile, welch_difference

# Two-sided 95% critical values from a printed t table.
T_TABLE_975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 10: 2.2281, 30: 2.0423}


@pytest.mark.parametrize("df,expected", sorted(T_TABLE_975.items()))
def test_t_quantile_matches_the_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_for_fractional_df_integrates_the_density():
    """No table has df = 2.941; integrate the t density to the quantile (Simpson) and find 0.975."""
    df = 50 / 17
    q = t_quantile(0.975, df)
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    n = 20_000
    h = q / n
    f = [c * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2) for i in range(n + 1)]
    area = h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))
    assert 0.5 + area == pytest.approx(0.975, abs=1e-7)
    assert t_cdf(-q, df) == pytest.approx(0.025, abs=1e-9)
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)  # the normal limit


def test_mean_and_sample_std():
    s = summarise([1.0, None, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == 1.0 and s["n"] == 3 and s["values"] == [1.0, None, 2.0, 3.0]
    assert sample_std([5.0]) is None


def test_welch_interval_by_hand():
    # arm 3, 4, 5 vs reference 1, 2, 3: diff 2; both variances 1, n 3 -> se = sqrt(2/3), df = 4 exactly.
    d = welch_difference([3, 4, 5], [1, 2, 3])
    half = 2.776445 * math.sqrt(2 / 3)
    assert d.diff == 2 and d.df == pytest.approx(4.0)
    assert (d.low, d.high) == (pytest.approx(2 - half, abs=1e-5), pytest.approx(2 + half, abs=1e-5))
    assert not d.excludes_zero and d.relative == pytest.approx(1.0)
    # Unequal spreads: arm 2, 4, 6 (var 4) vs 1, 2, 3 (var 1): se^2 = 5/3, df = (5/3)^2 / ((4/3)^2/2 + (1/3)^2/2)
    d = welch_difference([2, 4, 6], [1, 2, 3])
    assert d.df == pytest.approx(50 / 17)
    assert d.high - d.diff == pytest.approx(t_quantile(0.975, 50 / 17) * math.sqrt(5 / 3))
    # A clear difference excludes zero.
    assert welch_difference([10.0, 10.1, 9.9], [1.0, 1.1, 0.9]).excludes_zero


def test_welch_edge_cases():
    assert welch_difference([], [1.0]) is None
    one = welch_difference([2.0], [1.0, 1.5])
    assert one.diff == pytest.approx(0.75) and one.low is None  # one value: no interval
    flat = welch_difference([2.0, 2.0], [1.0, 1.0])
    assert (flat.low, flat.high, flat.df) == (1.0, 1.0, None)


def _spec(arms=("plain", "nlirg"), repeats=3):
    runs = [{"name": f"{a}-r{i}", "arm": a, "repeat": i, "seed": 42 + i, "run_dir": f"/x/{a}-r{i}"}
            for i in range(repeats) for a in arms]
    return {"name": "exp", "command": "nlirg ab", "seeds": [42, 43, 44], "arms": list(arms), "reference_arm": "plain",
            "base": "builtin:tiny", "model": "builtin:tiny", "runs": runs}


def test_report_json_layout_and_numbers():
    values = {"plain": [2.0, 2.2, 2.4], "nlirg": [1.8, 1.9, 2.0]}
    results = {f"{arm}-r{i}": {"eval_loss": v, "repetition_3gram": 0.1 * (i + 1)}
               for arm, vs in values.items() for i, v in enumerate(vs)}
    results["nlirg-r2"] = None  # not evaluated yet
    report = build_report(_spec(), results, {"eval_loss": 3.0})
    plain, nlirg = report["arms"]["plain"], report["arms"]["nlirg"]
    assert plain["runs"] == ["/x/plain-r0", "/x/plain-r1", "/x/plain-r2"] and plain["seeds"] == [42, 43, 44]
    assert plain["eval_loss"]["mean"] == pytest.approx(2.2) and plain["eval_loss"]["std"] == pytest.approx(0.2)
    assert nlirg["eval_loss"]["values"] == [1.8, 1.9, None] and nlirg["eval_loss"]["mean"] == pytest.approx(1.85)
    diff = report["differences"]["nlirg"]["eval_loss"]
    # By hand: diff -0.35; var 0.005/2 + 0.04/3; df = se^4 / ((0.0025)^2/1 + (0.04/3)^2/2)
    va, vr = 0.005 / 2, 0.04 / 3
    assert diff["diff"] == pytest.approx(-0.35)
    assert diff["df"] == pytest.approx((va + vr) ** 2 / (va ** 2 / 1 + vr ** 2 / 2))
    assert diff["method"] == "welch" and diff["relative"] == pytest.approx(-0.35 / 2.2)
    assert report["evaluated"] == 5 and report["planned"] == 6 and not report["complete"]
    assert report["base"]["metrics"]["eval_loss"] == 3.0
    text = render_markdown(report)
    assert "| eval_loss | lower | 3.0000 | 2.2000 ± 0.2000 | 1.8500 ± 0.0707 | -0.3500 [" in text
    assert "incomplete" in text and "Welch" in text


def test_differences_skip_the_reference_arm():
    arms = {a: {k: summarise([1.0, 2.0]) for k in ("eval_loss",)} for a in ("plain", "dft")}
    out = differences({a: {**v, **{k: summarise([]) for k in _other_keys()}} for a, v in arms.items()}, "plain")
    assert list(out) == ["dft"] and out["dft"]["eval_loss"]["diff"] == 0.0


def _other_keys():
    from trainer_core.evaluate.report import METRIC_KEYS

    return [k for k in METRIC_KEYS if k != "eval_loss"]


def test_the_paired_interval_decides_the_star():
    """Seeds move both arms alike (42: low, 44: high): Welch's interval spans 0, the per-seed differences
    (-0.1, -0.12, -0.08) do not; the paired column carries the `*`."""
    values = {"plain": [2.0, 2.4, 2.8], "nlirg": [1.9, 2.28, 2.72]}
    results = {f"{arm}-r{i}": {"eval_loss": v} for arm, vs in values.items() for i, v in enumerate(vs)}
    report = build_report(_spec(), results, None, "label set (yes, no): answer states the reference label")
    d = report["differences"]["nlirg"]["eval_loss"]
    assert not d["excludes_zero"] and d["paired"]["method"] == "paired" and d["significant"]
    half = 4.302653 * 0.02 / math.sqrt(3)  # t(0.975, 2) * sd of the differences / sqrt(3)
    assert d["paired"]["diff"] == pytest.approx(-0.1) and d["paired"]["df"] == 2
    assert d["paired"]["high"] == pytest.approx(-0.1 + half, abs=1e-5)
    row = next(line for line in render_markdown(report).splitlines() if line.startswith("| eval_loss"))
    welch_cell, paired_cell = row.split(" | ")[-2:]
    assert "*" not in welch_cell and paired_cell.count("*") == 1
    assert "domain_accuracy: label set (yes, no)" in render_markdown(report)


def test_paired_edge_cases():
    assert paired_difference([]) is None
    assert paired_difference([(2.0, 1.0)]).low is None  # one pair: no interval
    flat = paired_difference([(2.0, 1.0), (3.0, 2.0)])
    assert (flat.low, flat.high, flat.df, flat.excludes_zero) == (1.0, 1.0, None, True)
