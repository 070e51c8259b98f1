"""`nlirg check CONFIG [--set ...]` (run as `python -m trainer_core.train.check_config`): everything a run would
meet before its first step, without loading weights or creating a run directory.

It validates the config, reads every data source through the trainer's own data path (records, held-out share,
tokens, truncation at data.max_length, what data.exclude drops: the tokens land in the cache, so the run finds
them done), reads the model's config.json and its tokenizer (and chat template, for SFT), checks a hostfile + SSH
launch's hosts (`live.hostfile`), and prints the memory plan's verdict when a planner is installed
(`trainer_core.plan.api.plan_config`, `nlirg plan`). Problems make the exit code 2; warnings (truncation,
unmatched exclude entries) are printed and leave it 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_core.config import ConfigError, RunConfig, build_config
from trainer_core.live.launch import EXIT_USER_ERROR

PLANNER = "trainer_core.plan.api"
"""Where the memory planner lives (`plan_config(cfg)` -> a result with `verdict()`); optional."""


@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append(text)
        print(text, flush=True)


def check(cfg: RunConfig, source: str, out: Findings) -> None:
    from trainer_core.data.records import DataError
    from trainer_core.train.model.load import ModelLoadError, load_tokenizer, resolve

    out.say(f"config {source}: valid ({'LoRA ' if cfg.lora.enabled else 'full '}{cfg.training.type.upper()}, "
            f"model {cfg.model.path})")
    try:
        path = resolve(cfg.model)
        out.say(f"model: {describe_model(path)}")
        tokenizer = load_tokenizer(path, cfg.model)
    except ModelLoadError as exc:
        out.problems.append(str(exc))
        return
    template = bool(getattr(tokenizer, "chat_template", None))
    out.say(f"tokenizer: {type(tokenizer).__name__}, {len(tokenizer):,} tokens, chat template "
            f"{'present' if template else 'missing'}")
    if cfg.training.type == "sft" and not template:
        out.problems.append("model.path: the tokenizer has no chat template; SFT renders every record with it "
                            "(use an instruct model, or training.type cpt)")
        return
    try:
        check_data(cfg, tokenizer, out)
    except (DataError, ConfigError) as exc:
        out.problems.append(str(exc).replace("\n", " "))
    check_plan(cfg, out)


def describe_model(path: str) -> str:
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8")) if Path(path).is_dir() else {}
    if not config:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path).to_dict()
    keys = (("model_type", "{}"), ("num_hidden_layers", "{} layers"), ("hidden_size", "hidden {}"),
            ("vocab_size", "vocab {:,}"), ("max_position_embeddings", "context {:,}"))
    return ", ".join(fmt.format(config[k]) for k, fmt in keys if config.get(k) is not None) or path


def check_data(cfg: RunConfig, tokenizer, out: Findings) -> None:
    from trainer_core.train.data.prepare import prepare_data

    data = prepare_data(cfg, tokenizer)
    report = data.report
    for entry, spec in zip(report["sources"], cfg.data.sources("train"), strict=True):
        lost = [f"{entry['truncated']:,} truncated at data.max_length {cfg.data.max_length}"] if entry["truncated"] \
            else []
        lost += [f"{entry['dropped']:,} with no target token left dropped"] if entry["dropped"] else []
        out.say(f"data.train {entry['path']} (format {spec.format}): {entry['records']:,} records -> "
                f"{entry['samples']:,} samples; tokens "
                f"kept {entry['tokens_kept']:,} of {entry['tokens_read']:,}, target tokens {entry['targets_kept']:,} "
                f"of {entry['targets_read']:,}{' (' + '; '.join(lost) + ')' if lost else ''}")
        if lost:
            out.warnings.append(f"{entry['path']}: {'; '.join(lost)}")
    held = f"{report['eval_rows']:,} eval rows" + (
        f" (data.eval_fraction {cfg.data.eval_fraction:g} held out)" if not cfg.data.eval else " (data.eval)")
    out.say(f"data: {report['train_rows']:,} train rows, {held}")
    if data.exclusion is not None:
        out.say(data.exclusion.message())
        if data.exclusion.unmatched:
            out.warnings.append(data.exclusion.message())


def check_plan(cfg: RunConfig, out: Findings) -> None:
    import importlib

    try:
        planner = importlib.import_module(PLANNER)
    except ImportError:
        out.say(f"plan: no memory planner in this version ({PLANNER}.plan_config is where `nlirg check` asks)")
        return
    try:
        result: Any = planner.plan_config(cfg)
    except Exception as exc:  # noqa: BLE001 - the planner's failure is a finding, not a crash of the check
        out.problems.append(f"plan: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return
    out.say(f"plan: {result.verdict()}")
    if not getattr(result, "fits", True):
        out.problems.append(f"plan: {result.verdict()}")


def check_hosts(cfg: RunConfig, out: Findings) -> None:
    """A hostfile + SSH launch: what `nlirg train` checks before it starts one (`live.hostfile`)."""
    from trainer_core.live.hostfile import HostfileError, check_hostfile_launch

    if cfg.distributed.backend != "deepspeed" or not cfg.distributed.hostfile:
        return
    try:
        check_hostfile_launch(cfg)
    except HostfileError as exc:
        out.problems.append(str(exc))
        return
    out.say(f"hosts: every host of {cfg.distributed.hostfile} answers SSH and runs this workbench's code")


def _quiet_libraries() -> None:
    import logging
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    for noisy in ("transformers", "datasets", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer_core.train.check_config", description=__doc__)
    ap.add_argument("config", type=Path, nargs="?", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args(argv)
    _quiet_libraries()
    out = Findings()
    try:
        cfg = build_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    check(cfg, str(args.config) if args.config else "(the embedded default)", out)
    check_hosts(cfg, out)
    for warning in out.warnings:
        print(f"warning: {warning}", flush=True)
    if out.problems:
        n = len(out.problems)
        print(f"error: {n} problem{'s' if n != 1 else ''} would stop this run", file=sys.stderr)
        for problem in out.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    print("ok: nothing found that would stop this run (no weights loaded, no run directory made)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
