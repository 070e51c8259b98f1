"""Where a step runs: one device, or DeepSpeed over several ranks.

The loop talks to a backend for everything that differs between the two: the forward/backward of the
loss, the optimizer step (normalisation by non-zero-weight tokens, clipping, skipping bad steps),
checkpoints, the final export, and the few collectives (telemetry sums, commands, per-rank readings).
`SingleDevice` is the plain loop; `DeepSpeedBackend` wraps the model in a DeepSpeed engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from trainer_core.config import ConfigError, NlirgParams, RunConfig
from trainer_core.live.control import Command
from trainer_core.train.data.batch import Batch
from trainer_core.train.loss.step import LossStep, loss_step
from trainer_core.train.model import checkpoint as ckpt_io
from trainer_core.train.model.quantized import merge_into_base
from trainer_core.train.no_deepspeed import allow_deepspeed_unwrap, skip_deepspeed_unwrap

log = logging.getLogger("trainer_core")

DS_TAG = ckpt_io.DEEPSPEED_DIR
"""Sub-folder of checkpoints/step-N/ that holds DeepSpeed's own files (model, optimizer and ZeRO shards)."""


class SingleDevice:
    """One process, one device: today's loop, with the fused AdamW skipping bad steps without a host sync."""

    rank = 0
    world_size = 1
    is_main = True

    def __init__(self, device: torch.device):
        self.device = device

    def model_build(self, cfg: RunConfig, dtype: torch.dtype) -> contextlib.AbstractContextManager:
        """The context the model is built in (DeepSpeed ZeRO-3 builds it sharded)."""
        return contextlib.nullcontext()

    def prepare(self, model, optimizer: torch.optim.Optimizer, cfg: RunConfig, dtype: torch.dtype
                ) -> torch.optim.Optimizer:
        """Take the built model and optimizer; return the optimizer the LR schedule drives."""
        self.model, self.optimizer = model, optimizer
        self.ce_chunk = cfg.training.ce_chunk_tokens
        return optimizer

    def attach_scheduler(self, scheduler) -> None:
        self.scheduler = scheduler

    # ------------------------------------------------------------------ step
    special_ids: torch.Tensor | None = None
    """The tokenizer's special ids on the device (`special_tokens.special_ids`); the loop sets them."""

    def loss_step(self, batch: Batch, params: NlirgParams, label_mask: torch.Tensor | None = None,
                  prefix_len: int | None = None) -> LossStep:
        return loss_step(self.model, batch, params, label_mask=label_mask, prefix_len=prefix_len,
                         ce_chunk=self.ce_chunk, special_ids=self.special_ids)

    def backward(self, weighted_sum: torch.Tensor) -> None:
        weighted_sum.backward()

    def optimizer_step(self, nonzero: torch.Tensor, max_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Divide the summed gradients by the non-zero-weight tokens, clip, step; return (norm, skipped)."""
        params = self.optimizer.param_groups[0]["params"]
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            torch._foreach_div_(grads, nonzero.clamp(min=1).to(grads[0].dtype))
        if max_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        bad = ~torch.isfinite(norm) | (nonzero == 0)
        # A non-finite or fully zeroed step is skipped inside the fused optimizer: no host sync here.
        self.optimizer.found_inf = bad.float().to(self.device)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm, bad

    # ------------------------------------------------------------------ collectives (no-ops on one device)
    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def share_commands(self, local: list[Command]) -> list[Command]:
        return local

    def gather(self, obj: Any) -> list[Any]:
        return [obj]

    def barrier(self) -> None:
        pass

    def totals(self, *values: float) -> list[float]:
        """The sums of host numbers over all ranks (one collective for all of them)."""
        return list(values)

    def merge_flagged(self, items: list[dict[str, Any]], append: Callable[[list[dict[str, Any]]], None],
                      ) -> list[dict[str, Any]]:
        """Flagged samples of every rank (on rank 0; the tracker has already written this rank's own, and
        `append` writes the other ranks' to flagged.jsonl)."""
        return items

    # ------------------------------------------------------------------ checkpoints and export
    def save_checkpoint(self, run_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
        return ckpt_io.save_checkpoint(run_dir, step, self.model, self.optimizer, self.scheduler, state, keep)

    def load_checkpoint(self, ckpt: Path, lora: bool) -> dict[str, Any]:
        if (ckpt / DS_TAG).is_dir():
            raise ConfigError([f"--resume {ckpt}: written by DeepSpeed; resume it with distributed.backend: deepspeed"])
        state = ckpt_io.load_state(ckpt)
        ckpt_io.load_weights(self.model, ckpt, lora)
        self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=self.device))
        self.scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt"))
        ckpt_io.set_rng_state(torch.load(ckpt / "rng.pt", weights_only=False))
        return state

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Gathered weights for the final export, or None when the model holds them whole already."""
        return None

    def merged_model(self, model, final_dir: Path, cfg: RunConfig, dtype: torch.dtype):
        if cfg.model.quantization != "none":  # QLoRA: the loop logged merge_note
            return merge_into_base(cfg, final_dir, dtype)
        return model.merge_and_unload()

    def close(self) -> None:
        pass


class LossModule(torch.nn.Module):
    """The model with `loss_step` as its forward, so the DeepSpeed engine runs the loss itself: ZeRO-3 gathers
    the parameters and arms its backward hooks in the engine's forward, which a direct call would bypass."""

    def __init__(self, model: torch.nn.Module, ce_chunk: int = 0):
        super().__init__()
        self.model = model
        self.ce_chunk = ce_chunk

    def forward(self, batch: Batch, params: NlirgParams, label_mask: torch.Tensor | None = None,
                prefix_len: int | None = None, special_ids: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, LossStep]:
        out = loss_step(self.model, batch, params, label_mask=label_mask, prefix_len=prefix_len,
                        ce_chunk=self.ce_chunk, special_ids=special_ids)
        return out.weighted_sum, out  # the engine hooks the tensor; the rest rides along untouched


class DeepSpeedBackend(SingleDevice):
    """One rank of a DeepSpeed run started by the `deepspeed` launcher (RANK, WORLD_SIZE, MASTER_* in the env)."""

    def __init__(self) -> None:
        import deepspeed
        import torch.distributed as dist

        if "RANK" not in os.environ:
            raise ConfigError(["distributed.backend: deepspeed runs must be started by the deepspeed launcher "
                               "(nlirg train does this); got no RANK in the environment"])
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        self.dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.is_main = self.rank == 0
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        else:
            device = torch.device("cpu")
        super().__init__(device)

    def _ds_config(self, cfg: RunConfig, dtype: torch.dtype) -> dict[str, Any]:
        from trainer_core.config.deepspeed import resolve_deepspeed_config

        name = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
        return resolve_deepspeed_config(cfg, self.world_size, name)

    @contextlib.contextmanager
    def model_build(self, cfg: RunConfig, dtype: torch.dtype) -> Iterator[None]:
        """ZeRO-3: inside, transformers builds the model within `deepspeed.zero.Init` (each parameter partitioned
        as it is created) and rank 0 loads the checkpoint layer by layer, so no rank holds the whole model.
        Only inside: a later `from_pretrained` on rank 0 alone (the merged LoRA export) must load plainly."""
        ds_cfg = self._ds_config(cfg, dtype)
        if int(ds_cfg["zero_optimization"]["stage"]) != 3 or not cfg.distributed.zero3_sharded_init:
            yield
            return
        from transformers.integrations import HfDeepSpeedConfig
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        hf_ds_config = HfDeepSpeedConfig(ds_cfg)  # transformers keeps a weak reference: alive while this runs
        log.info("deepspeed: building the model sharded over %d ranks (ZeRO-3 zero.Init)", self.world_size)
        try:
            yield
        finally:
            del hf_ds_config
            unset_hf_deepspeed_config()

    def prepare(self, model, optimizer: torch.optim.Optimizer, cfg: RunConfig, dtype: torch.dtype
                ) -> torch.optim.Optimizer:
        import deepspeed

        ds_cfg = self._ds_config(cfg, dtype)
        self.stage = int(ds_cfg["zero_optimization"]["stage"])
        self.base_path = cfg.model.path
        wrapper = LossModule(model, cfg.training.ce_chunk_tokens)
        trainable = [p for p in wrapper.parameters() if p.requires_grad]
        use_torch = "optimizer" not in ds_cfg
        self.engine, zero_opt, _, _ = deepspeed.initialize(
            model=wrapper, optimizer=optimizer if use_torch else None,
            model_parameters=None if use_torch else trainable, config=ds_cfg,
        )
        if not isinstance(getattr(type(zero_opt), "loss_scale", None), property):
            raise ConfigError([f"distributed.zero_stage: stage {self.stage} has no ZeRO optimizer here; use 1, 2 or 3"])
        self.zero_opt = zero_opt
        self.model = model
        self.optimizer = zero_opt.optimizer  # the torch (or DeepSpeed) AdamW whose param_groups carry the LR
        log.info("deepspeed: rank %d of %d, ZeRO stage %d, %s optimizer", self.rank, self.world_size, self.stage,
                 "torch" if use_torch else "DeepSpeed")
        return self.optimizer

    # ------------------------------------------------------------------ step
    def loss_step(self, batch: Batch, params: NlirgParams, label_mask: torch.Tensor | None = None,
                  prefix_len: int | None = None) -> LossStep:
        return self.engine(batch, params, label_mask=label_mask, prefix_len=prefix_len,
                           special_ids=self.special_ids)[1]

    def backward(self, weighted_sum: torch.Tensor) -> None:
        boundary = self.engine.is_gradient_accumulation_boundary()
        # DeepSpeed averages gradients over ranks and micro-batches; undo both so the reduced gradient is the
        # plain sum of every rank's sum(w*L), then `optimizer_step` divides by the global non-zero count.
        self.engine.backward(weighted_sum * self.world_size, scale_wrt_gas=False)
        if not boundary:
            self.engine.step()  # DeepSpeed's micro-step bookkeeping; it only updates at the boundary

    def optimizer_step(self, nonzero: torch.Tensor, max_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
        total = nonzero.detach().float().clone()
        self.dist.all_reduce(total)
        count = max(float(total.item()), 1.0)  # host sync: one per step (DeepSpeed's overflow check syncs anyway)
        # ZeRO divides the reduced gradients by its loss scale before it measures the norm, clips and steps:
        # scaling that by the global token count gives exactly single-device NLIRG normalisation and clipping.
        zeroed = total.item() == 0
        # Every token of the global step zeroed: DeepSpeed has no found_inf, so step with LR 0 to keep the weights.
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if zeroed:
            for group in self.optimizer.param_groups:
                group["lr"] = 0.0
        self.zero_opt.loss_scale = self.zero_opt.loss_scale * count
        try:
            self.engine.step()
        finally:
            self.zero_opt.loss_scale = self.zero_opt.loss_scale / count
            for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
                group["lr"] = lr
        # ZeRO skips a step whose gradient norm is not finite (fp32, and bf16 with check_grad_overflow, the
        # default); report it as a non-finite norm so the loop's max_nan_steps streak counts it.
        overflow = bool(getattr(self.zero_opt, "overflow", False))
        norm = self.engine.get_global_grad_norm()
        value = float("nan") if overflow or norm is None else float(norm)
        return torch.tensor(value, device=self.device), torch.tensor(overflow or zeroed, device=self.device)

    # ------------------------------------------------------------------ collectives
    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        self.dist.all_reduce(tensor)
        return tensor

    def share_commands(self, local: list[Command]) -> list[Command]:
        """Rank 0's commands, then a stop from any other rank (a signal), in the same order on every rank."""
        plain = [(c.name, c.args, c.id, c.source) for c in local if self.is_main or c.name == "stop"]
        everyone = self.gather(plain)  # one small object collective per step boundary
        if self.is_main:
            merged = list(local)  # rank 0 keeps its own Command objects: their acks go back to the clients
        else:
            merged = [Command(name, args=args, id=cid, source=source) for name, args, cid, source in everyone[0]]
        for rank, entries in enumerate(everyone[1:], start=1):
            for name, args, cid, source in entries:
                if not any(c.name == "stop" for c in merged):
                    merged.append(Command(name, args=args, id=cid, source=f"{source} (rank {rank})"))
        return merged

    def gather(self, obj: Any) -> list[Any]:
        everyone: list[Any] = [None] * self.world_size
        self.dist.all_gather_object(everyone, obj)
        return everyone

    def barrier(self) -> None:
        self.dist.barrier()

    def totals(self, *values: float) -> list[float]:
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return t.tolist()  # host sync at a logged step, next to the telemetry sync

    def merge_flagged(self, items: list[dict[str, Any]], append: Callable[[list[dict[str, Any]]], None],
                      ) -> list[dict[str, Any]]:
        everyone = self.gather(items)
        if not self.is_main:
            return []
        others = [item for rank_items in everyone[1:] for item in rank_items]
        if others:
            append(others)
        return [*items, *others]

    # ------------------------------------------------------------------ checkpoints and export
    def save_checkpoint(self, run_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
        return ckpt_io.save_deepspeed_checkpoint(run_dir, step, self.engine, self.scheduler, state, keep,
                                                 self.rank, self.barrier)

    def load_checkpoint(self, ckpt: Path, lora: bool) -> dict[str, Any]:
        if not (ckpt / DS_TAG).is_dir():
            raise ConfigError([f"--resume {ckpt}: not a DeepSpeed checkpoint; resume it with "
                               "distributed.backend: none"])
        return ckpt_io.load_deepspeed_checkpoint(ckpt, self.engine, self.scheduler, self.rank)

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        if self.stage != 3:
            return None  # ZeRO-1/2 keep whole weights on every rank
        # Collective: every rank takes part, rank 0 receives the weights, gathered layer by layer.
        gathered = self.engine._zero3_consolidated_16bit_state_dict()
        if gathered is None:
            return None
        return {k.removeprefix("model."): v for k, v in gathered.items()}

    def merged_model(self, model, final_dir: Path, cfg: RunConfig, dtype: torch.dtype):
        if self.stage != 3:
            return model.merge_and_unload()
        # ZeRO-3 shards the base weights; merge the exported adapter into a freshly loaded base instead.
        return merge_into_base(cfg, final_dir, torch.float32)

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def make_backend(cfg: RunConfig, device: torch.device) -> SingleDevice:
    if cfg.distributed.backend == "deepspeed":
        allow_deepspeed_unwrap()
        return DeepSpeedBackend()
    skip_deepspeed_unwrap()  # the first save would import DeepSpeed for an isinstance check (no_deepspeed.py)
    return SingleDevice(device)


def launcher_rank() -> int:
    """This process's rank as the launcher set it (0 when not launched by one); readable before torch starts."""
    return int(os.environ.get("RANK", "0"))
