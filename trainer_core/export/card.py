"""The model card (README.md) of every export: Hugging Face metadata, what was trained, the training curve in a
few numbers, and the `nlirg eval` / `nlirg ab` results when the run has them. Torch-free, and it names no path
of this machine: data sources by file name, the base model by its portable id."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from trainer_core.evaluate.experiment import EVAL_FILE, REPORT_JSON
from trainer_core.evaluate.report import METRICS, fmt
from trainer_core.export.plan import ExportPlan
from trainer_core.live.events import read_events
from trainer_core.live.rundir import EVENTS_FILE, SUMMARY_FILE, read_json

PUBLIC_IDS = {"builtin:smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""The hub id a builtin comes from (as `train.builtin.PUBLIC_IDS`, which imports the model libraries)."""


def model_card(plan: ExportPlan, files: list[str]) -> str:
    target, cfg, run_dir = plan.target, plan.target.config, plan.target.run_dir
    base = _base_id(target.base or target.model)
    meta: dict[str, Any] = {"library_name": "transformers" if plan.to == "hf" else "gguf"}
    if base and not base.startswith("builtin:"):
        meta["base_model"] = base
    tags = ["nlirg", "text-generation"] + (["gguf"] if plan.to != "hf" else []) + (["ollama"] if plan.to == "ollama"
                                                                                     else [])
    if cfg is not None and cfg.lora.enabled:
        tags.append("lora")
    meta["tags"] = tags
    datasets = [s for s in _sources(cfg) if _is_hub_id(s)]
    if datasets:
        meta["datasets"] = datasets
    name = plan.stem
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---", "",
             f"# {name}", "", f"Fine-tuned from {base or 'an unnamed base'} with the NLIRG workbench (token-weighted "
             "loss). The license is left for you to set.", "", "## Files", ""]
    lines += [f"- `{f}`" for f in files] + ["", *_usage(plan, files)]
    if cfg is not None:
        lines += ["", "## Training", "", *_training(cfg, read_json(run_dir / SUMMARY_FILE) if run_dir else None)]
    if run_dir is not None:
        lines += _curve(run_dir / EVENTS_FILE)
        lines += _evaluation(run_dir / EVAL_FILE)
        lines += _experiment(run_dir.parent / REPORT_JSON, run_dir.name)
    return "\n".join(lines).rstrip() + "\n"


def _base_id(spec: str) -> str:
    if spec.startswith("builtin:"):
        return PUBLIC_IDS.get(spec, spec)
    return Path(spec).name if Path(spec).is_absolute() else spec  # a local folder: its name, never its path


def _is_hub_id(spec: str) -> bool:
    return spec.count("/") == 1 and not Path(spec).exists() and not spec.startswith((".", "~"))


def _sources(cfg) -> list[str]:
    if cfg is None:
        return []
    entries = cfg.data.train if isinstance(cfg.data.train, list) else [cfg.data.train]
    return [str(e.get("path") if isinstance(e, dict) else e) for e in entries]


def _usage(plan: ExportPlan, files: list[str]) -> list[str]:
    if plan.to == "hf":
        return ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
                'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER_OR_REPO")',
                'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER_OR_REPO")', "```"]
    gguf = next(f for f in files if f.endswith(".gguf"))
    out = ["## Use", "", f"Quantization: {plan.dtype}.", "", "```sh", f"llama-cli -m {gguf} -cnv"]
    if plan.to == "ollama":
        out.append(f"ollama create {plan.stem} -f Modelfile && ollama run {plan.stem}")
    return [*out, "```"]


def _training(cfg, summary: dict[str, Any] | None) -> list[str]:
    t, lora, n = cfg.training, cfg.lora, cfg.nlirg
    data = (summary or {}).get("data") or {}
    rows = []
    for entry in data.get("sources") or []:
        rows.append(f"  - {Path(str(entry.get('path'))).name}: {entry.get('records')} records, "
                    f"{entry.get('samples', '?')} samples, {entry.get('targets_kept', '?')} target tokens")
    if not rows:
        rows = [f"  - {Path(s).name}" for s in _sources(cfg)]
    steps = (summary or {}).get("steps")
    out = ["- data (" + f"format {cfg.data.format}, {t.type}, max length {cfg.data.max_length}):", *rows,
           f"- steps: {steps if steps is not None else '?'} of {(summary or {}).get('total_steps', '?')}; epochs: "
           f"{(summary or {}).get('epochs_done', t.epochs)}; batch {t.batch_size} x accumulation {t.grad_accum}; "
           f"learning rate {t.lr:g} ({t.scheduler})",
           f"- precision: {cfg.model.dtype}",
           f"- LoRA: r {lora.r}, alpha {lora.alpha}, dropout {lora.dropout}, modules {', '.join(lora.target_modules)}"
           if lora.enabled else "- full fine-tuning (no LoRA)",
           f"- weighting: {n.effective_weighting}" + (
               f" (NLIRG: max_lr {n.max_lr}, k {n.k}, x0 {n.x0}, loss_threshold {n.loss_threshold}, fall_center "
               f"{n.fall_center}, loss_deadline {n.loss_deadline}; zones easy <= {n.easy_max}, hard >= {n.hard_min})"
               if n.effective_weighting == "nlirg" else "")]
    return out


def _curve(events_path: Path) -> list[str]:
    if not events_path.is_file():
        return []
    events = read_events(events_path)
    losses = [e["loss"] for e in events if e.get("type") == "step" and _finite(e.get("loss"))]
    evals = [(e["step"], e["eval_loss"]) for e in events if e.get("type") == "eval" and _finite(e.get("eval_loss"))]
    if not losses and not evals:
        return []
    out = ["", "## Training curve", ""]
    if losses:
        out.append(f"- train loss: first {fmt(losses[0])}, lowest {fmt(min(losses))}, last {fmt(losses[-1])} "
                   f"({len(losses)} logged steps)")
    if evals:
        out.append("- eval loss: " + ", ".join(f"{fmt(v)} at step {s}" for s, v in evals[-6:]))
    return out


def _evaluation(path: Path) -> list[str]:
    result = read_json(path)
    metrics = (result or {}).get("metrics") or {}
    rows = [f"| {m.key} | {fmt(metrics[m.key])} | {m.better} is better; {m.label} |" for m in METRICS
            if _finite(metrics.get(m.key))]
    if not rows:
        return []
    return ["", "## Evaluation (`nlirg eval`)", "", "| metric | value | meaning |", "|---|---|---|", *rows]


def _experiment(path: Path, run_name: str) -> list[str]:
    report = read_json(path)
    if not report or not any(any(Path(str(r)).name == run_name for r in arm.get("runs", []))
                             for arm in (report.get("arms") or {}).values()):
        return []
    ref = report.get("reference_arm")
    arms = report["arms"]
    others = [a for a in arms if a != ref]
    head = ["metric", *arms, *(f"{a} − {ref} (95% CI)" for a in others)]
    rows = []
    for m in METRICS:
        cells = [_mean_std(arms[a].get(m.key)) for a in arms]
        if all(c == "-" for c in cells):
            continue
        diffs = [_diff((report.get("differences") or {}).get(a, {}).get(m.key)) for a in others]
        rows.append("| " + " | ".join([m.key, *cells, *diffs]) + " |")
    return ["", f"## A/B experiment (`nlirg ab`, {report.get('evaluated')}/{report.get('planned')} runs evaluated)",
            "", f"Mean ± std over seeds {report.get('seeds')}; difference: {report.get('interval')}.", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows]


def _mean_std(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("mean") is None:
        return "-"
    return fmt(summary["mean"]) + (f" ± {fmt(summary['std'])}" if summary.get("std") is not None else "")


def _diff(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return f"{d['diff']:+.4f}" + (f" [{d['low']:+.4f}, {d['high']:+.4f}]" if d.get("low") is not None else "")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
