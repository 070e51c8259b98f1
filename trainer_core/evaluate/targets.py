"""What `nlirg eval TARGET` points at: a run (its final/), a checkpoint, a model or adapter folder, a hub id or a
builtin. Torch-free, so the CLI can refuse a bad TARGET in one line before anything heavy starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from trainer_core.config import BUILTIN_MODELS, ConfigError, RunConfig, build_config
from trainer_core.config.parse import read_yaml
from trainer_core.config.paths import anchor_paths
from trainer_core.live.rundir import CONFIG_FILE, FINAL, checkpoint_dirs
from trainer_core.live.runs import RunNotFound, resolve_run, run_info

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class TargetError(ValueError):
    """TARGET is not something that can be evaluated; the message says what to give instead."""


@dataclass
class Target:
    spec: str
    """What the user typed."""
    kind: str
    """`run`, `checkpoint`, `folder`, `adapter`, `hub` or `builtin`."""
    model: str
    """Weights to load: a builtin, a folder or a hub id (for an adapter: the model it was trained on)."""
    adapter: str | None
    """A LoRA adapter folder applied on `model`, or None."""
    tokenizer: str
    """Where the tokenizer comes from."""
    base: str | None
    """The model general retention is measured against by default (a run's or adapter's base model)."""
    run_dir: Path | None
    config: RunConfig | None
    """The run's config when the target belongs to a run (max length, NLIRG curve, system prompt)."""

    def describe(self) -> str:
        where = f"{self.adapter} on {self.model}" if self.adapter else self.model
        return f"{self.kind} {where}"


def resolve_target(spec: str, root: Path = Path("runs"), offer: str = "evaluate its latest checkpoint: nlirg eval {}",
                   ) -> Target:
    """What `spec` names; `offer` is the hint for a run with no final model, `{}` its newest checkpoint."""
    if spec.startswith("builtin:"):
        if spec not in BUILTIN_MODELS:
            raise TargetError(f"{spec}: unknown builtin; known: {', '.join(BUILTIN_MODELS)}")
        return Target(spec, "builtin", spec, None, spec, spec, None, None)
    path = Path(spec).expanduser()
    if not path.exists() and not spec.startswith((".", "/", "~")):
        try:
            path = resolve_run(spec, root)  # a run name, as `nlirg attach` takes it
        except RunNotFound:
            if "/" in spec and " " not in spec:
                return Target(spec, "hub", spec, None, spec, None, None, None)
            raise TargetError(f"{spec}: not a run, checkpoint, model folder, hub id or builtin "
                              f"(`nlirg runs --root {root}` lists runs)") from None
    if path.is_file():
        raise TargetError(f"{spec}: a file, not a model; give a run, checkpoint or model folder")
    if not path.is_dir():
        raise TargetError(f"{spec}: no such folder")
    path = path.resolve()
    if path.name == FINAL and (path.parent / CONFIG_FILE).is_file():
        path = path.parent  # a run's final/ is the run
    if (path / CONFIG_FILE).is_file():
        return _run_target(spec, path, offer)
    if path.parent.name == "checkpoints" and path.name.startswith("step-"):
        return _checkpoint_target(spec, path)
    return _folder_target(spec, path, None, None)


def _run_target(spec: str, run_dir: Path, offer: str) -> Target:
    info = run_info(run_dir)
    found = checkpoint_dirs(run_dir)
    hint = (offer.format(found[-1]) if found
            else f"no checkpoint yet: wait for one or write one with `nlirg save {run_dir.name}`")
    if info.live:
        raise TargetError(f"{spec}: run {info.name} is still training (step {info.step}/{info.total_steps}); {hint}")
    if not (run_dir / FINAL).is_dir():
        raise TargetError(f"{spec}: run {info.name} has no final model ({info.status}); {hint}")
    target = _folder_target(spec, run_dir / FINAL, run_dir, _run_config(run_dir))
    target.kind = "run"
    return target


def _checkpoint_target(spec: str, ckpt: Path) -> Target:
    run_dir = ckpt.parent.parent
    if (ckpt / "deepspeed").is_dir():
        raise TargetError(f"{spec}: a DeepSpeed checkpoint (sharded); evaluate the run's final/ model instead")
    if not (ckpt / "model").is_dir():
        raise TargetError(f"{spec}: not a checkpoint folder (no model/ inside)")
    target = _folder_target(spec, ckpt / "model", run_dir, _run_config(run_dir))
    target.kind = "checkpoint"
    return target


def _folder_target(spec: str, folder: Path, run_dir: Path | None, cfg: RunConfig | None) -> Target:
    run_base = cfg.model.path if cfg is not None else None
    has_tokenizer = any((folder / f).is_file() for f in TOKENIZER_FILES)
    if (folder / "adapter_config.json").is_file():
        base = run_base or _adapter_base(folder, spec)
        return Target(spec, "adapter", base, str(folder), str(folder) if has_tokenizer else base, base, run_dir, cfg)
    if (folder / "config.json").is_file():
        tokenizer = str(folder) if has_tokenizer else run_base
        if tokenizer is None:
            raise TargetError(f"{spec}: the model folder has no tokenizer files; save the tokenizer with it")
        return Target(spec, "folder", str(folder), None, tokenizer, run_base, run_dir, cfg)
    raise TargetError(f"{spec}: not a model (no config.json or adapter_config.json in {folder})")


def _adapter_base(folder: Path, spec: str) -> str:
    try:
        base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError):
        base = None
    if not base:
        raise TargetError(f"{spec}: adapter_config.json names no base model; pass the base with --base")
    return str(base)


def _run_config(run_dir: Path) -> RunConfig:
    """The run's config as saved. Its data files may have moved since, so the config is checked without them,
    then `data.train` and `data.eval` are put back as saved: they decide the default evaluation sets (the run's
    own held-out data; the demo's sets only for a demo run), and a moved data.eval is named when it is read."""
    path = run_dir / CONFIG_FILE
    try:
        cfg = build_config(path, ["data.train=[builtin:demo]", "data.eval=[]"])
        saved = anchor_paths(read_yaml(path), run_dir).get("data") or {}
    except ConfigError as exc:
        raise TargetError(exc.render()) from None  # the block of problems, as `nlirg train` prints it
    data = replace(cfg.data, train=saved.get("train", cfg.data.train), eval=saved.get("eval", cfg.data.eval))
    return replace(cfg, data=data)
