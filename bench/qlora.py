"""QLoRA against LoRA on a model with real dimensions: weight bytes, whole-step peak memory, step time, loss.

    python -m bench.qlora            # SmolLM2-135M (builtin), 4 rows x 256 tokens, 8 steps per variant
    python -m bench.qlora --quick    # the same model, 2 rows x 128 tokens, 3 steps
    python -m bench.qlora --model PATH_OR_ID --steps 20 --quantization nf4

Two variants, each in a fresh process (so one's heap never counts in the other's peak), built by the trainer's
own loader (`train.model.load_model`: bitsandbytes 4-bit base, k-bit preparation, gradient checkpointing as
configured, the LoRA adapter) and stepped through the trainer's loss step (fused LM head + cross-entropy, NLIRG
weights) and AdamW, on the same demo rows in the same order with the same seed:

- `lora`: the base in the compute precision (`model.dtype: auto`: bf16 on a GPU, fp32 on the CPU);
- `qlora`: the base in `--quantization` (default nf4, double quantization on).

Reported (the last line is one JSON object):
- `weight_bytes_ratio_vs_bf16`: bytes of the quantized linear layers (packed 4-bit weights and their quantization
  constants) over the same layers in bf16 (target <= 0.32; NF4 with double quantization is ~0.26);
- `peak_ratio_vs_lora`: the whole step's peak (model, activations, adapter gradients and AdamW states) over the
  LoRA variant's. On a GPU: `torch.cuda.max_memory_allocated`. On the CPU: the resident-set high-water mark over
  the steps minus the resident set before the model was loaded (glibc's mmap threshold pinned, as bench.memory);
- `step_time_ratio_vs_lora`: median step time, qlora over lora (the first step is a warm-up and not counted);
- `loss_gap`: the qlora variant's mean loss over the last half of the steps minus the lora variant's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("lora", "qlora")


def run_variant(args: argparse.Namespace) -> dict:
    """One variant, in this process: its losses, step times, peak and weight bytes."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import bitsandbytes  # noqa: F401 - imported by both variants so the baseline holds the same libraries
    import psutil
    import torch

    from bench.memory import PeakCuda, pin_malloc
    from trainer_core.config import LoraConfig, ModelConfig, NlirgParams
    from trainer_core.data.files import read_records
    from trainer_core.train.data.batch import build_samples, collate
    from trainer_core.train.loss.step import loss_step
    from trainer_core.train.model.load import compute_dtype, load_model, load_tokenizer, resolve

    trim = pin_malloc()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    quantization = args.quantization if args.variant == "qlora" else "none"
    cfg = ModelConfig(path=args.model, quantization=quantization, gradient_checkpointing=True)
    dtype = compute_dtype(cfg, device)
    path = resolve(cfg)
    tok_cfg = ModelConfig(path=args.tokenizer or args.model)
    tokenizer = load_tokenizer(resolve(tok_cfg), tok_cfg)
    samples, _ = build_samples(tokenizer, read_records(["builtin:demo"]), "sft", args.length)
    trim()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if device.type == "cuda" else psutil.Process().memory_info().rss
    torch.manual_seed(0)
    model = load_model(path, cfg, LoraConfig(r=16, alpha=32, dropout=0.0), dtype, device)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    trim()
    peak = PeakCuda() if device.type == "cuda" else _RssFrom(before)
    losses, times = [], []
    for step in range(args.steps):
        rows = [samples[(step * args.batch + i) % len(samples)] for i in range(args.batch)]
        batch = collate(rows, tokenizer.pad_token_id, 8).to(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = loss_step(model, batch, NlirgParams())
        (out.weighted_sum / out.nonzero.clamp(min=1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.tokens.losses.mean()))  # host sync: ends the step's kernels before the clock
        times.append(time.perf_counter() - t0)
    whole = peak.growth() + (peak.base - before if device.type == "cuda" else 0)
    return {"variant": args.variant, "losses": losses, "step_s": times, "peak_bytes": whole,
            **weight_bytes(model), "device": device.type, "dtype": str(dtype).replace("torch.", "")}


class _RssFrom:
    """The resident-set high-water mark from now on (VmHWM after a reset), counted from `origin` bytes."""

    def __init__(self, origin: int) -> None:
        from bench.memory import PeakRss

        self._peak = PeakRss()
        self.base = origin
        self._offset = self._peak.base - origin

    def growth(self) -> int:
        return self._peak.growth() + self._offset


def weight_bytes(model) -> dict:
    """Bytes of the bitsandbytes linear layers' weights and constants, and of the same layers in bf16."""
    import bitsandbytes as bnb

    stored = bf16 = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            w = module.weight
            stored += w.numel() * w.element_size() + _quant_state_bytes(w.quant_state)
            bf16 += 2 * w.quant_state.shape.numel()
    return {"quantized_linear_bytes": stored, "bf16_linear_bytes": bf16}


def _quant_state_bytes(state) -> int:
    total = state.absmax.numel() * state.absmax.element_size() + state.code.numel() * state.code.element_size()
    if getattr(state, "state2", None) is not None:  # double quantization: absmax quantized to 8 bits
        total += _quant_state_bytes(state.state2) + state.offset.numel() * state.offset.element_size()
    return total


def summarize(results: dict[str, dict], tokens: int) -> dict:
    """The JSON line's ratios; `tokens` per step for tokens/s."""
    lora, qlora = results["lora"], results["qlora"]
    half = max(1, len(lora["losses"]) // 2)
    timed = slice(1, None) if len(lora["step_s"]) > 1 else slice(None)
    return {
        "weight_bytes_ratio_vs_bf16": round(qlora["quantized_linear_bytes"] / qlora["bf16_linear_bytes"], 4),
        "peak_ratio_vs_lora": round(qlora["peak_bytes"] / lora["peak_bytes"], 4),
        "step_time_ratio_vs_lora": round(statistics.median(qlora["step_s"][timed])
                                         / statistics.median(lora["step_s"][timed]), 4),
        "loss_gap": round(statistics.mean(qlora["losses"][-half:]) - statistics.mean(lora["losses"][-half:]), 4),
        "peak_bytes_lora": lora["peak_bytes"], "peak_bytes_qlora": qlora["peak_bytes"],
        "final_loss_lora": round(lora["losses"][-1], 4), "final_loss_qlora": round(qlora["losses"][-1], 4),
        "tokens_per_s_lora": round(tokens / statistics.median(lora["step_s"][timed]), 1),
        "tokens_per_s_qlora": round(tokens / statistics.median(qlora["step_s"][timed]), 1),
        "device": lora["device"], "dtype": lora["dtype"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rows x 128 tokens, 3 steps")
    ap.add_argument("--model", default="builtin:smollm2-135m")
    ap.add_argument("--quantization", default="nf4", choices=("nf4", "fp4"))
    ap.add_argument("--steps", type=int, default=0, help="steps per variant (default 8, --quick 3)")
    ap.add_argument("--tokenizer", default="", help=argparse.SUPPRESS)  # a random-weights model has none
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one variant, in a child process
    ap.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--length", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.steps = args.steps or (3 if args.quick else 8)
    args.batch = args.batch or (2 if args.quick else 4)
    args.length = args.length or (128 if args.quick else 256)
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    compare(args)


def compare(args: argparse.Namespace) -> None:
    """Both variants, each in a fresh process, and the JSON line."""
    results = {}
    for variant in VARIANTS:
        cmd = [sys.executable, "-m", "bench.qlora", "--variant", variant, "--model", args.model, "--quantization",
               args.quantization, "--tokenizer", args.tokenizer, "--steps", str(args.steps), "--batch",
               str(args.batch), "--length", str(args.length)]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if done.returncode != 0:
            sys.exit(f"bench.qlora: the {variant} variant failed:\n{done.stderr[-3000:]}")
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{variant:5s} peak {results[variant]['peak_bytes'] / 2**20:8.1f} MiB  step "
              f"{statistics.median(results[variant]['step_s']):.2f} s  losses "
              f"{' '.join(f'{x:.3f}' for x in results[variant]['losses'])}", flush=True)
    out = summarize(results, args.batch * args.length)
    out.update({"model": args.model, "quantization": args.quantization, "steps": args.steps, "batch": args.batch,
                "length": args.length})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
