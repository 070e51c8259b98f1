"""`plan_config`: will this run config fit on this GPU, and if not, what makes it fit (docs/plan.md).

The one entry point for `nlirg plan`, `nlirg check` and the Config pane. Reads the model's config.json only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from trainer_core.config import RunConfig
from trainer_core.plan.estimate import Breakdown, Setup, breakdown
from trainer_core.plan.shape import ModelShape, read_model_config, shape_from_config

GB = 1000**3


@dataclass
class Suggestion:
    change: dict[str, Any]
    """The --set keys and values, all of them (each suggestion adds to the ones before it)."""
    peak_bytes: int
    what: str
    """In words: `turn on gradient checkpointing`."""


@dataclass
class PlanResult:
    fits: bool
    peak_bytes: int
    gpu_mem_bytes: int | None
    gpus: int
    breakdown: Breakdown
    shape: ModelShape
    setup: Setup
    suggestions: list[Suggestion] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The `nlirg plan --json` object (docs/plan.md)."""
        return {"fits": self.fits, "peak_bytes": self.peak_bytes, "breakdown": self.breakdown.as_dict(),
                "suggestions": [{"change": s.change, "peak_bytes": s.peak_bytes} for s in self.suggestions],
                "gpu_mem_bytes": self.gpu_mem_bytes, "gpus": self.gpus}

    def verdict(self) -> str:
        """One line: `fits in 24 GB: 17.2 GB predicted`, `needs 31.0 GB of 24 GB: turn on gradient
        checkpointing -> 19.1 GB`."""
        if self.gpu_mem_bytes is None:
            return f"{gb(self.peak_bytes)} predicted per GPU"
        if self.fits:
            return f"fits in {gb(self.gpu_mem_bytes)}: {gb(self.peak_bytes)} predicted"
        head = f"needs {gb(self.peak_bytes)} of {gb(self.gpu_mem_bytes)}"
        last = self.suggestions[-1] if self.suggestions else None
        if last is None or last.peak_bytes > self.gpu_mem_bytes:
            return head + ": nothing the planner knows makes it fit; use a smaller model or a bigger GPU"
        return f"{head}: {' + '.join(s.what for s in self.suggestions)} -> {gb(last.peak_bytes)}"


def gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def setup_of(cfg: RunConfig, gpus: int | None = None, device: str = "cuda") -> Setup:
    """The memory-relevant settings of `cfg`; `gpus` > 1 means DeepSpeed over that many GPUs."""
    d = cfg.distributed
    deepspeed = d.backend == "deepspeed" or (gpus or 1) > 1
    n = gpus or (d.num_procs if d.backend == "deepspeed" else 1)
    dtype = cfg.model.dtype if cfg.model.dtype != "auto" else ("bf16" if device == "cuda" else "fp32")
    seq = cfg.data.pack_length if cfg.training.type == "cpt" and cfg.data.pack_length else cfg.data.max_length
    return Setup(lora=cfg.lora.enabled, lora_r=cfg.lora.r, lora_targets=tuple(cfg.lora.target_modules),
                 lora_dropout=cfg.lora.dropout, quantization=cfg.model.quantization,
                 double_quant=cfg.model.double_quant, dtype=dtype, checkpointing=cfg.model.gradient_checkpointing,
                 batch=cfg.training.batch_size, seq=seq, token_batch=cfg.training.token_batch,
                 ce_chunk=cfg.training.ce_chunk_tokens, zero_stage=d.zero_stage if deepspeed else 0,
                 gpus=max(1, n), cuda=device == "cuda")


def plan_config(cfg: RunConfig, gpu_mem_bytes: int | None = None, gpus: int | None = None,
                shape: ModelShape | None = None) -> PlanResult:
    """The predicted peak per GPU of `cfg`'s training step, and, when it exceeds `gpu_mem_bytes`, the changes in
    order of preference that bring it down (ShapeError when the model's config.json cannot be read)."""
    shape = shape or shape_from_config(read_model_config(cfg.model.path))
    setup = setup_of(cfg, gpus)
    parts = breakdown(shape, setup)
    fits = gpu_mem_bytes is None or parts.peak <= gpu_mem_bytes
    result = PlanResult(fits, parts.peak, gpu_mem_bytes, setup.gpus, parts, shape, setup)
    if not fits:
        result.suggestions = suggestions(cfg, shape, gpu_mem_bytes, gpus)
    return result


def apply_change(cfg: RunConfig, change: dict[str, Any]) -> RunConfig:
    """A copy of `cfg` with `section.key: value` changes set."""
    out = copy.deepcopy(cfg)
    for key, value in change.items():
        section, name = key.split(".", 1)
        setattr(getattr(out, section), name, value)
    return out


def _peak(cfg: RunConfig, shape: ModelShape, gpus: int | None) -> int:
    return breakdown(shape, setup_of(cfg, gpus)).peak


def suggestions(cfg: RunConfig, shape: ModelShape, limit: int, gpus: int | None) -> list[Suggestion]:
    """The article's ladder, each rung on top of the ones before it, until one fits: gradient checkpointing, QLoRA,
    a smaller micro-batch with more accumulation, a shorter max_length; then (without QLoRA, which DeepSpeed
    cannot shard) ZeRO-3 and more GPUs."""
    out: list[Suggestion] = []
    change: dict[str, Any] = {}

    def rung(what: str, **keys: Any) -> bool:
        change.update({k.replace("__", "."): v for k, v in keys.items()})
        peak = _peak(apply_change(cfg, change), shape, change.get("distributed.num_procs", gpus))
        out.append(Suggestion(dict(change), peak, what))
        return peak <= limit

    if not cfg.model.gradient_checkpointing and rung("turn on gradient checkpointing",
                                                     model__gradient_checkpointing=True):
        return out
    single = cfg.distributed.backend != "deepspeed" and (gpus or 1) == 1
    qlora = {"model__quantization": "nf4", **({} if cfg.lora.enabled else {"lora__enabled": True})}
    if single and cfg.model.quantization == "none" and rung("train QLoRA (a 4-bit nf4 base)", **qlora):
        return out
    batch, accum = cfg.training.batch_size, cfg.training.grad_accum
    while batch > 1:
        batch, accum = batch // 2, accum * 2
        if rung(f"micro-batch {batch} with grad_accum {accum}", training__batch_size=batch,
                training__grad_accum=accum):
            return out
    length = cfg.data.max_length
    while length > 512:
        length //= 2
        if rung(f"max_length {length}", data__max_length=length):
            return out
    change.pop("model.quantization", None)  # DeepSpeed cannot shard a quantized base
    change.pop("lora.enabled", None)
    n = max(gpus or cfg.distributed.num_procs, 1)
    if n > 1 or cfg.distributed.backend == "deepspeed":
        if rung("DeepSpeed ZeRO-3", distributed__backend="deepspeed", distributed__zero_stage=3):
            return out
    for more in (2, 4, 8):
        if more > n and rung(f"{more} GPUs with ZeRO-3", distributed__backend="deepspeed",
                             distributed__zero_stage=3, distributed__num_procs=more):
            return out
    return out
