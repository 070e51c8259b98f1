"""Tables and reports: one evaluation as readable lines, an experiment as `report.json` and `report.md`.

Torch-free. Per arm: mean ± std over repeats; per arm but the reference (`plain`): the difference of means
with Welch's 95% interval (stats.welch_difference) and the mean of per-seed differences with the paired t
interval (stats.paired_difference), so a reader sees whether a difference is noise. The paired interval decides
the `*` (`significant`): repeats share their seed across arms, so pairing is the test the design calls for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from trainer_core.evaluate.stats import Difference, finite, paired_difference, summarise, welch_difference


@dataclass(frozen=True)
class Metric:
    key: str
    better: str
    """`lower` or `higher`: which way is an improvement."""
    label: str


METRICS = (
    Metric("eval_loss", "lower", "domain eval loss (mean CE of answer tokens)"),
    Metric("eval_weighted_loss", "lower", "domain eval loss, NLIRG-weighted"),
    Metric("domain_accuracy", "higher", "domain answers judged right (the rule: report.md, evaluate.md)"),
    Metric("domain_contains", "higher", "domain answers containing the reference"),
    Metric("domain_exact_match", "higher", "domain answers equal to the reference"),
    Metric("general_ppl", "lower", "perplexity on general text"),
    Metric("general_ppl_ratio", "lower", "general perplexity / base model's (1 = kept)"),
    Metric("general_accuracy", "higher", "general answers containing the reference"),
    Metric("general_exact_match", "higher", "general answers equal to the reference"),
    Metric("repetition_3gram", "lower", "repeated 3-grams within an answer"),
    Metric("distinct_2", "higher", "distinct 2-grams over all answers"),
    Metric("json_valid_rate", "higher", "valid JSON where the reference is JSON"),
    Metric("hit_limit_rate", "lower", "answers cut at max_new_tokens"),
    Metric("loss_fluctuation", "lower", "std of successive step-loss differences"),
)
METRIC_KEYS = tuple(metric.key for metric in METRICS)


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def eval_table(result: dict[str, Any]) -> list[str]:
    """`nlirg eval`'s printed table: every metric with its value and meaning."""
    rows = [(metric.key, fmt(result["metrics"].get(metric.key)), f"{metric.better} is better; {metric.label}")
            for metric in METRICS if metric.key in result["metrics"]]
    width = max((len(r[0]) for r in rows), default=6)
    counts = result.get("counts", {})
    head = (f"{result['target']['spec']}: {counts.get('domain_items', 0)} domain items, "
            f"{counts.get('general_items', 0)} general instructions, {counts.get('general_texts', 0)} general texts")
    return [head, *(f"  {k.ljust(width)}  {v:>10}  {note}" for k, v, note in rows)]


# ------------------------------------------------------------------------------------------ experiments
def arm_summary(values_by_run: list[dict[str, Any] | None]) -> dict[str, Any]:
    """METRIC -> {mean, std, values, n} over the runs of one arm (a run not evaluated yet gives None)."""
    return {key: summarise([(r or {}).get(key) for r in values_by_run]) for key in METRIC_KEYS}


def differences(arms: dict[str, dict[str, Any]], reference: str, level: float = 0.95) -> dict[str, Any]:
    """ARM -> METRIC -> {diff, low, high, df, relative, method, level, excludes_zero} (Welch) against the reference
    arm, with `paired` (the same fields, per-seed differences) and `significant` (the paired interval excludes 0;
    Welch's when no seed pairs)."""
    out: dict[str, Any] = {}
    for arm, summary in arms.items():
        if arm == reference:
            continue
        out[arm] = {}
        for key in METRIC_KEYS:
            d = welch_difference(finite(summary[key]["values"]), finite(arms[reference][key]["values"]), level)
            p = paired_difference(_seed_pairs(summary, arms[reference], key), level)
            out[arm][key] = None if d is None else {
                **_difference_dict(d, level), "paired": None if p is None else _difference_dict(p, level),
                "significant": (p if p is not None else d).excludes_zero}
    return out


def _difference_dict(d: Difference, level: float) -> dict[str, Any]:
    return {"diff": d.diff, "low": d.low, "high": d.high, "df": d.df, "relative": d.relative, "method": d.method,
            "level": level, "excludes_zero": d.excludes_zero}


def _seed_pairs(arm: dict[str, Any], reference: dict[str, Any], key: str) -> list[tuple[float, float]]:
    """(arm value, reference value) of every seed both arms have a finite value for."""
    ref = dict(zip(reference.get("seeds", []), reference[key]["values"], strict=False))
    return [(float(v), float(ref[s])) for s, v in zip(arm.get("seeds", []), arm[key]["values"], strict=False)
            if s in ref and finite([v, ref[s]]) == [v, ref[s]]]


def build_report(spec: dict[str, Any], results: dict[str, dict[str, Any] | None],
                 base: dict[str, Any] | None, accuracy_rule: str | None = None) -> dict[str, Any]:
    """The report.json of an experiment from its spec, each run's metrics (None: not evaluated) and the base's."""
    arms: dict[str, Any] = {}
    for arm in spec["arms"]:
        slots = [s for s in spec["runs"] if s["arm"] == arm]
        arms[arm] = {"runs": [s["run_dir"] for s in slots], "seeds": [s["seed"] for s in slots],
                     **arm_summary([results.get(s["name"]) for s in slots])}
    reference = spec["reference_arm"]
    return {
        "name": spec["name"], "command": spec["command"], "seeds": spec["seeds"], "arms": arms,
        "reference_arm": reference, "differences": differences(arms, reference),
        "interval": "Welch's t, 95%, on the difference of means (arm - reference), Welch-Satterthwaite df",
        "paired_interval": "paired t, 95%, on the mean of per-seed differences (arm - reference), df = pairs - 1",
        "domain_accuracy_rule": accuracy_rule,
        "base": {"model": spec["base"], "metrics": base}, "model": spec["model"],
        "evaluated": sum(1 for r in results.values() if r is not None), "planned": len(spec["runs"]),
        "complete": all(results.get(s["name"]) is not None for s in spec["runs"]),
    }


def mean_std(summary: dict[str, Any]) -> str:
    if summary["mean"] is None:
        return "-"
    return fmt(summary["mean"]) + (f" ± {fmt(summary['std'])}" if summary["std"] is not None else "")


def _diff_cell(d: dict[str, Any] | None, star: bool = False) -> str:
    if d is None:
        return "-"
    cell = f"{d['diff']:+.4f}"
    if d["low"] is not None:
        cell += f" [{d['low']:+.4f}, {d['high']:+.4f}]" + (" *" if star and d["excludes_zero"] else "")
    if d["relative"] is not None:
        cell += f" ({d['relative'] * 100:+.1f}%)"
    return cell


def _diff_cells(d: dict[str, Any] | None) -> tuple[str, str]:
    """The Welch cell and the paired cell (which carries the `*`)."""
    if d is None:
        return "-", "-"
    paired = d.get("paired")
    return _diff_cell(d), _diff_cell(paired, star=True) if paired else "-"


def render_markdown(report: dict[str, Any]) -> str:
    ref = report["reference_arm"]
    others = [a for a in report["arms"] if a != ref]
    base = report["base"]["metrics"] or {}
    head = ["metric", "better", f"base ({report['base']['model']})", *report["arms"],
            *(f"{a} − {ref} {kind}" for a in others for kind in ("(Welch 95% CI)", "paired (95% CI)"))]
    lines = [f"# Experiment {report['name']}", "",
             f"Command: `{report['command']}`", "",
             f"Model {report['model']}; arms {', '.join(report['arms'])}; seeds {report['seeds']} (repeat i uses "
             f"seed {report['seeds'][0]} + i in every arm); {report['evaluated']}/{report['planned']} runs evaluated"
             + ("" if report["complete"] else " (incomplete: run the same command again to continue)") + ".", "",
             f"Cells: mean ± sample std over repeats. Difference: {report['interval']}; paired: "
             f"{report.get('paired_interval')}; `*` marks a paired interval that excludes 0 (the test that decides);"
             " in brackets the change relative to the reference mean.", "",
             f"domain_accuracy: {report.get('domain_accuracy_rule') or 'answer contains the reference'}; "
             "domain_contains and domain_exact_match are shown beside it.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric in METRICS:
        if all(report["arms"][a][metric.key]["mean"] is None for a in report["arms"]):
            continue
        row = [metric.key, metric.better, fmt(base.get(metric.key)),
               *(mean_std(report["arms"][a][metric.key]) for a in report["arms"]),
               *(cell for a in others for cell in _diff_cells(report["differences"][a][metric.key]))]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
