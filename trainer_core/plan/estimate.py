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
    cuda: bool = True
    """False for the CPU comparison of bench.plan: no CUDA context, and dropout keeps its float noise, not a bool
    mask."""


@dataclass(frozen=True)
class Breakdown:
    weights: int
    gradients: int
    optimizer: int
    activations: int
    """At their high-water mark: every layer's saved tensors, or with gradient checkpointing the layer inputs
    plus one layer recomputed (`Activations.kept + recomputed`)."""
    head: int
    """The fused head's larger moment, its forward or (trained) its backward (`Head`)."""
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


def adapted(shape: ModelShape, s: Setup) -> dict[str, int]:
    """Input width of each module of a layer that LoRA adapts, by name."""
    return {n: a for n, (a, _) in shape.linears().items() if "all-linear" in s.lora_targets or n in s.lora_targets}


def master_autocast(s: Setup) -> bool:
    """Full fine-tuning in 16 bits without DeepSpeed: float32 master weights, the forward under autocast (so the
    residual stream and the norms stay float32, and each linear casts its input and its weight)."""
    return not s.lora and s.dtype != "fp32" and not s.zero_stage


def layer_saved_bytes(shape: ModelShape, s: Setup) -> float:
    """Bytes per token that autograd keeps for one decoder layer's backward (docs/plan.md lists each tensor).

    A 16-bit forward runs under autocast (train/loop.py), which casts a linear's float32 input or weight to the
    compute dtype and saves the cast."""
    h, i, q, kv = shape.hidden, shape.intermediate * shape.active_experts, shape.q_dim, shape.kv_dim
    a = DTYPE_BYTES[s.dtype]
    # Each RMSNorm keeps its input in float32 (a 16-bit input is upcast; in float32 the input itself) and its
    # reciprocal RMS; SDPA keeps q and k after RoPE, v, its output (which is also o_proj's input) and a float32
    # log-sum-exp per head, never the s x s scores; SwiGLU keeps gate, SiLU(gate) and up.
    total = 2 * (h + 1) * 4 + (2 * q + 2 * kv) * a + shape.heads * 4 + 3 * i * a
    if not s.lora:  # trained weights: each norm keeps its normalised input, each linear its input
        if master_autocast(s):  # a norm's float32 output is cast once per linear that reads it (q, k, v; gate, up)
            return total + 2 * h * 4 + 5 * h * a + i * a
        return total + 2 * h * a + 2 * h * a + i * a  # q, k, v share the first norm's output, gate and up the second
    mods = adapted(shape, s)
    mask = 1 if s.cuda else 4  # CUDA's fused dropout keeps a bool mask; the CPU's the float32 noise it multiplied by
    # peft casts each adapted module's input to the float32 adapter's dtype; lora_A keeps its input: in float32 the
    # dropout's output (without dropout the module's input, shared: q, k, v the first norm's output, gate and up
    # the second's, down_proj the SwiGLU product; o_proj's is the attention output, counted above), in 16 bits
    # the autocast copy of it, one per module.
    if s.lora_dropout > 0:
        total += sum(w * (a + mask) for w in mods.values())
    elif a == 4:
        total += 4 * (h * bool(mods.keys() & {"q_proj", "k_proj", "v_proj"})
                      + h * bool(mods.keys() & {"gate_proj", "up_proj"}) + i * ("down_proj" in mods))
    else:
        total += sum(w * a for w in mods.values())
    return total + len(mods) * s.lora_r * a  # lora_A's output, kept by lora_B


def weight_casts(shape: ModelShape, s: Setup) -> int:
    """One layer's float32 weights cast to the compute dtype by autocast and saved by their matmuls (the LoRA
    adapter's, or every linear's under full fine-tuning with float32 master weights); 0 in float32."""
    if s.dtype == "fp32" or (not s.lora and not master_autocast(s)):
        return 0
    cast = trainable_params(shape, s) if s.lora else shape.linear_params()
    return cast * DTYPE_BYTES[s.dtype] // shape.layers


@dataclass(frozen=True)
class Activations:
    """The step's activation terms in bytes (docs/plan.md, "The step's high-water mark")."""

    each: int
    """What each layer keeps through the forward: its saved tensors (`layer_saved_bytes` x tokens), or with
    gradient checkpointing its input."""
    layers: int
    rope: int
    """RoPE's cos and sin, shared by the layers."""
    recomputed: int
    """With gradient checkpointing, the layer recomputed in the backward (its input is already kept); else 0."""
    tail: int
    """The final norm's saved tensors: its float32 input (+ its normalised input when its weight trains)."""
    tail_out: int
    """The final norm's output, alive until the head has run."""
    backward: int
    """What a layer's backward adds while its saved tensors are alive: SwiGLU's gradients of gate and up (t x i
    each) and the residual stream's gradient with the branch's (t x h each); float32 through a LoRA adapter."""
    forward_only: int = 0
    """Of `each`, what is freed when the forward ends (with checkpointing, autocast's cached weight casts)."""

    @property
    def kept(self) -> int:
        """Alive at the end of the forward."""
        return self.each * self.layers + self.rope


def activations(shape: ModelShape, s: Setup) -> Activations:
    tokens = s.batch * s.seq
    h, a = shape.hidden, DTYPE_BYTES[s.dtype]
    stream = 4 if master_autocast(s) else a  # the residual stream's dtype
    casts = weight_casts(shape, s)
    layer = int(tokens * layer_saved_bytes(shape, s)) + casts
    rope = tokens * 2 * shape.head_dim * stream
    tail, tail_out = tokens * ((h + 1) * 4 + (0 if s.lora else h * stream)), tokens * h * stream
    backward = tokens * 2 * (shape.intermediate * shape.active_experts + h) * (4 if s.lora else a)
    if s.checkpointing:  # the recompute's norm keeps the kept input itself when it is already float32
        recomputed = layer - (tokens * h * stream if stream == 4 else 0)
        # autocast's cache holds every layer's weight casts until the forward ends
        return Activations(tokens * h * stream + casts, shape.layers, rope, recomputed, tail, tail_out, backward,
                           forward_only=casts)
    return Activations(layer, shape.layers, rope, 0, tail, tail_out, backward)


@dataclass(frozen=True)
class Head:
    """The fused LM head + cross-entropy (train/loss/head_ce.py), in bytes."""

    forward: int
    """At the end of the forward: the target hidden states gathered, one chunk of logits, and for a frozen head the
    targets' precomputed gradient."""
    backward: int
    """A trained head's backward (0 for a frozen one): the float32 weight gradient, the hidden states' gradient,
    one chunk of logits recomputed."""


def head_bytes(shape: ModelShape, s: Setup) -> Head:
    targets = s.batch * s.seq  # every token taken as a target (an upper bound for SFT)
    if s.token_batch:
        targets = min(targets, s.token_batch)
    chunk = min(s.ce_chunk or max(1, HEAD_CHUNK_BUDGET // (4 * shape.vocab)), targets)
    a = DTYPE_BYTES[s.dtype]
    stream = 4 if master_autocast(s) else a
    # One chunk's float32 logits, softmaxed and turned into their gradient in place; in 16 bits also the
    # compute-dtype logits before the upcast and the gradient cast back for its matmul.
    logits = chunk * shape.vocab * (4 + (a if a != 4 else 0)) + chunk * shape.hidden * a
    gathered = targets * shape.hidden * stream  # hidden[rows, cols]
    weight_copy = shape.vocab * shape.hidden * a if master_autocast(s) else 0  # the float32 head cast for the matmul
    if s.lora:  # frozen head: the hidden states' gradient is formed in the forward
        return Head(forward=gathered * 2 + logits, backward=0)
    grad_w = shape.vocab * shape.hidden * (4 + (a if a != 4 else 0))  # float32 sum of 16-bit chunk products
    return Head(forward=gathered + logits + weight_copy + targets * 4,
                backward=gathered * 2 + logits + weight_copy + grad_w)


def step_peak(shape: ModelShape, s: Setup, act: Activations, head: Head, gradients: int) -> int:
    """The step's high-water mark over the weights and optimizer states: the largest of its moments.

    - the end of the forward: every kept activation, the final norm and the head's forward;
    - a trained head's backward: the kept activations, its gradients (the head's weight gradient stays);
    - a layer's backward, at the last layer and at the first (in between it moves linearly): the activations of
      the layers not yet done (with checkpointing their inputs plus the layer recomputed), the backward's
      gradients in flight, and the weight gradients written so far;
    - the end of the backward: every gradient, plus a trained tied embedding's dense gradient being added to the
      head's."""
    head_grad = 4 * shape.vocab * shape.hidden if not s.lora else 0
    if s.zero_stage >= 2:
        head_grad //= s.gpus
    layer_grad = (gradients - head_grad * (1 if shape.tied else 2)) // shape.layers
    forward = act.kept + act.tail + act.tail_out + head.forward
    head_back = act.kept - act.forward_only * act.layers + act.tail + head.backward
    moving = act.recomputed + act.backward + head_grad
    kept = act.kept - act.forward_only * act.layers  # what the backward starts with
    last = kept + moving + layer_grad
    first = act.rope + act.each - act.forward_only + moving + layer_grad * shape.layers
    end = gradients + (4 * shape.vocab * shape.hidden if not s.lora and shape.tied else 0)
    return max(forward, head_back, last, first, end)


def breakdown(shape: ModelShape, s: Setup) -> Breakdown:
    act, head, gradients = activations(shape, s), head_bytes(shape, s), gradient_bytes(shape, s)
    return Breakdown(weights=weight_bytes(shape, s), gradients=gradients, optimizer=optimizer_bytes(shape, s),
                     activations=act.kept + act.recomputed, head=max(head.forward, head.backward),
                     overhead=GPU_OVERHEAD if s.cuda else 0, step=step_peak(shape, s, act, head, gradients))
