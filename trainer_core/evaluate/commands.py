"""What `nlirg eval` and `nlirg ab` check and prepare before any heavy work (no torch).

A bad TARGET, data without references, an empty general set, unknown arms or `--repeats 0` fail here with one
line, before a model loads or a folder is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_core.config import RunConfig
from trainer_core.evaluate.eval_data import (
    default_sets,
    held_out_set,
    parse_entries,
    read_domain_set,
    read_general_set,
)
from trainer_core.evaluate.experiment import (
    EXPERIMENT_FILE,
    ExperimentError,
    create,
    find_matching,
    make_plan,
    parse_arms,
)
from trainer_core.evaluate.options import EvalOptions
from trainer_core.evaluate.targets import Target, resolve_target
from trainer_core.live.rundir import read_json


@dataclass
class EvalRequest:
    target: Target
    domain: list[Any]
    general: list[Any]
    base: str | None
    out: Path


def prepare_eval(spec: str, domain: list[str], general: list[str], base: str | None, out: Path | None,
                 root: Path) -> EvalRequest:
    """Resolve TARGET, pick the sets (flags, else the run's config), read them once to refuse bad data early."""
    target = resolve_target(spec, root)
    cfg_domain, cfg_general = default_sets(target.config)
    domain, general = parse_entries(domain) or cfg_domain, parse_entries(general) or cfg_general
    system = target.config.data.system_prompt if target.config is not None else None
    if domain:
        read_domain_set(domain, system)
    elif target.config is not None:  # the evaluator reads them again, in its own process
        held_out(target.config, "evaluate", required=not general)
    if not domain and not general and target.config is None:
        raise ExperimentError("nothing to evaluate on: pass --domain FILE (held-out instructions with answers) "
                              "and/or --general FILE (general instructions or text)")
    if general:
        read_general_set(general, system)
    out = out or default_out(target)
    if not out.parent.is_dir():
        raise ExperimentError(f"--out {out}: folder {out.parent} does not exist")
    return EvalRequest(target, domain, general, base or target.base, out)


def default_out(target: Target) -> Path:
    """eval.json next to the target: in the run, the checkpoint or the model folder; else in the current folder."""
    if target.kind == "run" and target.run_dir is not None:
        return target.run_dir / "eval.json"
    if target.kind in ("checkpoint", "folder", "adapter"):
        return Path(located(target)) / "eval.json"
    return Path.cwd() / f"eval-{re.sub(r'[^A-Za-z0-9._-]+', '-', target.spec).strip('-')}.json"


def located(target: Target) -> str:
    """TARGET as the evaluator process finds it without `--root`: a path for runs, checkpoints and folders."""
    if target.kind == "run" and target.run_dir is not None:
        return str(target.run_dir)
    if target.kind == "checkpoint":
        return str(Path(target.adapter or target.model).parent)
    if target.kind in ("folder", "adapter"):
        return str(target.adapter or target.model)
    return target.spec


def eval_arguments(req: EvalRequest, max_new_tokens: int, batch_size: int, limit: int) -> list[str]:
    """The evaluator process's command line."""
    opts = EvalOptions(domain=req.domain, general=req.general, base=req.base, max_new_tokens=max_new_tokens,
                       batch_size=batch_size, limit=limit)
    return opts.command(located(req.target), req.out)


def prepare_experiment(cfg: RunConfig, arms_text: str, repeats: int, domain: list[str], general: list[str],
                       base: str | None, command: str, name: str, new: bool, limit: int = 0,
                       check_training_data: Callable[[], None] | None = None) -> tuple[Path, bool]:
    """The experiment folder for this command: an existing one with the same plan (continued), else a new one.
    Returns (folder, whether it existed). `check_training_data` runs after the arms and sets are checked and
    before any folder is made (it reads the corpus, slower than the other checks)."""
    arms = parse_arms(arms_text)
    cfg_domain, cfg_general = default_sets(cfg)
    plan = make_plan(cfg, arms, repeats, parse_entries(domain) or cfg_domain, parse_entries(general) or cfg_general,
                     base, command, limit)
    if plan.domain:
        read_domain_set(plan.domain, cfg.data.system_prompt)
    else:  # each run is scored on the records it held out (its seed's split); the base model has no domain set
        held_out(cfg, "compare")
    if plan.general:
        read_general_set(plan.general, cfg.data.system_prompt)
    if check_training_data is not None:
        check_training_data()
    root = Path(cfg.output.root)
    found = None if new else find_matching(root, plan.key())
    if found is not None:
        return found, True
    return create(plan, root, name), False


def held_out(cfg: RunConfig, verb: str, required: bool = True) -> int:
    """Read the run's held-out records (data.eval or its eval_fraction split, after data.exclude) as a domain set
    (a moved data file or exclude list is a one-line DataError); a user error when there are none and they are
    `required`. Returns how many."""
    found = held_out_set(cfg).items
    if not found and required:
        raise ExperimentError(f"nothing to {verb} on: the run holds out no records (data.eval is empty and "
                              "data.eval_fraction is 0); pass --domain FILE or set eval.domain")
    return len(found)


def experiment_complete(exp_dir: Path) -> bool:
    """Every run trained and evaluated, and no evaluation set edited since (then the command scores again)."""
    from trainer_core.evaluate.runner import ExperimentRunner

    report = read_json(exp_dir / "report.json") or {}
    if not report.get("complete") or not (exp_dir / EXPERIMENT_FILE).is_file():
        return False
    return ExperimentRunner(exp_dir, lambda _: None).evaluations_current()
