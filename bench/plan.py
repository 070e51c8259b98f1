"""The planner's prediction against measurement: peak memory growth of one training step on this machine.

    python -m bench.plan            # 7 configs: LoRA, full, gradient checkpointing on/off, 2 lengths, QLoRA
    python -m bench.plan --quick    # 4 of them at shorter lengths

A Llama-shaped model (hidden 256, intermediate 768, 6 layers, 4 heads, 2 KV heads, vocabulary 4,096, random
weights) is written once as a model folder; each config then runs in a fresh process: the trainer's loader
(`train.model.load_model`, bitsandbytes for QLoRA), one unmeasured warm-up step (so AdamW's states exist, as in a
steady run), then one measured step (the trainer's loss step: fused head + cross-entropy, NLIRG weights; backward;
AdamW). Measured: the resident-set high-water mark during that step minus the resident set before it (glibc's
mmap threshold pinned at 64 KiB, see MMAP_THRESHOLD, and the heap trimmed first). Predicted: the planner's step
term (`Breakdown.step`: the largest of the step's moments, docs/plan.md) for the same config on the CPU in float32
without a GPU's overhead.
The last line is one JSON object; `max_rel_error` is the largest |predicted - measured| / measured.

On a GPU, `python -m bench.real_shapes` (bench/gpu_check.sh) compares the planner with max_memory_allocated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.random_model import write_random_model

SHAPE = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 768,
         "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096,
         "tie_word_embeddings": True, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}
BATCH = 2
CONFIGS = {  # name: (--set overrides, max_length)
    "lora-512": (["lora.enabled=true"], 512),
    "lora-1024": (["lora.enabled=true"], 1024),
    "lora-gc-1024": (["lora.enabled=true", "model.gradient_checkpointing=true"], 1024),
    "full-512": (["lora.enabled=false"], 512),
    "full-gc-1024": (["lora.enabled=false", "model.gradient_checkpointing=true"], 1024),
    "qlora-gc-1024": (["lora.enabled=true", "model.quantization=nf4", "model.gradient_checkpointing=true"], 1024),
    "qlora-512": (["lora.enabled=true", "model.quantization=nf4"], 512),
}
MMAP_THRESHOLD = 64 << 10
"""Tensors of 64 KiB and more get their own mapping, returned to the kernel when freed. At glibc's 1 MiB the
many 64 KiB-1 MiB activations of these shapes (a 512-token LoRA dropout output is 512 KiB) live on the heap,
whose freed holes stay resident: the resident set then ran 20-55% above the bytes of live tensors (the profiler's
allocation record) in this bench, an artefact of the host allocator that a GPU's caching allocator does not share.
At 64 KiB the resident-set growth equals the live tensors' high-water mark within 1%."""
QUICK = {"lora-256": (["lora.enabled=true"], 256), "lora-gc-512": CONFIGS["lora-gc-1024"][0:1] + (512,),
         "full-256": (["lora.enabled=false"], 256), "qlora-gc-512": CONFIGS["qlora-gc-1024"][0:1] + (512,)}


def run_config(model_dir: str, sets: list[str]) -> dict:
    """In this process: build the model as the trainer does, warm up one step, measure the next."""
    import torch

    from bench.memory import PeakRss, pin_malloc
    from trainer_core.config import build_config
    from trainer_core.train.data.batch import Batch
    from trainer_core.train.loss.step import loss_step
    from trainer_core.train.model.load import load_model

    cfg = build_config(None, [f"model.path={model_dir}", "model.dtype=fp32", *sets])
    trim = pin_malloc(MMAP_THRESHOLD)
    torch.manual_seed(0)
    model = load_model(model_dir, cfg.model, cfg.lora, torch.float32, torch.device("cpu"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    length = cfg.data.max_length
    ids = torch.randint(3, SHAPE["vocab_size"], (BATCH, length))
    batch = Batch(ids, ids.clone(), torch.ones_like(ids), torch.arange(length).expand(BATCH, -1), list(range(BATCH)))

    def step() -> None:
        out = loss_step(model, batch, cfg.nlirg)
        (out.weighted_sum / out.nonzero.clamp(min=1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    trim()
    peak = PeakRss()
    step()
    return {"measured": peak.growth()}


def predicted(model_dir: str, sets: list[str]) -> dict:
    from trainer_core.config import build_config
    from trainer_core.plan.api import setup_of
    from trainer_core.plan.estimate import breakdown
    from trainer_core.plan.shape import read_model_config, shape_from_config

    cfg = build_config(None, [f"model.path={model_dir}", "model.dtype=fp32", *sets])
    parts = breakdown(shape_from_config(read_model_config(model_dir)), setup_of(cfg, device="cpu"))
    return {"predicted": parts.step, **{k: v for k, v in parts.as_dict().items() if k in ("activations", "head",
                                                                                             "gradients")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--one", nargs=2, metavar=("MODEL_DIR", "SETS_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_config(args.one[0], json.loads(args.one[1]))))
        return
    configs = QUICK if args.quick else CONFIGS
    rows = {}
    with tempfile.TemporaryDirectory(prefix="nlirg-bench-plan-") as tmp:
        model_dir = str(Path(tmp) / "model")
        write_random_model(Path(model_dir), SHAPE)
        for name, (sets, length) in configs.items():
            sets = [*sets, f"data.max_length={length}", f"training.batch_size={BATCH}", "lora.dropout=0.05"]
            done = subprocess.run([sys.executable, "-m", "bench.plan", "--one", model_dir, json.dumps(sets)],
                                  capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if done.returncode != 0:
                sys.exit(f"bench.plan: {name} failed:\n{done.stderr[-3000:]}")
            row = {**json.loads(done.stdout.strip().splitlines()[-1]), **predicted(model_dir, sets)}
            row["rel_error"] = round((row["predicted"] - row["measured"]) / row["measured"], 4)
            rows[name] = row
            print(f"{name:14s} measured {row['measured'] / 2**20:8.1f} MiB  predicted {row['predicted'] / 2**20:8.1f} "
                  f"MiB  error {row['rel_error']:+.1%}", flush=True)
    print(json.dumps({"max_rel_error": max(abs(r["rel_error"]) for r in rows.values()),
                      "errors": {n: r["rel_error"] for n, r in rows.items()},
                      "measured_bytes": {n: r["measured"] for n, r in rows.items()},
                      "predicted_bytes": {n: r["predicted"] for n, r in rows.items()}, "model": SHAPE,
                      "batch": BATCH}))


if __name__ == "__main__":
    main()
