"""An A/B experiment on disk: its plan (`experiment.json`), its runs, and finding it again (no torch).

One folder under `output.root`, `<name>-ab-<yyyymmdd-hhmmss>/`, holds `experiment.json` (the plan: arms, seeds,
the shared config, the evaluation sets), one run directory per arm and repeat (`<arm>-r<i>/`, each with its
`eval.json`), `base/eval.json` (the base model, evaluated once) and `report.json` / `report.md`. Every arm is
the same config but `nlirg.weighting`, and an arm `WEIGHTING@QUANT` also `model.quantization` (`nlirg,nlirg@nf4`:
the same weighting on a 16-bit and a 4-bit base); repeat i uses seed `training.seed + i` in every arm, so arms are
paired.
The same command finds the same folder again (by a key of everything that changes the result) and continues it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_core.config import ConfigError, RunConfig, config_from_dict
from trainer_core.config.quantization import BITS
from trainer_core.evaluate.report import build_report
from trainer_core.live.launch import absolute_paths
from trainer_core.live.rundir import FINAL, new_run_dir, read_json, write_json_atomic
from trainer_core.live.runs import RunInfo, run_info

ARMS = ("plain", "nlirg", "dft", "nlirg-raw")
"""Arm names are `nlirg.weighting` values, and `nlirg-raw`: nlirg with `nlirg.protect_special_tokens` false (the
reference trainer's behaviour: special tokens weighted like any token); the other arms keep the config's value."""
ARM_SETTINGS: dict[str, dict[str, Any]] = {"nlirg-raw": {"weighting": "nlirg", "protect_special_tokens": False}}
EXPERIMENT_FILE = "experiment.json"
EVAL_FILE = "eval.json"
BASE_DIR = "base"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
LOG_FILE = "experiment.log"


class ExperimentError(ValueError):
    """A user error in an experiment (bad arms, repeats, a run that failed); one line that says what to do."""


QUANTIZED = "@"
"""`WEIGHTING@QUANT`: an arm that also sets `model.quantization` (none, nf4, fp4, int8)."""


def split_arm(arm: str) -> tuple[str, str | None]:
    """(weighting arm, quantization or None when the arm keeps the config's)."""
    weighting, _, quant = arm.partition(QUANTIZED)
    return weighting, (quant if QUANTIZED in arm else None)


def parse_arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in arms if split_arm(a)[0] not in ARMS or split_arm(a)[1] not in (None, *BITS)]
    if bad:
        raise ExperimentError(f"--arms: {', '.join(bad)} is not an arm; use a comma list of {', '.join(ARMS)}, each "
                              f"optionally @ a quantization ({', '.join(BITS)}), e.g. nlirg,nlirg@nf4")
    if len(arms) < 2 or len(set(arms)) != len(arms):
        raise ExperimentError(f"--arms {text}: give two or more different arms, e.g. plain,nlirg")
    return arms


def reference_arm(arms: list[str]) -> str:
    """The arm the others are compared with: plain, else plain on some base, else the first."""
    return next((a for a in arms if a == "plain"), next((a for a in arms if split_arm(a)[0] == "plain"), arms[0]))


@dataclass
class Plan:
    """What an experiment runs and how it is evaluated; `key()` identifies it across invocations."""

    cfg: RunConfig
    arms: list[str]
    repeats: int
    domain: list[Any]
    general: list[Any]
    base: str
    max_new_tokens: int
    eval_batch_size: int
    command: str
    limit: int = 0
    """Score N items of each evaluation set, spread evenly (0 = all): a quicker, coarser experiment."""

    def key(self) -> str:
        config = self.cfg.to_dict()
        config.pop("output")
        basis = {"config": config, "arms": self.arms, "repeats": self.repeats, "domain": self.domain,
                 "general": self.general, "base": self.base, "max_new_tokens": self.max_new_tokens,
                 **({"limit": self.limit} if self.limit else {})}
        return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]

    def seeds(self) -> list[int]:
        return [self.cfg.training.seed + i for i in range(self.repeats)]


def make_plan(cfg: RunConfig, arms: list[str], repeats: int, domain: list[Any], general: list[Any],
              base: str | None, command: str, limit: int = 0) -> Plan:
    if limit < 0:
        raise ExperimentError(f"--limit {limit}: give a number of items >= 0 (0 = every item)")
    if repeats < 1:
        raise ExperimentError(f"--repeats {repeats}: run each arm at least once (3 or more to see the noise)")
    cfg = absolute_paths(copy.deepcopy(cfg))
    for arm in arms:  # an arm's config that cannot run (nf4 without LoRA) is refused now, not after other arms ran
        try:
            run_config(cfg.to_dict(), arm, cfg.training.seed, f"{arm}-r0", Path(cfg.output.root))
        except ConfigError as exc:
            raise ExperimentError(f"--arms: arm {arm}: {exc.problems[0]}") from None
    return Plan(cfg, arms, repeats, _absolute_entries(domain), _absolute_entries(general), base or cfg.model.path,
                cfg.eval.max_new_tokens, cfg.eval.batch_size, command, limit)


def _absolute_entries(entries: list[Any]) -> list[Any]:
    """Set entries with absolute paths (an experiment may be continued from another folder), checked as
    eval.domain is; a `{path, columns, ...}` mapping keeps its settings."""
    paths = [e["path"] if isinstance(e, dict) else e for e in entries]
    absolute = absolute_paths(config_from_dict({"eval": {"domain": paths}})).eval.domain
    return [{**e, "path": p} if isinstance(e, dict) else p for e, p in zip(entries, absolute, strict=True)]


def run_config(plan_cfg: dict[str, Any], arm: str, seed: int, name: str, root: Path) -> RunConfig:
    """One run of the experiment: the shared config with this arm's weighting (and quantization) and this repeat's
    seed."""
    raw = copy.deepcopy(plan_cfg)
    weighting, quant = split_arm(arm)
    raw["nlirg"].update(enabled=True, **ARM_SETTINGS.get(weighting, {"weighting": weighting}))
    if quant is not None:
        raw["model"]["quantization"] = quant
    raw["training"]["seed"] = seed
    raw["output"].update(root=str(root), name=name)
    return config_from_dict(raw, f"experiment run {name}")


def slots(arms: list[str], seeds: list[int], exp_dir: Path) -> list[dict[str, Any]]:
    """Runs in the order they train: repeat by repeat, every arm in turn, so partial results stay balanced."""
    return [{"name": f"{arm}-r{i}", "arm": arm, "repeat": i, "seed": seed, "run_dir": str(exp_dir / f"{arm}-r{i}")}
            for i, seed in enumerate(seeds) for arm in arms]


def create(plan: Plan, root: Path, name: str) -> Path:
    exp_dir = new_run_dir(root, f"{name}-ab")
    spec = {
        "name": exp_dir.name, "key": plan.key(), "command": plan.command, "created": time.time(),
        "arms": plan.arms, "reference_arm": reference_arm(plan.arms),
        "repeats": plan.repeats, "seeds": plan.seeds(), "model": plan.cfg.model.path, "base": plan.base,
        "domain": plan.domain, "general": plan.general,
        "eval": {"max_new_tokens": plan.max_new_tokens, "batch_size": plan.eval_batch_size, "limit": plan.limit},
        "config": plan.cfg.to_dict(), "runs": slots(plan.arms, plan.seeds(), exp_dir),
    }
    write_json_atomic(exp_dir / EXPERIMENT_FILE, spec)
    return exp_dir


def find_matching(root: Path, key: str) -> Path | None:
    """The newest experiment under `root` planned with the same key (the same command, resolved)."""
    found = [e for e in list_experiment_dirs(root) if (read_json(e / EXPERIMENT_FILE) or {}).get("key") == key]
    return max(found, key=lambda e: (read_json(e / EXPERIMENT_FILE) or {}).get("created", 0), default=None)


def list_experiment_dirs(root: Path) -> list[Path]:
    base = Path(root).expanduser()
    if not base.is_dir():
        return []
    return sorted(p.resolve() for p in base.iterdir() if (p / EXPERIMENT_FILE).is_file())


def load_spec(exp_dir: Path) -> dict[str, Any]:
    spec = read_json(exp_dir / EXPERIMENT_FILE)
    if not spec:
        raise ExperimentError(f"{exp_dir}: not an experiment folder (no readable {EXPERIMENT_FILE})")
    return spec


# ------------------------------------------------------------------------------------------ what is where
@dataclass
class RunSlot:
    """One planned run and what became of it."""

    name: str
    arm: str
    repeat: int
    seed: int
    run_dir: Path
    info: RunInfo | None
    """None until the run directory exists."""
    evaluated: bool

    @property
    def trained(self) -> bool:
        return self.info is not None and self.info.status == "completed" and (self.run_dir / FINAL).is_dir()


@dataclass
class ExperimentInfo:
    exp_dir: Path
    spec: dict[str, Any]
    runs: list[RunSlot]

    @property
    def name(self) -> str:
        return self.exp_dir.name

    @property
    def done(self) -> int:
        return sum(1 for r in self.runs if r.evaluated)

    @property
    def live_run(self) -> RunSlot | None:
        return next((r for r in self.runs if r.info is not None and r.info.live), None)

    @property
    def status(self) -> str:
        if self.live_run is not None:
            return "running"
        return "complete" if self.done == len(self.runs) else "incomplete"


def experiment_info(exp_dir: Path) -> ExperimentInfo:
    spec = load_spec(exp_dir)
    runs = []
    for s in spec["runs"]:
        run_dir = exp_dir / s["name"]  # not the stored path: an experiment folder may have been moved
        info = run_info(run_dir) if run_dir.is_dir() else None
        runs.append(RunSlot(s["name"], s["arm"], s["repeat"], s["seed"], run_dir, info,
                            (run_dir / EVAL_FILE).is_file()))
    return ExperimentInfo(exp_dir, spec, runs)


def find_experiments(root: Path) -> tuple[list[ExperimentInfo], list[str]]:
    """Experiments under `root`, running ones first, then newest first; and one line per folder whose
    experiment.json cannot be read (not JSON, not UTF-8, no run list), skipped so that one bad file does not hide
    every run: `nlirg runs` prints the lines, the Runs screen shows them."""
    found, unreadable = [], []
    for exp_dir in list_experiment_dirs(root):
        try:
            found.append(experiment_info(exp_dir))
        except (ValueError, KeyError, TypeError) as exc:  # from the file's content: ExperimentError, bad bytes, a key
            why = f"no {exc}" if isinstance(exc, KeyError) else str(exc).removeprefix(f"{exp_dir}: ")
            unreadable.append(f"{exp_dir / EXPERIMENT_FILE}: skipped, not a readable experiment ({why}); fix or "
                              "remove it")

    def newest_first(e: ExperimentInfo) -> float:
        created = e.spec.get("created")
        return -created if isinstance(created, (int, float)) else 0.0

    return sorted(found, key=lambda e: (e.status != "running", newest_first(e))), unreadable


def eval_metrics(path: Path) -> dict[str, Any] | None:
    """The `metrics` of an eval.json, or None when it is not there (yet)."""
    result = read_json(path)
    return result.get("metrics") if result else None


def current_report(exp_dir: Path, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report of what is evaluated so far, from the experiment folder alone (report.json's content)."""
    spec = spec or load_spec(exp_dir)
    results = {s["name"]: eval_metrics(exp_dir / s["name"] / EVAL_FILE) for s in spec["runs"]}
    spec = {**spec, "runs": [{**s, "run_dir": str(exp_dir / s["name"])} for s in spec["runs"]]}
    base = read_json(exp_dir / BASE_DIR / EVAL_FILE) or {}
    return build_report(spec, results, base.get("metrics"), accuracy_rule(exp_dir, spec))


def accuracy_rule(exp_dir: Path, spec: dict[str, Any]) -> str | None:
    """The rule domain_accuracy was scored by: the base's evaluation's, else the first evaluated run's (the base
    has no domain set when the runs are scored on their own held-out records)."""
    for folder in (BASE_DIR, *(s["name"] for s in spec["runs"])):
        counts = (read_json(exp_dir / folder / EVAL_FILE) or {}).get("counts") or {}
        if counts.get("domain_items") and counts.get("domain_accuracy_rule"):
            return counts["domain_accuracy_rule"]
    return None
