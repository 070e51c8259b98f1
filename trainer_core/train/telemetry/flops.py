"""Model FLOPs utilisation (MFU): the FLOPs the trained tokens need, per second, over the devices' peak.

What is counted (one multiply-add = 2 FLOPs), from the model's own shapes, for the tokens actually trained:

- Every `nn.Linear` of the model (attention projections, MLP, LoRA's A and B, the LM head) with `p` weights
  costs `2p` per token in the forward, `2p` in the backward for the gradient of its input, and `2p` more for the
  gradient of its weight when that weight trains: 6p for a trained weight, 4p for a frozen one (LoRA's base).
  The input-gradient part counts for every layer, since gradients must reach the lowest trainable weight.
- The decoder's linears run on every input token; the LM head only on target tokens (this trainer applies it
  there only).
- Attention scores: per layer, a row of T tokens attends over T(T+1)/2 query-key pairs under the causal mask
  (the half that is computed); QK^T and AV cost 4 * d_attn per pair forward, twice that backward: 12 * d_attn
  per pair per layer. Pairs are counted per row (per document for packed rows, from the document lengths that
  `collate` sees).
- Not counted: embedding lookups, norms, activations, softmax, rotary, the optimizer, and recomputation
  (gradient checkpointing, token_batch's window prefixes, the fused head's backward recompute): these are model
  FLOPs, what the tokens need, not what the hardware ran.

For full fine-tuning this is the usual 6N per token plus attention; for LoRA it is about 4N plus 6N_lora.
MFU = counted FLOPs / elapsed seconds / (peak FLOP/s per device x devices). The peak comes from
`telemetry.peak_tflops`, else from the table below for a known GPU (dense tensor-core bf16/fp16 for bf16/fp16
runs; plain fp32 for fp32 runs); on the CPU or an unknown device MFU is null.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GPU_PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    # name fragment (lower case, most specific first): (dense bf16/fp16 tensor TFLOP/s, fp32 TFLOP/s)
    "gh200": (989.0, 67.0),
    "h200": (989.0, 67.0),
    "h100 pcie": (756.0, 51.0),
    "h100": (989.0, 67.0),
    "h800": (989.0, 67.0),
    "b200": (2250.0, 80.0),
    "a100": (312.0, 19.5),
    "a800": (312.0, 19.5),
    "l40s": (362.0, 91.6),
    "l40": (181.0, 90.5),
    "l4": (121.0, 30.3),
    "a10g": (70.0, 31.2),
    "a10": (125.0, 31.2),
    "a6000": (155.0, 38.7),
    "rtx 6000 ada": (364.0, 91.1),
    "4090": (165.0, 82.6),
    "3090": (71.0, 35.6),
    "v100": (125.0, 15.7),
    "t4": (65.0, 8.1),
    "mi300x": (1307.0, 163.4),
    "mi250x": (383.0, 47.9),
}
"""Vendor datasheet peaks without sparsity. A name not listed gives null MFU unless telemetry.peak_tflops is set."""


def device_peak_tflops(device: torch.device, dtype: torch.dtype, configured: float = 0.0) -> float | None:
    """Peak TFLOP/s of one device for this compute dtype: the configured value, the table's, or None."""
    if configured > 0:
        return configured
    if device.type != "cuda":
        return None
    return peak_for_name(torch.cuda.get_device_name(device), dtype)


def peak_for_name(name: str, dtype: torch.dtype) -> float | None:
    """The table's peak TFLOP/s for a device name such as "NVIDIA H100 80GB HBM3", or None when unknown."""
    lower = name.lower()
    for fragment, (tensor, fp32) in GPU_PEAK_TFLOPS.items():
        if fragment in lower:
            return fp32 if dtype == torch.float32 else tensor
    return None


@dataclass(frozen=True)
class ModelFlops:
    """FLOPs per input token, per target token and per attended query-key pair of one model in training."""

    per_input_token: int
    per_target_token: int
    per_attention_pair: int

    @classmethod
    def of(cls, model: torch.nn.Module, head: torch.nn.Module | None) -> ModelFlops:
        body = target = 0
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                weights = module.in_features * module.out_features
                cost = (6 if module.weight.requires_grad else 4) * weights
                if module is head:
                    target += cost
                else:
                    body += cost
        cfg = getattr(model, "config", None)
        layers = int(getattr(cfg, "num_hidden_layers", 0) or 0)
        heads = int(getattr(cfg, "num_attention_heads", 0) or 0)
        head_dim = int(getattr(cfg, "head_dim", 0) or (getattr(cfg, "hidden_size", 0) or 0) // max(heads, 1))
        return cls(per_input_token=body, per_target_token=target, per_attention_pair=12 * layers * heads * head_dim)

    def step_flops(self, input_tokens: int, target_tokens: int, attention_pairs: int) -> float:
        return float(self.per_input_token * input_tokens + self.per_target_token * target_tokens
                     + self.per_attention_pair * attention_pairs)


class MfuMeter:
    """Turns a logging interval's counts into model TFLOP/s and MFU. Holds no moving state: the interval's
    attention pairs are counted in the loop's `Interval` (loop_state.py) with its tokens."""

    def __init__(self, flops: ModelFlops, peak_tflops: float | None, world_size: int):
        self.flops = flops
        self.peak = peak_tflops * 1e12 * world_size if peak_tflops else None

    def interval(self, input_tokens: int, target_tokens: int, seconds: float, pairs: int
                 ) -> tuple[float, float | None]:
        """(model TFLOP/s achieved, MFU or None) of an interval of `pairs` attended query-key pairs."""
        rate = self.flops.step_flops(input_tokens, target_tokens, pairs) / max(seconds, 1e-9)
        return rate / 1e12, (rate / self.peak if self.peak else None)
