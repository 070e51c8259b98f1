"""The run config's schema: one documented dataclass per section, each checking its own values.

Every field's docstring is its user documentation (README points here). Imports nothing but the standard
library and reads no file: parsing and YAML live in `config.parse`, the DeepSpeed JSON in `config.deepspeed`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trainer_core.config.choices import (
    DATA_FORMATS,
    Backend,
    DataFormat,
    DeepSpeedOptimizer,
    Dtype,
    Quantization,
    Scheduler,
    Tracker,
    TrainingType,
    Weighting,
    not_one_of,
)
from trainer_core.config.quantization import quantization_problems
from trainer_core.config.sources import BUILTIN_DATA, SourceSpec, check_columns, check_source, parse_sources

BUILTIN_MODELS = ("builtin:tiny", "builtin:smollm2-135m")
__all__ = ["BUILTIN_DATA", "BUILTIN_MODELS", "DATA_FORMATS"]


class ConfigError(ValueError):
    """A config with mistakes; `problems` holds one line per mistake, each starting with its key path."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''}"
        return head + "".join(f"\n  - {p}" for p in self.problems)


def non_finite(key: str, value: Any) -> str | None:
    """The problem line for a number that is NaN or infinite (YAML's .nan and .inf, `nan`, 1e309), else None.

    The one finiteness check: every float field of the config goes through it when parsed, and so does every
    value a live `set` changes, so a NaN never reaches the optimizer or a checkpoint."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key}: {value} is not a finite number; give a real value (e.g. the default)"
    return None


def choice_problems(section: Any, prefix: str) -> list[str]:
    """A value outside its field's `Literal` (config/choices.py), for every choice field of a config section."""
    out = []
    for name, hint in typing.get_type_hints(type(section)).items():
        if typing.get_origin(hint) is Literal and getattr(section, name) not in typing.get_args(hint):
            out.append(not_one_of(f"{prefix}.{name}", getattr(section, name), typing.get_args(hint)))
    return out


@dataclass
class ModelConfig:
    path: str = "builtin:smollm2-135m"
    """Model to train: `builtin:tiny`, `builtin:smollm2-135m`, a local Hugging Face folder or a hub id."""
    dtype: Dtype = "auto"
    """Compute precision: `auto` (bf16 on a GPU that has it, else fp32), `fp32`, `bf16` or `fp16`."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    attn_implementation: str = "sdpa"
    """Attention kernel passed to transformers (`sdpa`, `eager`, `flash_attention_2`)."""
    trust_remote_code: bool = False
    """Allow model code from the model folder (only for models you trust)."""
    quantization: Quantization = "none"
    """QLoRA: hold the frozen base in `nf4` or `fp4` (4-bit) or `int8` through bitsandbytes (the `qlora` extra);
    the LoRA adapter trains in float32 and the base computes in `dtype`. Needs lora.enabled (docs/memory.md)."""
    double_quant: bool = True
    """4-bit only: quantize the quantization constants too (~0.4 bit per weight less)."""

    def check(self) -> list[str]:
        out = choice_problems(self, "model")
        if self.path.startswith("builtin:") and self.path not in BUILTIN_MODELS:
            out.append(f"model.path: unknown builtin '{self.path}'; known: {', '.join(BUILTIN_MODELS)}")
        elif _looks_like_path(self.path) and not Path(self.path).expanduser().is_dir():
            out.append(f"model.path: folder '{self.path}' not found; give a model folder, hub id or builtin")
        return out


@dataclass
class DataConfig:
    train: list[Any] = field(default_factory=lambda: ["builtin:demo"])
    """Training data: files (json, jsonl, parquet, csv, arrow), folders, `save_to_disk` folders, a hub dataset id in
    the local Hugging Face cache, or `builtin:demo`; a string, a list, or a list of sources with their own settings
    (`{path, format, ratio, text_field, columns, system_prompt, split, subset}`; docs/data.md)."""
    format: DataFormat = "auto"
    """Record format: auto (detected per file), alpaca, messages, prompt_response, qa, text."""
    eval: list[Any] = field(default_factory=list)
    """Evaluation data, given like `train`; empty to use `eval_fraction` of the training data."""
    eval_fraction: float = 0.0
    """Share of the training records held out for evaluation when `eval` is empty (0 = none)."""
    max_length: int = 1024
    """Longest tokenized SFT sample (longer ones are truncated, counted in the log); CPT rows without packing."""
    pack_length: int = 0
    """CPT only: pack documents into rows of this many tokens, splitting long ones; no token is dropped (0 = off)."""
    system_prompt: str | None = None
    """System prompt for records that bring none."""
    text_field: str | None = None
    """Field holding a CPT record's text (default: `text`, else `output` as in Y-Trainer's CPT files)."""
    columns: dict[str, str] = field(default_factory=dict)
    """Our field name -> your data's field name, e.g. {instruction: question, output: answer}."""
    exclude: str | None = None
    """File of records to leave out, one a line: a `source` (`file.jsonl:17`, as `nlirg score` and the Inspector
    write them), a record `id`, or a JSON object with either (a score file's rows work). The log counts them."""
    group_by_length: bool = False
    """Batch samples of similar length together (less padding); deterministic with the seed, resumable."""
    pad_to_multiple_of: int = 8
    """Pad every batch's width to a multiple of this (tensor-core friendly); 1 = pad to the longest row only."""
    num_proc: int = 0
    """Processes that tokenize a corpus on a cold start (0 = one per CPU core, at most 16)."""
    cache_dir: str | None = None
    """Where tokenized corpora are cached (default: $NLIRG_DATA_CACHE, else $XDG_CACHE_HOME/nlirg/data, else
    ~/.cache/nlirg/data); `nlirg data cache` lists and clears it."""
    cache_max_gb: float = 50.0
    """Most the data cache may hold (GiB); past it, the least recently used entries are removed when a run
    prepares its data (never the run's own). 0 = no cap. `nlirg data cache --prune` removes unused entries."""

    def source_defaults(self) -> dict[str, Any]:
        """The section's settings that a source entry may override."""
        return {"format": self.format, "text_field": self.text_field, "columns": dict(self.columns),
                "system_prompt": self.system_prompt}

    def sources(self, which: str = "train") -> list[SourceSpec]:
        """The entries of `train` or `eval` as sources with every setting filled in (call after `check`)."""
        return parse_sources(getattr(self, which), f"data.{which}", self.source_defaults())[0]

    def check(self) -> list[str]:
        out = choice_problems(self, "data")
        if not self.train:
            out.append("data.train: no training data given")
        out += check_columns(self.columns, "data.columns")
        if self.exclude is not None and not Path(self.exclude).expanduser().is_file():
            out.append(f"data.exclude: file '{self.exclude}' not found")
        if not out:
            for which in ("train", "eval"):
                specs, problems = parse_sources(getattr(self, which), f"data.{which}", self.source_defaults())
                out += problems
                if which == "eval" and any(s.ratio is not None for s in specs):
                    out.append("data.eval: ratios are for training sources; evaluation uses every record once")
        if not 0.0 <= self.eval_fraction < 1.0:
            out.append(f"data.eval_fraction: {self.eval_fraction} must be in [0, 1)")
        if self.max_length < 8:
            out.append(f"data.max_length: {self.max_length} must be at least 8")
        if self.pack_length < 0 or self.pack_length == 1:
            out.append(f"data.pack_length: {self.pack_length} must be 0 (off) or at least 2 (a row trains a token "
                       "on the one before it)")
        if self.pad_to_multiple_of < 1:
            out.append(f"data.pad_to_multiple_of: {self.pad_to_multiple_of} must be >= 1")
        if self.num_proc < 0:
            out.append(f"data.num_proc: {self.num_proc} must be >= 0 (0 = one per core)")
        if not self.cache_max_gb >= 0:
            out.append(f"data.cache_max_gb: {self.cache_max_gb} must be >= 0 (0 = no cap)")
        return out


@dataclass
class TrainingConfig:
    type: TrainingType = "sft"
    """`sft` (only assistant content is trained) or `cpt` (every token of plain text)."""
    epochs: float = 1.0
    """Passes over the training data (ignored when max_steps > 0)."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = run `epochs`)."""
    batch_size: int = 4
    """Samples per micro-batch (per rank)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 2e-4
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""
    scheduler: Scheduler = "cosine"
    """Learning-rate schedule after warmup: cosine, linear or constant."""
    warmup_steps: int = 0
    """Linear warmup steps (overrides warmup_ratio when > 0)."""
    warmup_ratio: float = 0.0
    """Warmup as a share of all optimizer steps."""
    min_lr_ratio: float = 0.0
    """Floor of cosine/linear decay, as a share of the peak LR."""
    max_grad_norm: float = 1.0
    """Clip the gradient norm to this (0 = no clipping)."""
    seed: int = 42
    """Seeds python, numpy and torch; with one seed two runs give the same losses."""
    token_batch: int = 0
    """0 = one step per batch; N > 0 = one optimizer step per window of N target tokens (SFT)."""
    ce_chunk_tokens: int = 0
    """Target tokens per chunk of the fused LM head + cross-entropy (the logits never exist whole, in forward or
    backward). 0 = auto: as many as keep one chunk's float32 logits under 256 MiB (441 tokens at a 151,936-token
    vocabulary, 1,365 at 49,152); larger chunks are a little faster and cost chunk x vocab x 4 bytes."""
    max_nan_steps: int = 5
    """Stop with a checkpoint after this many non-finite steps in a row."""
    log_every: int = 1
    """Emit a `step` event (and sync telemetry to the host) every this many optimizer steps."""
    eval_every: int = 0
    """Evaluate every this many optimizer steps (0 = only at epoch ends)."""
    eval_at_start: bool = True
    """Evaluate once before the first step, so later eval losses have a baseline."""
    save_every: int = 500
    """Checkpoint every this many optimizer steps (0 = only by time and at the end). 500, as in the HF Trainer,
    LLaMA-Factory and axolotl, so `nlirg train --resume` after a crash has something to start from."""
    save_every_minutes: float = 30.0
    """Also checkpoint once this many minutes have passed since the last checkpoint (0 = off): a slow run never
    loses more than this to a crash, whatever `save_every` says."""
    save_total_limit: int = 2
    """Keep at most this many checkpoints (oldest removed first; 0 = keep all)."""

    def check(self) -> list[str]:
        out = choice_problems(self, "training")
        for key in ("batch_size", "grad_accum", "log_every"):
            if getattr(self, key) < 1:
                out.append(f"training.{key}: {getattr(self, key)} must be >= 1")
        for key in ("max_steps", "token_batch", "ce_chunk_tokens", "warmup_steps", "eval_every", "save_every",
                    "save_every_minutes", "save_total_limit", "max_nan_steps"):
            if getattr(self, key) < 0:
                out.append(f"training.{key}: {getattr(self, key)} must be >= 0")
        if self.epochs <= 0 and self.max_steps == 0:
            out.append("training.epochs: must be > 0 when training.max_steps is 0")
        if self.lr <= 0:
            out.append(f"training.lr: {self.lr} must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            out.append(f"training.warmup_ratio: {self.warmup_ratio} must be in [0, 1)")
        if not 0 <= self.min_lr_ratio <= 1:
            out.append(f"training.min_lr_ratio: {self.min_lr_ratio} must be in [0, 1]")
        if self.max_grad_norm < 0:
            out.append(f"training.max_grad_norm: {self.max_grad_norm} must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            out.append(f"training.betas: {self.betas} must be two numbers in [0, 1)")
        if self.token_batch and self.type == "cpt":
            out.append("training.token_batch: only SFT supports token_batch; set it to 0 for cpt")
        return out


@dataclass
class LoraConfig:
    enabled: bool = True
    """Train a LoRA adapter (peft) instead of all weights."""
    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA alpha (scale = alpha / r)."""
    dropout: float = 0.05
    """Dropout on the LoRA input."""
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Modules to adapt: module names (q_proj, v_proj, ...) or `all-linear`."""

    def check(self) -> list[str]:
        out = []
        if self.r < 1:
            out.append(f"lora.r: {self.r} must be >= 1")
        if self.alpha < 1:
            out.append(f"lora.alpha: {self.alpha} must be >= 1")
        if not 0 <= self.dropout < 1:
            out.append(f"lora.dropout: {self.dropout} must be in [0, 1)")
        if not self.target_modules:
            out.append("lora.target_modules: give at least one module name or all-linear")
        return out


@dataclass
class NlirgParams:
    """NLIRG: the weighting curve and the zone table (defaults as in Y-Trainer; docs/design.md §5)."""

    enabled: bool = True
    """Weight token losses; false trains with plain cross-entropy whatever `weighting` says."""
    weighting: Weighting = "nlirg"
    """`nlirg`, `plain` (w = 1) or `dft` (w = exp(-L), detached)."""
    max_lr: float = 1.0
    """Height of both sigmoids."""
    k: float = 1.7
    """Slope of the rising sigmoid (easy side)."""
    x0: float = 1.2
    """Centre of the rising sigmoid."""
    loss_threshold: float = 3.0
    """Losses up to this use the rising sigmoid, above it the falling one."""
    fall_center: float = 6.2
    """Centre of the falling sigmoid (hard-coded 6.2 in the reference)."""
    fall_slope: float = 1.0
    """Slope of the falling sigmoid (hard-coded 1 in the reference)."""
    min_lr: float = 5e-8
    """Floor added on the falling side."""
    loss_deadline: float = 15.0
    """Tokens with loss at or above this get weight 0 (the zeroed zone)."""
    easy_max: float = 1.45
    """Zone bound: L <= easy_max is the easy (cut) zone."""
    hard_min: float = 6.6
    """Zone bound: hard_min <= L < loss_deadline is the hard (cut) zone."""
    protect_special_tokens: bool = True
    """Structural target tokens (the tokenizer's special tokens: end of turn, EOS, role markers) train with
    weight 1 and are kept out of the zones (counted apart as `special_tokens`); false weights them like any
    token, as the reference does (an end-of-turn token at loss >= loss_deadline is then zeroed).
    docs/evidence.md has the measurement behind the default."""

    @property
    def effective_weighting(self) -> Weighting:
        return self.weighting if self.enabled else "plain"

    def check(self) -> list[str]:
        out = choice_problems(self, "nlirg")
        if self.max_lr <= 0:
            out.append(f"nlirg.max_lr: {self.max_lr} must be > 0")
        if self.min_lr < 0:
            out.append(f"nlirg.min_lr: {self.min_lr} must be >= 0")
        if not 0 < self.easy_max < self.hard_min < self.loss_deadline:
            out.append(
                f"nlirg: zone bounds must satisfy 0 < easy_max ({self.easy_max}) < hard_min ({self.hard_min})"
                f" < loss_deadline ({self.loss_deadline})"
            )
        if not 0 < self.loss_threshold < self.loss_deadline:
            out.append(f"nlirg.loss_threshold: {self.loss_threshold} must be in (0, loss_deadline)")
        return out


@dataclass
class TelemetryConfig:
    flag_threshold: float = 8.0
    """A sample whose mean target loss reaches this is flagged (samples with zeroed tokens always are)."""
    max_flagged: int = 200
    """Keep at most this many flagged samples (worst first) in the live view."""
    peak_tflops: float = 0.0
    """Peak TFLOP/s of one device for the step events' MFU; 0 = look it up for a known GPU (H100, H200, A100,
    L40S, 4090, ...: dense bf16/fp16, or fp32 for fp32 runs); on the CPU or an unknown GPU MFU is then null."""
    report_to: list[Tracker] = field(default_factory=lambda: ["tensorboard"])
    """Trackers that get the run's scalars (rank 0), as the Hugging Face Trainer names them: `tensorboard` (tb/),
    `wandb`, `mlflow`, `trackio`; `[]` = none. Each but TensorBoard is an optional extra
    (`pip install 'nlirg-workbench[wandb]'`), offline with its files under the run directory unless its own
    environment variables say otherwise; a tracker that fails is one warning, never a stopped run
    (docs/export.md)."""

    def check(self) -> list[str]:
        out = [] if self.max_flagged >= 0 else [f"telemetry.max_flagged: {self.max_flagged} must be >= 0"]
        if self.peak_tflops < 0:
            out.append(f"telemetry.peak_tflops: {self.peak_tflops} must be >= 0 (0 = look it up)")
        allowed = typing.get_args(Tracker)
        out += [not_one_of("telemetry.report_to", t, allowed) for t in self.report_to if t not in allowed]
        if not self.flag_threshold >= 0:  # 0 flags every sample; written so that NaN fails too
            out.append(f"telemetry.flag_threshold: {self.flag_threshold} must be >= 0")
        return out


@dataclass
class EvalConfig:
    """Generation metrics during training, and the sets `nlirg eval` and `nlirg ab` score (docs/evaluate.md)."""

    generate_every: int = 0
    """Every this many optimizer steps, answer held-out prompts greedily and stream their metrics as `eval`
    events (accuracy, repetition, JSON validity; also before the first step with training.eval_at_start, and
    after the last); 0 = off."""
    domain: list[str] = field(default_factory=list)
    """Held-out instructions with reference answers (any data format; an optional `reference` key holds a short
    answer); empty = the run's evaluation records (data.eval or data.eval_fraction; the demo: its held-out set)."""
    general: list[str] = field(default_factory=list)
    """General instructions with short references and/or general text (perplexity), for retention in `nlirg eval`
    and `nlirg ab`; empty = none (the demo: builtin:general-instruct and builtin:general-text)."""
    max_samples: int = 32
    """During training: answer at most this many domain prompts per evaluation (0 = all)."""
    labels: list[str] = field(default_factory=list)
    """The domain set's answers are these labels (a classification set): an answer is right when it states its
    reference label and no other (docs/evaluate.md); empty = detect a small set of short repeating references."""
    max_new_tokens: int = 128
    """Longest generated answer, in tokens."""
    batch_size: int = 8
    """Prompts generated together (left-padded, with a KV cache)."""

    def check(self) -> list[str]:
        out = []
        for key in ("generate_every", "max_samples"):
            if getattr(self, key) < 0:
                out.append(f"eval.{key}: {getattr(self, key)} must be >= 0")
        for key in ("max_new_tokens", "batch_size"):
            if getattr(self, key) < 1:
                out.append(f"eval.{key}: {getattr(self, key)} must be >= 1")
        out += _missing_data("eval.domain", self.domain) + _missing_data("eval.general", self.general)
        return out


@dataclass
class OutputConfig:
    root: str = "runs"
    """Folder under which run directories `<name>-<yyyymmdd-hhmmss>/` are created (relative to the current
    folder); `nlirg --root DIR ...` overrides it."""
    name: str | None = None
    """Run name (default: the config file's stem; `train` for `nlirg train` without a config, `demo` for the
    demo)."""
    merge_lora: bool = False
    """Also write the adapter merged into its base, a full model, to final/merged (LoRA runs only)."""
    shared: bool = False
    """Let the run directory's group read it: folders 0750 and files 0640 instead of 0700 and 0600. A run holds
    training text (flagged samples, tokens in events), so by default only you can read it; a team sharing a
    box sets this (with output.root on a folder of their group, setgid so new runs take that group)."""

    def check(self) -> list[str]:
        if self.name is not None and (not self.name or "/" in self.name):
            return [f"output.name: '{self.name}' must be a non-empty name without '/'"]
        return []


@dataclass
class DistributedConfig:
    backend: Backend = "none"
    """`none` (one process, one device) or `deepspeed`."""
    num_procs: int = 1
    """DeepSpeed: processes (GPUs) on this node."""
    include: str | None = None
    """DeepSpeed: devices to use, e.g. `localhost:0,1,2,3` (instead of num_procs)."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage (2 or 3)."""
    offload: bool = False
    """DeepSpeed: offload optimizer (and ZeRO-3 parameters) to the CPU."""
    deepspeed_config: str | None = None
    """A DeepSpeed JSON config of your own; batch, accumulation, LR and precision come from this config."""
    hostfile: str | None = None
    """DeepSpeed hostfile for several nodes."""
    optimizer: DeepSpeedOptimizer = "torch"
    """DeepSpeed: `torch` (torch's fused AdamW, no build step) or `deepspeed` (the JSON's optimizer, e.g. FusedAdam)."""
    zero3_sharded_init: bool = True
    """ZeRO-3: build the model already sharded (`deepspeed.zero.Init` through transformers' DeepSpeed integration;
    rank 0 reads the checkpoint layer by layer), so no rank ever holds the whole model; false loads it whole on
    every rank first (for model code that breaks under zero.Init)."""

    def check(self) -> list[str]:
        out = choice_problems(self, "distributed")
        if self.include and self.num_procs != 1:
            out.append("distributed.include: give either include or num_procs, not both")
        if self.num_procs < 1:
            out.append(f"distributed.num_procs: {self.num_procs} must be >= 1")
        if self.zero_stage not in (0, 1, 2, 3):
            out.append(f"distributed.zero_stage: {self.zero_stage} must be 0, 1, 2 or 3")
        for key in ("deepspeed_config", "hostfile"):
            value = getattr(self, key)
            if value and not Path(value).expanduser().is_file():
                out.append(f"distributed.{key}: file '{value}' not found")
        return out


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    nlirg: NlirgParams = field(default_factory=NlirgParams)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> list[str]:
        problems: list[str] = []
        for f in dataclasses.fields(self):
            problems += getattr(self, f.name).check()
        if self.output.merge_lora and not self.lora.enabled:
            problems.append("output.merge_lora: only a LoRA run has an adapter to merge; with lora.enabled false, "
                            "final/ already holds the full model")
        problems += quantization_problems(self)
        if self.data.pack_length > 0 and self.training.type != "cpt":
            problems.append("data.pack_length: packing is for training.type cpt; set it to 0 for sft")
        return problems


def _missing_data(key: str, paths: list[str]) -> list[str]:
    """One problem per evaluation set that names an unknown builtin, a missing file or an uncached hub id (the
    checks of a data source)."""
    out = []
    for i, p in enumerate(paths):
        out += check_source(SourceSpec(path=p), f"{key}[{i}]" if len(paths) > 1 else key)
    return out


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or Path(value).expanduser().exists()
