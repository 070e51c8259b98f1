"""`nlirg plan`'s text: the predicted peak per GPU, its breakdown, and the changes that make a run fit."""

from __future__ import annotations

from trainer_core.plan import PlanResult
from trainer_core.plan.api import gb

ROWS = (
    ("weights", "weights"), ("gradients", "gradients"), ("optimizer", "optimizer (AdamW moments)"),
    ("activations", "activations"), ("head", "LM head chunk"), ("overhead", "overhead (CUDA context, allocator)"),
)


def describe_setup(result: PlanResult) -> str:
    s, m = result.setup, result.shape
    base = s.quantization if s.quantization != "none" else s.dtype
    kind = f"LoRA r={s.lora_r} on a {base} base" if s.lora else f"full fine-tuning ({s.dtype} compute)"
    zero = f", ZeRO-{s.zero_stage} over {s.gpus} GPUs" if s.zero_stage else ""
    return (f"{m.params() / 1e9:.2f}B parameters ({m.layers} layers, hidden {m.hidden}, vocab {m.vocab:,}); "
            f"{kind}; micro-batch {s.batch} x {s.seq} tokens; gradient checkpointing "
            f"{'on' if s.checkpointing else 'off'}{zero}")


def render_plan(result: PlanResult) -> str:
    parts = result.breakdown.as_dict()
    lines = [describe_setup(result), "", "predicted peak per GPU:"]
    for key, label in ROWS:
        lines.append(f"  {label:<38} {gb(parts[key]):>10}")
    lines.append(f"  {'peak':<38} {gb(result.peak_bytes):>10}   (not the sum: activations, the head's chunk and "
                 "gradients peak at different moments; docs/plan.md)")
    lines += ["", result.verdict()]
    if result.suggestions:
        lines.append("changes, in order of preference (each on top of the ones before):")
        for s in result.suggestions:
            sets = " ".join(f"--set {k}={_value(v)}" for k, v in s.change.items())
            mark = "fits" if result.gpu_mem_bytes and s.peak_bytes <= result.gpu_mem_bytes else "    "
            lines.append(f"  {mark} {gb(s.peak_bytes):>9}  {s.what}: {sets}")
    return "\n".join(lines)


def _value(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)
