"""Peak memory per GPU of one training step, from the model's shape and the run config (docs/plan.md).

Every term is a formula in bytes; docs/plan.md derives each one and gives the errors `bench.plan` measured.
Torch-free: the TUI's Config pane runs it on every edit.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer_core.plan.shape import ModelShape

GIB = 1 << 30
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
FOUR_BIT_BYTES = {True: 0.5 + 1 / 64 + 4 / (64 * 256), False: 0.5 + 4 / 64}
"""Bytes per 4-bit weight: the packed nibble plus its block's absmax (block 64; double quantization stores the
absmax in 8 bits with a float32 constant per 256 blocks)."""
HEAD_CHUNK_BUDGET = 256 << 20
"""The fused head's auto chunk: float32 logits of one chunk under 256 MiB (training.ce_chunk_tokens: 0)."""
GPU_OVERHEAD = 1 << 30
"""A GPU process's memory outside tensors: CUDA context and kernels, cuBLAS workspace, allocator slack."""
MLP_NAMES = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Setup:
    """The settings of a run that memory depends on (built from a RunConfig by `plan.api`)."""

    lora: bool
    lora_r: int
    lora_targets: tuple[str, ...]
    lora_dropout: float
    quantization: str
    double_quant: bool
    dtype: str
    """Compute precision as resolved: fp32, bf16 or fp16."""
    checkpointing: bool
    batch: int
    seq: int
    """Tokens per row: max_length, or pack_length for packed CPT."""
    token_batch: int
    ce_chunk: int
    zero_stage: int
    """0 without DeepSpeed."""
    gpus: int
    overhead: bool = True
    """False for the CPU comparison of bench.plan (no CUDA context)."""


@dataclass(frozen=True)
class Breakdown:
    weights: int
    gradients: int
    optimizer: int
    activations: int
    """At their high-water mark: every layer's saved tensors, or with gradient checkpointing the layer inputs
    plus one layer recomputed."""
    head: int
    overhead: int
    step: int
    """What one step adds on top of the weights and the optimizer states at its high-water mark (`step_peak`)."""

    @property
    def peak(self) -> int:
        return self.weights + self.optimizer + self.overhead + self.step

    def as_dict(self) -> dict[str, int]:
        return {"weights": self.weights, "gradients": self.gradients, "optimizer": self.optimizer,
                "activations": self.activations, "head": self.head, "overhead": self.overhead}



def trainable_params(shape: ModelShape, s: Setup) -> int:
    if not s.lora:
        return shape.params()
    total = 0
    for name, (fan_in, fan_out) in shape.linears().items():
        if "all-linear" in s.lora_targets or name in s.lora_targets:
            experts = shape.experts if name in MLP_NAMES else 1
            total += s.lora_r * (fan_in + fan_out) * experts
    return total * shape.layers


def weight_bytes(shape: ModelShape, s: Setup) -> int:
    """The model as held on one GPU: base (by dtype or quantization) plus a float32 adapter."""
    adapter = 4 * trainable_params(shape, s) if s.lora else 0
    if s.quantization != "none":  # embeddings, head and norms stay in the compute dtype (train/quantized.py)
        per = FOUR_BIT_BYTES[s.double_quant] if s.quantization in ("nf4", "fp4") else 1.0
        return int(shape.linear_params() * per + DTYPE_BYTES[s.dtype] * shape.other_params()) + adapter
    if s.lora:
        base = DTYPE_BYTES[s.dtype] * shape.params()
    elif s.zero_stage and s.dtype != "fp32":
        base = 2 * shape.params()  # DeepSpeed holds 16-bit weights; the float32 master is an optimizer state
    else:
        base = 4 * shape.params()  # float32 master weights, forward under autocast
    return (base // s.gpus if s.zero_stage == 3 else base) + adapter


def gradient_bytes(shape: ModelShape, s: Setup) -> int:
    grads = 4 * trainable_params(shape, s)
    return grads // s.gpus if s.zero_stage >= 2 else grads


def optimizer_bytes(shape: ModelShape, s: Setup) -> int:
    """AdamW's two float32 moments, plus DeepSpeed's float32 master copy under 16-bit full fine-tuning."""
    n = trainable_params(shape, s)
    per = 8 + (4 if s.zero_stage and not s.lora and s.dtype != "fp32" else 0)
    return per * n // s.gpus if s.zero_stage >= 1 else per * n


def layer_activation_elements(shape: ModelShape, s: Setup) -> tuple[float, float]:
    """(elements at the activation width, elements held in float32) one decoder layer keeps per token for its
    backward."""
    h, i, q, kv = shape.hidden, shape.intermediate * shape.active_experts, shape.q_dim, shape.kv_dim
    # Attention (SDPA keeps q, k, v after RoPE, its output and a log-sum-exp, never the s x s scores), the
    # output projection's input, the SwiGLU MLP's gate, SiLU(gate), up and their product.
    width = 3 * q + 2 * kv + 4 * i
    norms = 4 * h if s.lora else 6 * h  # each RMSNorm: its input and output (+ the normalised input when trained)
    if s.lora and s.lora_dropout > 0:  # peft's dropout copies each adapted module's input, with a bool mask
        width += 1.25 * sum(a for n, (a, _) in shape.linears().items()
                            if "all-linear" in s.lora_targets or n in s.lora_targets)
    if s.dtype == "fp32":
        return width + norms, 0.0
    return width + norms / 2, norms / 2  # RMSNorm upcasts its input to float32 and keeps it


def activation_parts(shape: ModelShape, s: Setup) -> tuple[int, int]:
    """(bytes kept through the whole forward, bytes of the layer being recomputed in the backward). Without
    gradient checkpointing every layer's tensors are kept and nothing is recomputed."""
    tokens = s.batch * s.seq
    width, fp32 = layer_activation_elements(shape, s)
    act = DTYPE_BYTES[s.dtype]
    per_layer = int(tokens * (width * act + fp32 * 4))
    if s.checkpointing:  # each layer's input kept; one layer recomputed at a time in the backward
        return tokens * shape.hidden * act * shape.layers, per_layer
    return per_layer * shape.layers + tokens * shape.hidden * 4 * 2, 0  # + the final norm's input and output


def activation_bytes(shape: ModelShape, s: Setup) -> int:
    kept, recomputed = activation_parts(shape, s)
    return kept + recomputed


def step_peak(shape: ModelShape, s: Setup, head: int, gradients: int) -> int:
    """The step's high-water mark over the weights and optimizer states. The fused head runs at the end of the
    forward, when every kept activation is alive, and frees its chunk before the backward (a frozen head's
    gradient is formed in the forward); a checkpointed layer is recomputed only after that. The backward frees each
    layer's activations as it writes that layer's gradients, so activations and gradients never peak together."""
    kept, recomputed = activation_parts(shape, s)
    return max(kept + max(head, recomputed), gradients)


def head_bytes(shape: ModelShape, s: Setup) -> int:
    """The fused LM head + cross-entropy: one chunk of float32 logits and its gradient, and the target hidden
    states' gradient it keeps (train/head_ce.py)."""
    targets = s.batch * s.seq
    if s.token_batch:
        targets = min(targets, s.token_batch)
    chunk = s.ce_chunk or max(1, HEAD_CHUNK_BUDGET // (4 * shape.vocab))
    chunk = min(chunk, targets)
    extra = DTYPE_BYTES[s.dtype] if s.dtype != "fp32" else 0
    return int(chunk * shape.vocab * (8 + extra) + targets * shape.hidden * 4)


def breakdown(shape: ModelShape, s: Setup) -> Breakdown:
    head, gradients = head_bytes(shape, s), gradient_bytes(shape, s)
    return Breakdown(weights=weight_bytes(shape, s), gradients=gradients, optimizer=optimizer_bytes(shape, s),
                     activations=activation_bytes(shape, s), head=head, overhead=GPU_OVERHEAD if s.overhead else 0,
                     step=step_peak(shape, s, head, gradients))
