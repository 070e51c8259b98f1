"""Training speed, MFU and peak memory on real model shapes with random weights: nothing to download or carry.

    python -m bench.real_shapes --shape qwen2.5-1.5b --mode lora       # on a GPU: ~1 minute with the build
    python -m bench.real_shapes --shape qwen2.5-1.5b --mode qlora      # model.quantization=nf4, where it exists
    python -m bench.real_shapes --shape smollm2-135m --steps 2 --length 128 --batch 1   # a CPU smoke run

A shape is a published model's config (SmolLM2-135M's, Qwen2.5-1.5B's: same layers, widths, heads and
vocabulary), initialised from that config with a fixed seed and saved once as a model folder (in --cache, default
a temp folder) next to builtin:tiny's tokenizer. Speed, memory and MFU depend on the shape, not on the values of
the weights, so these measure what the trained models would; answers would be noise (checks that need real
answers use builtin:smollm2-135m, which is skipped where its wheel is absent).

The trainer runs in this process on packed text (training.type cpt, --length tokens per row, --batch rows), bf16
autocast. Measured after --warmup steps: tokens/s, the step events' median MFU, and the run's peak memory; with
the planner (`nlirg plan`, trainer_core.plan) present, its prediction for the same config (without its GPU
overhead term: the measured peak is torch.cuda.max_memory_allocated) and measured/predicted.
The last line is one JSON object; a mode the code does not have yet prints {"available": false, "reason": ...}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import tempfile
from pathlib import Path

SHAPES: dict[str, dict] = {
    # HuggingFaceTB/SmolLM2-135M(-Instruct) config.json
    "smollm2-135m": {"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
                     "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                     "max_position_embeddings": 8192, "rope_theta": 100000.0, "rms_norm_eps": 1e-5,
                     "tie_word_embeddings": True},
    # Qwen/Qwen2.5-1.5B(-Instruct) config.json
    "qwen2.5-1.5b": {"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
                     "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                     "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
                     "tie_word_embeddings": True},
}
SEED = 0
RECIPE = 1
"""Bump when a shape or the way it is built changes (the cached folder's name carries it)."""
MODES = {"lora": ["lora.enabled=true"], "qlora": ["lora.enabled=true", "model.quantization=nf4"],
         "full": ["lora.enabled=false"]}


def shape_folder(name: str, cache: Path) -> Path:
    """The model folder of shape `name` (built on first use, seeded: the same weights every time)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from trainer_core.train.model.builtin import build_tiny_tokenizer

    folder = cache / f"{name}-seed{SEED}-v{RECIPE}"
    cache.mkdir(parents=True, exist_ok=True)
    if (folder / "config.json").is_file():
        return folder
    tokenizer = build_tiny_tokenizer()  # ids fit any of these vocabularies; the model's vocabulary is its own
    spec = dict(SHAPES[name])
    config = AutoConfig.for_model(spec.pop("model_type"), **spec, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # initialising 1.5B parameters on a CPU takes minutes
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(SEED)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    building = folder.with_name(folder.name + ".building")
    model.save_pretrained(building)
    tokenizer.save_pretrained(building)
    building.rename(folder)
    return folder


def write_text(path: Path, rows: int = 64, words: int = 3000) -> Path:
    """Seeded word salad to pack into full rows (speed does not depend on the text)."""
    rng = random.Random(SEED)
    vocab = "the a of to and in for on with support order battery charge fever doctor answer reset parcel".split()
    with path.open("w") as fh:
        for _ in range(rows):
            fh.write(json.dumps({"text": " ".join(rng.choice(vocab) for _ in range(words))}) + "\n")
    return path


def mode_missing(mode: str) -> str | None:
    """Why `mode` cannot run with this code, or None."""
    if mode != "qlora":
        return None
    from trainer_core.config import ModelConfig

    if "quantization" not in {f.name for f in dataclasses.fields(ModelConfig)}:
        return "model.quantization does not exist in this version (QLoRA not built yet)"
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed (the qlora extra; ./run wheels --extra qlora carries it)"
    return None


def planned_peak(cfg) -> int | None:
    """The planner's predicted peak of `cfg`'s tensors, where the planner exists: its peak less the CUDA context
    and allocator overhead it adds, which max_memory_allocated (the measured peak) does not count either."""
    try:
        from trainer_core.plan import plan_config
    except ImportError:
        return None
    result = plan_config(cfg, None, None)
    return int(result.peak_bytes - result.breakdown.overhead)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-1.5b")
    ap.add_argument("--mode", choices=sorted(MODES), default="lora")
    ap.add_argument("--steps", type=int, default=8, help="measured steps")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=1024, help="tokens per packed row")
    ap.add_argument("--cache", type=Path, default=None, help="where the model folder is built (default: temp)")
    ap.add_argument("--build-only", action="store_true", help="build the model folder in --cache (default "
                    "~/.cache/nlirg-shapes), print its path, train nothing")
    args = ap.parse_args()
    if args.build_only:
        print(shape_folder(args.shape, args.cache or Path.home() / ".cache" / "nlirg-shapes"))
        return
    result: dict = {"shape": args.shape, "mode": args.mode}
    why = mode_missing(args.mode)
    if why is not None:
        print(json.dumps({**result, "available": False, "reason": why}))
        return

    from bench.train_speed import build_trainer, timed_step
    from trainer_core.live.events import read_events

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = shape_folder(args.shape, args.cache or root)
        data = write_text(root / "text.jsonl")
        overrides = [f"model.path={folder}", "model.dtype=bf16", *MODES[args.mode], f"data.train=[{data}]",
                     "training.type=cpt", f"data.pack_length={args.length}", f"data.max_length={args.length}",
                     f"training.batch_size={args.batch}", "training.max_steps=100000", "training.log_every=1",
                     "training.eval_at_start=false", "data.eval_fraction=0", "training.lr=1e-4"]
        trainer = build_trainer(root, "run", overrides)
        times = [timed_step(trainer) for _ in range(args.warmup + args.steps)][args.warmup:]
        steps = [e for e in read_events(root / "run" / "events.jsonl") if e["type"] == "step"][args.warmup:]
        mfus = [e["mfu"] for e in steps if e.get("mfu") is not None]
        peak = trainer._write_summary("bench")["peak_memory_bytes"]
        planned = planned_peak(trainer.cfg)
        result |= {
            "available": True, "device": str(trainer.device),
            "params": sum(p.numel() for p in trainer.model.parameters()),
            "tokens_per_step": statistics.median(t for _, t in times),
            "tokens_per_s": sum(t for _, t in times) / sum(s for s, _ in times),
            "mfu": statistics.median(mfus) if mfus else None,
            "model_tflops": statistics.median(e["model_tflops"] for e in steps) if steps else None,
            "peak_memory_bytes": peak, "planned_peak_bytes": planned,
            "measured_vs_planned": peak / planned if planned else None,
        }
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
