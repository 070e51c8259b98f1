"""Checkpoints: model or adapter, optimizer, scheduler, RNG and data position, written atomically.

A checkpoint is written into `checkpoints/.tmp-step-N/`, marked COMPLETE last, and renamed to
`checkpoints/step-N/` (an old copy of the same step renamed aside first), so a crash or a full disk mid-save
never leaves a checkpoint that looks whole (`trainer_core.live.checkpoint_recovery` settles what a kill left).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer_core.atomic import building_dir, fresh_dir, publish_dir
from trainer_core.live.rundir import CHECKPOINTS, COMPLETE_MARKER, STATE_FILE, checkpoint_dirs, is_complete
from trainer_core.train.model.load import save_options


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names it and what to do."""


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, model, optimizer, scheduler, state: dict[str, Any],
                    keep: int) -> Path:
    """Write checkpoints/step-<step>/ atomically and prune old ones down to `keep` (0 = keep all)."""
    base = run_dir / CHECKPOINTS
    base.mkdir(exist_ok=True)
    final = base / f"step-{step}"
    with building_dir(final) as tmp:  # checkpoints/.tmp-step-N, renamed when complete
        model.save_pretrained(tmp / "model", safe_serialization=True, **save_options(model))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        mark_complete(tmp)
    if keep > 0:
        for old in checkpoint_dirs(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def mark_complete(tmp: Path) -> None:
    """The last file of a checkpoint: written (and made durable) only once every other file is.

    Every file is flushed to disk first: after a power loss, a folder marked complete must not hold empty
    weights (a process kill alone loses nothing the kernel has; a machine stop loses what is not on disk)."""
    for path in sorted(tmp.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    with open(tmp / COMPLETE_MARKER, "w", encoding="utf-8") as fh:
        fh.write("complete\n")
        fh.flush()
        os.fsync(fh.fileno())


def require_complete(ckpt: Path) -> None:
    """Refuse a checkpoint whose save did not finish (no traceback from a missing file halfway through)."""
    if not ckpt.is_dir() or not is_complete(ckpt):
        raise CheckpointError(f"{ckpt} is not a complete checkpoint (its save was interrupted); resume with "
                              f"nlirg train --resume {ckpt.parent.parent}, which picks the newest complete one")


def load_state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))


def load_weights(model, ckpt: Path, lora: bool) -> None:
    """Load the checkpoint's weights into an already built model (adapter or full)."""
    src = ckpt / "model"
    if lora:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(src / "adapter_model.safetensors")))
        return
    from safetensors.torch import load_file

    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"checkpoint {ckpt} holds no model weights")
    state: dict = {}
    for shard in shards:
        state.update(load_file(str(shard)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k} if getattr(model.config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint {ckpt} does not match the model: {sorted(set(missing) - tied)[:3]} "
                           f"{unexpected[:3]}")
    if tied:
        model.tie_weights()


# --------------------------------------------------------------------------- DeepSpeed
DEEPSPEED_DIR = "deepspeed"
"""DeepSpeed's own files (module states and every rank's ZeRO shards) inside checkpoints/step-N/."""


def save_deepspeed_checkpoint(run_dir: Path, step: int, engine, scheduler, state: dict[str, Any], keep: int,
                              rank: int, barrier) -> Path:
    """Every rank writes its shards with DeepSpeed's own `save_checkpoint` (so `--resume` works under ZeRO-3);
    rank 0 adds the schedule and data position and renames the folder once all ranks are done."""
    base = run_dir / CHECKPOINTS
    final = base / f"step-{step}"
    tmp = base / f".tmp-step-{step}"
    if rank == 0:
        base.mkdir(exist_ok=True)
        fresh_dir(tmp)
    barrier()
    engine.save_checkpoint(str(tmp), tag=DEEPSPEED_DIR, client_state={}, save_latest=False)
    torch.save(rng_state(), tmp / f"rng-rank{rank}.pt")
    barrier()
    if rank == 0:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        mark_complete(tmp)
        publish_dir(tmp, final)
        if keep > 0:
            for old in checkpoint_dirs(run_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_deepspeed_checkpoint(ckpt: Path, engine, scheduler, rank: int) -> dict[str, Any]:
    """Load weights, optimizer shards, schedule and this rank's RNG; return the trainer state."""
    path, _ = engine.load_checkpoint(str(ckpt), tag=DEEPSPEED_DIR, load_optimizer_states=True,
                                     load_lr_scheduler_states=False)
    if path is None:
        raise FileNotFoundError(f"checkpoint {ckpt} holds no DeepSpeed state under {DEEPSPEED_DIR}/")
    scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt"))
    rng = ckpt / f"rng-rank{rank}.pt"
    if rng.exists():  # a resume on a different number of ranks keeps fresh RNG streams for the new ranks
        set_rng_state(torch.load(rng, weights_only=False))
    return load_state(ckpt)
