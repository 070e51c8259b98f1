"""The DeepSpeed JSON of a run: the shipped ZeRO-2/ZeRO-3 file or the user's own, with every batch,
accumulation, LR, clipping and precision field filled from the run config.

A field written as "auto" (or left out) is filled; a field written with a value must agree with the
run config, otherwise the run refuses to start with one line per disagreement: the two configs never
silently disagree and the workbench never guesses which one the user meant.

Torch-free: `nlirg train` and the TUI check a config with this before anything is launched.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from trainer_core.config.schema import ConfigError, RunConfig

ASSETS = Path(__file__).parent.parent / "assets" / "deepspeed"
AUTO = "auto"
# Only these optimizer types are the AdamW that torch's optimizer stands in for with distributed.optimizer: torch.
ADAMW_TYPES = ("adamw", "adam", "fusedadam", "cpuadam")


def template_path(zero_stage: int) -> Path:
    """The shipped config for a ZeRO stage (stages 0 and 1 start from the ZeRO-2 file)."""
    return ASSETS / ("zero3.json" if zero_stage == 3 else "zero2.json")


def source_of(cfg: RunConfig) -> str:
    """What the DeepSpeed settings come from, for error messages."""
    user = cfg.distributed.deepspeed_config
    if user:
        return f"distributed.deepspeed_config ({user})"
    return f"shipped {template_path(cfg.distributed.zero_stage).name}"


def read_template(cfg: RunConfig) -> dict[str, Any]:
    user = cfg.distributed.deepspeed_config
    path = Path(user).expanduser() if user else template_path(cfg.distributed.zero_stage)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"distributed.deepspeed_config: cannot read '{path}': {exc.strerror or exc}"]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([f"distributed.deepspeed_config: '{path}' line {exc.lineno}: invalid JSON ({exc.msg})"]) \
            from None
    if not isinstance(raw, dict):
        raise ConfigError([f"distributed.deepspeed_config: '{path}' must hold a JSON object"])
    return {k: v for k, v in raw.items() if not k.startswith("_")}  # "_comment" keys are for readers only


def planned_world_size(cfg: RunConfig) -> int | None:
    """Ranks the launcher will start, when this node alone decides it (None with a hostfile)."""
    d = cfg.distributed
    if d.hostfile:
        return None
    if d.include:
        _, _, slots = d.include.partition(":")
        return len([s for s in slots.split(",") if s.strip()]) or None
    return d.num_procs


def resolve_deepspeed_config(cfg: RunConfig, world_size: int | None, dtype: str | None) -> dict[str, Any]:
    """The DeepSpeed config to hand to `deepspeed.initialize`; raises ConfigError listing every conflict.

    `world_size` and `dtype` (fp32/bf16/fp16) are None when not known yet (checked again on the ranks).
    """
    ds = copy.deepcopy(read_template(cfg))
    problems: list[str] = []
    src = source_of(cfg)
    t = cfg.training

    def fill(node: dict[str, Any], key: str, want: Any, run_key: str, path: str, shown: str | None = None) -> None:
        have = node.get(key, AUTO)
        if have == AUTO:
            node[key] = want
        elif not _same(have, want):
            problems.append(f"{src}: {path} is {json.dumps(have)} but {run_key} is {shown or json.dumps(want)}; "
                            f"write \"auto\" there or make the two agree")

    fill(ds, "train_micro_batch_size_per_gpu", t.batch_size, "training.batch_size", "train_micro_batch_size_per_gpu")
    fill(ds, "gradient_accumulation_steps", t.grad_accum, "training.grad_accum", "gradient_accumulation_steps")
    fill(ds, "gradient_clipping", t.max_grad_norm, "training.max_grad_norm", "gradient_clipping")
    if world_size is not None:
        fill(ds, "train_batch_size", t.batch_size * t.grad_accum * world_size,
             f"training.batch_size x grad_accum x {world_size} ranks", "train_batch_size")
    elif ds.get("train_batch_size", AUTO) == AUTO:
        ds.pop("train_batch_size", None)  # DeepSpeed derives it from the micro batch, accumulation and world size
    if dtype is not None:
        for section, name in (("bf16", "bf16"), ("fp16", "fp16")):
            node = ds.setdefault(section, {})
            fill(node, "enabled", dtype == name, "model.dtype", f"{section}.enabled", shown=dtype)
    if "scheduler" in ds:
        problems.append(f"{src}: remove the \"scheduler\" section; training.scheduler, warmup_steps and "
                        "warmup_ratio drive the learning rate")
    _fill_optimizer(ds, cfg, src, fill, problems)
    _fill_zero(ds, cfg)
    if ds["zero_optimization"]["stage"] not in (1, 2, 3):
        problems.append(f"{src}: zero_optimization.stage must be 1, 2 or 3 under DeepSpeed (distributed.zero_stage)")
    later = ("bf16.enabled", "fp16.enabled") if dtype is None else ()  # model.dtype auto: filled on the ranks
    problems += [f"{src}: {path} is still \"auto\"; only batch, accumulation, clipping, LR, betas, weight decay "
                 "and precision are filled from the run config" for path in _auto_paths(ds) if path not in later]
    if problems:
        raise ConfigError(problems, "deepspeed")
    return ds


def _fill_optimizer(ds: dict[str, Any], cfg: RunConfig, src: str, fill, problems: list[str]) -> None:
    t = cfg.training
    opt = ds.get("optimizer")
    if opt is None:
        if cfg.distributed.optimizer == "torch":
            return
        opt = ds["optimizer"] = {"type": "AdamW", "params": {}}
    params = opt.setdefault("params", {})
    fill(params, "lr", t.lr, "training.lr", "optimizer.params.lr")
    fill(params, "betas", list(t.betas), "training.betas", "optimizer.params.betas")
    fill(params, "weight_decay", t.weight_decay, "training.weight_decay", "optimizer.params.weight_decay")
    if cfg.distributed.optimizer == "torch":
        kind = str(opt.get("type", "AdamW"))
        if kind.lower() not in ADAMW_TYPES:
            problems.append(f"{src}: optimizer.type is {kind} but distributed.optimizer is torch (AdamW); "
                            "set distributed.optimizer: deepspeed to use it")
        del ds["optimizer"]  # torch's AdamW is built from the same training.* values
        ds["zero_allow_untested_optimizer"] = True
        ds["zero_force_ds_cpu_optimizer"] = False  # offload with torch's optimizer: slower, but no C++ build


def _fill_zero(ds: dict[str, Any], cfg: RunConfig) -> None:
    d = cfg.distributed
    zero = ds.setdefault("zero_optimization", {})
    if zero.get("stage", AUTO) == AUTO or not d.deepspeed_config:
        zero["stage"] = d.zero_stage  # the shipped files follow distributed.zero_stage
    if d.offload:
        zero.setdefault("offload_optimizer", {"device": "cpu", "pin_memory": True})
        if zero["stage"] == 3:
            zero.setdefault("offload_param", {"device": "cpu", "pin_memory": True})


def deepspeed_problems(cfg: RunConfig) -> list[str]:
    """Conflicts between the run config and its DeepSpeed JSON that can be seen before launching."""
    problems = []
    if cfg.training.token_batch:
        problems.append("training.token_batch: not supported with distributed.backend deepspeed yet (each rank's "
                        "windows would end its batches at different steps); set it to 0")
    dtype = None if cfg.model.dtype == "auto" else cfg.model.dtype
    try:
        resolve_deepspeed_config(cfg, planned_world_size(cfg), dtype)
    except ConfigError as exc:
        problems += exc.problems
    return problems


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _auto_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _auto_paths(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if node == AUTO else []
