"""The training loop: setup / fit / validate / one optimizer step / save.

Host syncs are few and named: one per logged step (`Telemetry.sync`), one per evaluation, one per
checkpoint, and under DeepSpeed one per optimizer step (`DeepSpeedBackend.optimizer_step`: the token count
that normalises the step; DeepSpeed's own overflow check reads back there anyway). Skipping a non-finite or
fully zeroed step happens on the device (the fused AdamW's `found_inf`), and the loss step plans its target
positions on the host, so our own code in a normal single-device step never waits for the GPU; transformers'
mask preparation does once per forward (see `step`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from trainer_core.atomic import building_dir
from trainer_core.config import ConfigError, NlirgParams, RunConfig, save_config
from trainer_core.data.cache import cache_root
from trainer_core.data.cache_errors import cache_disk_errors
from trainer_core.live import protocol
from trainer_core.live.chat import ChatRequestError, append_history, parse_chat_args
from trainer_core.live.control import Command, CommandQueue, CommandRefused, parse_set_args
from trainer_core.live.events import EventLog, clean
from trainer_core.live.log_events import NOT_AN_EVENT
from trainer_core.live.rundir import (
    CONFIG_FILE,
    FINAL,
    SUMMARY_FILE,
    checkpoint_dirs,
    record_trainer_json,
    write_json_atomic,
)
from trainer_core.train.chat_answer import answer
from trainer_core.train.data.batch import Batch, collate
from trainer_core.train.data.prepare import make_loader, prepare_data
from trainer_core.train.data.report import data_summary, log_data
from trainer_core.train.data.token_batch import WindowStream
from trainer_core.train.distributed import make_backend
from trainer_core.train.loop_state import (
    DataPosition,
    EarlierSessions,
    Interval,
    IntervalReading,
    RunTotals,
    SteadyRate,
    StepCounters,
    StopReason,
)
from trainer_core.train.loss.special_tokens import ZeroedSpecialWatch, special_ids
from trainer_core.train.loss.step import lm_head
from trainer_core.train.model import resume
from trainer_core.train.model.checkpoint import require_complete
from trainer_core.train.model.context import fit_to_context, model_context
from trainer_core.train.model.finite import non_finite_parameters
from trainer_core.train.model.load import (
    base_weights,
    compute_dtype,
    count_parameters,
    load_model,
    load_tokenizer,
    name_portable_base,
    resolve,
    save_options,
)
from trainer_core.train.model.quantized import merge_note
from trainer_core.train.progress import Progress
from trainer_core.train.ranks import node_place
from trainer_core.train.schedule import apply_current_lr, make_scheduler, rebuild_at, schedule_record
from trainer_core.train.telemetry.flag_window import event_chunks
from trainer_core.train.telemetry.flagged import FlaggedTracker
from trainer_core.train.telemetry.flops import MfuMeter, ModelFlops, device_peak_tflops
from trainer_core.train.telemetry.step_stats import IntervalStats, Telemetry, memory_reading
from trainer_core.train.telemetry.trackers import Trackers, step_metrics

if TYPE_CHECKING:
    from torch.optim.lr_scheduler import LambdaLR
    from transformers import PreTrainedTokenizerBase

    from trainer_core.config.live_set import LiveSet
    from trainer_core.train.data.batch import Sample
    from trainer_core.train.data.sampler import BatchLoader
    from trainer_core.train.data.tokenized import PreparedData, TokenizedSet
    from trainer_core.train.distributed import SingleDevice

log = logging.getLogger("trainer_core")


class EvalProbe(Protocol):
    """What the loop runs at its eval points besides the held-out loss (eval.generate_every)."""

    def due(self, step: int, total_steps: int) -> bool: ...

    def run(self, trainer: Trainer) -> object: ...


ProbeFactory = Callable[[RunConfig], EvalProbe | None]
"""Builds a run's probe from its config (None when the config asks for none)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def pick_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


class Trainer:
    """One run: built by `setup()`, driven by `fit()`; every event goes through `self.events`.

    `__init__` creates all the loop's state (the step, the data position, the interval counters, the totals);
    `setup()` builds the parts listed below, and nothing else is added later.
    """

    # Built by setup().
    device: torch.device
    dtype: torch.dtype
    tokenizer: PreTrainedTokenizerBase
    data: PreparedData
    """The prepared (tokenized, cached) corpus: `prepare.prepare_data`."""
    samples: TokenizedSet
    eval_samples: TokenizedSet | list[Sample]
    loader: BatchLoader
    """Micro-batches of this rank's share, by (epoch, batch): `prepare.make_loader`."""
    model: torch.nn.Module
    base_weights: str
    """How the base's weights are held, for the step events: `nf4 (4-bit)` under QLoRA, else their dtype."""
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    batches_per_epoch: int
    windows: WindowStream | None
    """token_batch > 0: the window stream cutting each batch; None otherwise."""
    telemetry: Telemetry
    counters: StepCounters
    mfu: MfuMeter
    """Model FLOPs and the device's peak: turns an interval's counts into model TFLOP/s and MFU."""
    flagged: FlaggedTracker
    trackers: Trackers | None
    """The scalars for TensorBoard and the other trackers of telemetry.report_to (rank 0), or None."""
    probe: EvalProbe | None
    """eval.generate_every > 0: greedy answers to held-out prompts, scored at the eval points (what `make_probe`
    builds); None otherwise."""

    def __init__(self, cfg: RunConfig, run_dir: Path, events: EventLog, commands: CommandQueue | None = None,
                 resume: Path | None = None, progress: Progress | None = None, keep_lr_scale: bool = False,
                 make_probe: ProbeFactory | None = None):
        self.cfg = cfg
        self.run_dir = run_dir
        self.events = events
        self.commands = commands or CommandQueue()
        self.resume_from = resume
        self.keep_lr_scale = keep_lr_scale
        """Resume: keep the checkpoint's live `lr_scale` instead of starting again at 1."""
        self.progress = progress or Progress(enabled=False)
        self.make_probe = make_probe
        """Builds the probe of eval.generate_every from the config (`evaluate.probe.GenerationProbe.build`, passed
        in by the trainer's entry point: train never imports evaluate); None: no probe."""
        self.backend: SingleDevice | None = None
        """Set by setup(); None until then (a failure before it has nothing to close)."""
        self.lr_scale = 1.0
        self.step = 0
        self.total_steps: int | None = None
        """Known once setup() has counted the data (None while the model loads)."""
        self.position = DataPosition()
        self.interval = Interval()
        self.steady = SteadyRate()
        self.status = "starting"
        self.fitting = False
        """True from fit()'s first status event on: pause/resume are announced as `status` events."""
        self.paused = False
        self.totals = RunTotals()
        self.last: IntervalStats | None = None
        self.last_eval: protocol.EvalEvent | None = None
        self.last_error: str | None = None
        """The last error reported; trainer.json keeps it when the run fails (`nlirg runs` shows it)."""
        self.started = time.time()
        self.earlier = EarlierSessions()
        """What the sessions before a resume left (wall time, last losses, evaluation): the summary adds to it."""
        self._last_save_at = time.monotonic()
        """When the last checkpoint was written (or the run started): `save_every_minutes` counts from it."""
        self.world_size = 1
        self.rank = 0

    @property
    def params(self) -> NlirgParams:
        """The NLIRG parameters now: the run config's, which a live `set` changes."""
        return self.cfg.nlirg

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.training.seed)
        self.device = pick_device()
        self.backend = make_backend(cfg, self.device)  # DeepSpeed: joins the other ranks here
        self.device, self.rank, self.world_size = self.backend.device, self.backend.rank, self.backend.world_size
        self.dtype = compute_dtype(cfg.model, self.device)
        path = resolve(cfg.model)
        for warning in fit_to_context(cfg, model_context(path, cfg.model.trust_remote_code)):
            log.warning(warning)  # capped, not refused: a row longer than the context would never train
        self.tokenizer = load_tokenizer(path, cfg.model)
        # Read, tokenize and cache the corpus once (or map the cached tables): docs/design.md §11, docs/data.md.
        with cache_disk_errors(cache_root(cfg.data.cache_dir)):  # a full disk there: one line, exit 2
            self.data = prepare_data(cfg, self.tokenizer, self._data_progress)
        if self.data.exclusion is not None:  # data.exclude: how many records were left out
            log.info(self.data.exclusion.message())
            self.events.emit("log", level="warning" if self.data.exclusion.unmatched else "info",
                             message=self.data.exclusion.message())
        self.samples, self.eval_samples = self.data.train, self.data.eval or []
        self.loader = make_loader(self.data, cfg, self.world_size, self.rank, self.tokenizer.pad_token_id)
        self.probe = self.make_probe(cfg) if self.make_probe is not None else None  # eval.generate_every
        with self.backend.model_build(cfg, self.dtype):  # ZeRO-3: the model is born sharded
            self.model = load_model(path, cfg.model, cfg.lora, self.dtype, self.device)
        self.model.train()
        self.base_weights = base_weights(cfg.model, cfg.lora, self.dtype)
        trainable, total = count_parameters(self.model)
        weights = [p for p in self.model.parameters() if p.requires_grad]  # what the optimizer updates
        self.optimizer = torch.optim.AdamW(
            weights, lr=cfg.training.lr, betas=tuple(cfg.training.betas), weight_decay=cfg.training.weight_decay,
            fused=self.device.type in ("cuda", "cpu"),
        )
        self.optimizer = self.backend.prepare(self.model, self.optimizer, cfg, self.dtype)
        # batch_size is per rank: one global batch is batch_size x world_size samples; an epoch's last is partial.
        self.batches_per_epoch = self.loader.batches_per_epoch
        self.windows = WindowStream(cfg.training.token_batch) if cfg.training.token_batch else None
        self.total_steps = self._total_steps()
        self.scheduler = make_scheduler(self.optimizer, cfg.training, self.total_steps, lambda: self.lr_scale)
        self.backend.attach_scheduler(self.scheduler)
        self.backend.special_ids = special_ids(self.tokenizer, self.device)
        self.special_watch = ZeroedSpecialWatch.for_tokenizer(self.tokenizer, self.backend.special_ids)
        self.telemetry = Telemetry(self.device, self.backend.special_ids)
        self.counters = StepCounters(self.device)
        peak = device_peak_tflops(self.device, self.dtype, cfg.telemetry.peak_tflops)
        self.mfu = MfuMeter(ModelFlops.of(self.model, lm_head(self.model)), peak, self.world_size)
        self.flagged = FlaggedTracker(self.run_dir, self.tokenizer, cfg.telemetry)
        if not self.backend.is_main:
            self.flagged.path = Path(os.devnull)  # rank 0 writes flagged.jsonl for every rank (merge_flagged)
        if self.resume_from is not None:
            self._restore(self.resume_from)
        self.trackers = (Trackers(cfg.telemetry.report_to, self.run_dir, cfg, self._warn, self._report_error)
                         if self.backend.is_main else None)
        log_data(self.data, self.loader)
        log.info("model %s: %s trainable of %s parameters; %d train samples, %d eval; %d steps on %s (%s)",
                 cfg.model.path, f"{trainable:,}", f"{total:,}", len(self.samples), len(self.eval_samples),
                 self.total_steps, self.device, str(self.dtype).replace("torch.", ""))

    def _total_steps(self) -> int:
        t = self.cfg.training
        if t.max_steps:
            self.loader.plan(None)  # train through as many epochs as max_steps takes
            return t.max_steps
        planned = self.loader.plan(t.epochs)  # exactly `epochs` passes: no sample repeated to fill a batch
        if t.token_batch:  # one micro-step per window of token_batch target tokens
            return max(1, math.ceil(self.loader.count_windows(t.token_batch) / t.grad_accum))
        return max(1, math.ceil(planned / t.grad_accum))

    # ------------------------------------------------------------------ data
    def _next_micro_batch(self) -> Batch:
        pos = self.position
        if pos.batch_in_epoch >= self.batches_per_epoch:
            pos.epoch += 1
            pos.batch_in_epoch = 0
        batch = self.loader.micro_batch(pos.epoch, pos.batch_in_epoch)  # this rank's share (sampler.py)
        if not self.loader.beyond_plan(pos.epoch, pos.batch_in_epoch):
            pos.batch_in_epoch += 1  # a filler past the planned batches only completes the run's last step
        if self.windows is None and not batch.filler:  # token_batch counts input tokens window by window
            self.interval.input_tokens += batch.input_tokens
        if not batch.filler:
            self.interval.attention_pairs += batch.attention_pairs
        return batch

    def _data_progress(self, phase: str, done: int, total: int, seconds: float) -> None:
        """Data preparation's progress: a `status` event (Run screen) and the CLI's progress bar."""
        rate = done / max(seconds, 1e-3)
        self.progress.phase(phase, done, total, rate)
        self.events.emit("status", status="starting", phase=phase, done=done, total=total,
                         samples_per_s=round(rate, 1))

    @property
    def epoch_progress(self) -> float:
        part = self.windows.share_left if self.windows is not None else 0.0  # a half-trained batch
        return self.position.epoch + (self.position.batch_in_epoch - part) / self.batches_per_epoch

    @property
    def samples_done(self) -> int:
        """Samples trained through their last target token, over all epochs (token_batch: mid-batch too)."""
        before = self.loader.sampler.samples_before
        epoch, batch = self.position.epoch, self.position.batch_in_epoch
        if self.windows is None or self.windows.batch_finished:
            return before(epoch, batch)
        return before(epoch, batch - 1) + self.windows.rows_finished

    @property
    def epoch_ended(self) -> bool:
        """The last micro-batch of the epoch has been trained through (every window of it, with token_batch)."""
        return self.position.batch_in_epoch >= self.batches_per_epoch and (
            self.windows is None or self.windows.batch_finished)

    # ------------------------------------------------------------------ fit
    def fit(self) -> str:
        """Train until done, stopped or failed; returns the final status."""
        self.fitting = True
        self._set_status("running")
        self.interval.restart()
        if self.cfg.training.eval_at_start and self.step == 0:
            self.validate()
            if self.probe is not None:
                self.probe.run(self)
        reason = StopReason.COMPLETED
        while self.step < self.total_steps:
            outcome = self._handle_commands()
            if outcome == "stop":
                reason = StopReason.STOPPED
                break
            self.train_step()
            epoch_ended = self.epoch_ended
            self.step += 1
            self.interval.steps += 1
            t = self.cfg.training
            last = self.step == self.total_steps
            if self.step % t.log_every == 0 or last or epoch_ended:
                if (stop := self._log_step()) is not None:
                    reason = stop
                    break
            if (t.eval_every and self.step % t.eval_every == 0) or epoch_ended:
                self.validate()
            if self.probe is not None and self.probe.due(self.step, self.total_steps):
                self.probe.run(self)  # generation metrics (docs/evaluate.md)
            if t.save_every and self.step % t.save_every == 0 and not last:
                self.save()
            elif self._save_is_due() and not last:
                # Time differs per rank: rank 0 decides, and its queued `save` reaches every rank at the next step.
                self.commands.put(Command("save", id=None, source="timer (training.save_every_minutes)"))
                self._last_save_at = time.monotonic()
        if self.interval.steps:
            self._log_step()
        if reason is StopReason.COMPLETED and (self.last_eval or {}).get("step") != self.step:
            self.validate()
        self.save()
        if reason is StopReason.COMPLETED:
            reason = self.save_final() or reason  # NAN (weights not finite) or DISK when final/ was not written
        self._finish(reason.status, reason.value)
        return reason.status

    def train_step(self) -> None:
        """One optimizer step over `grad_accum` micro-batches, normalised by all their non-zero-weight tokens."""
        t = self.cfg.training
        nonzero = torch.zeros((), device=self.device)
        for _ in range(t.grad_accum):
            label_mask = None
            if self.windows is None:
                batch = self._next_micro_batch().to(self.device)
            else:  # token_batch: this micro-step is one window, its rows cut to the window's prefix
                part = self.windows.next(self._next_micro_batch)
                batch, label_mask = part.batch.to(self.device), part.label_mask  # host mask: see step._target_index
                self.interval.input_tokens += 0 if batch.filler else part.window.input_tokens
            if batch.filler and self.world_size == 1:
                continue  # no other rank to keep in step with: a filler would train nothing
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                out = self.backend.loss_step(batch, self.params, label_mask=label_mask)
            if batch.filler:  # zero weight: run only so every rank meets DeepSpeed's collectives (sampler.py)
                self.backend.backward(out.weighted_sum * 0)
                continue
            self.backend.backward(out.weighted_sum)
            nonzero += out.nonzero
            self.telemetry.add(out.tokens.losses, out.weights, out.tokens.rows, batch.sample_ids, self.params,
                               positions=out.tokens.positions, special=out.special, targets=out.tokens.targets)
        self._optimizer_step(nonzero)

    def _optimizer_step(self, nonzero: torch.Tensor) -> None:
        # Normalise by the non-zero-weight tokens, clip, skip a bad step (distributed.SingleDevice: no host sync).
        norm, bad = self.backend.optimizer_step(nonzero, self.cfg.training.max_grad_norm)
        self.scheduler.step()
        self.counters.record(norm, bad)

    # ------------------------------------------------------------------ logging
    def _log_step(self) -> StopReason | None:
        """A logged step: the interval read at one host sync, the `step` event, flagged samples, the NaN check."""
        reading = self._read_interval()
        event = self._step_event(reading)
        self.last = reading.stats
        self.events.emit("step", **event)
        if self.trackers is not None:
            self.trackers.log(step_metrics(event), self.step)
        self.progress.update(self.step, self.total_steps, event)
        self._emit_flagged(reading.stats)
        self.telemetry.drop_tokens()
        self.interval.restart()
        self._warn_zeroed_special(reading.stats)
        return self._check_skipped(reading)

    def _read_interval(self) -> IntervalReading:
        """Every rank's sums, then the one host transfer of the interval; the run's totals grow by it."""
        self.backend.all_reduce_sum(self.telemetry.acc)  # zone counts, histogram and sums of every rank
        input_tokens, pairs = (int(v) for v in self.backend.totals(self.interval.input_tokens,
                                                                       self.interval.attention_pairs))
        stats = self.telemetry.sync()
        max_streak, skipped, grad_norm = self.counters.read()  # one more small transfer at the same sync point
        now = time.time()
        self.totals.add(stats.zone_counts, stats.target_tokens, input_tokens, int(skipped), stats.special_tokens)
        self.steady.mark(self.step, now, self.totals.input_tokens)
        return IntervalReading(stats, input_tokens, pairs, max_streak, int(skipped), grad_norm,
                               max(now - self.interval.start, 1e-9), max(self.interval.steps, 1))

    def _step_event(self, r: IntervalReading) -> protocol.StepEvent:
        stats, elapsed = r.stats, r.elapsed_s
        memory = memory_reading(self.device)
        model_tflops, mfu = self.mfu.interval(r.input_tokens, stats.target_tokens, elapsed, r.attention_pairs)
        return {
            "step": self.step, "total_steps": self.total_steps, "epoch": round(self.epoch_progress, 4),
            "samples_done": self.samples_done,
            "loss": stats.loss, "weighted_loss": stats.weighted_loss, "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": r.grad_norm, "target_tokens": stats.target_tokens, "input_tokens": r.input_tokens,
            "tokens_per_s": r.input_tokens / elapsed, "target_tokens_per_s": stats.target_tokens / elapsed,
            "zone_counts": stats.zone_counts, "zone_counts_total": self.totals.zone_counts,
            "zone_grad_share": stats.zone_grad_share, "loss_hist": stats.loss_hist,
            "special_tokens": stats.special_tokens, "skipped_steps": r.skipped, "memory": memory,
            "step_time_s": elapsed / r.steps,
            "model_tflops": model_tflops, "mfu": mfu,
            "rank_memory": self.backend.gather({**memory, **node_place()}), "world_size": self.world_size,
            "base_weights": self.base_weights,
        }

    def _emit_flagged(self, stats: IntervalStats) -> None:
        """This interval's flagged samples, every rank's merged on rank 0 (flagged.jsonl and a `flagged` event)."""
        new_flagged = self.flagged.update(stats, self.telemetry, self.samples, self.step)
        new_flagged = self.backend.merge_flagged(new_flagged, self.flagged.append)
        for chunk in event_chunks(new_flagged):  # each event well under the line limit: nothing is ever cut
            self.events.emit("flagged", step=self.step, samples=chunk)

    def _check_skipped(self, r: IntervalReading) -> StopReason | None:
        """Say how many steps were skipped; NAN when training.max_nan_steps in a row were."""
        if r.skipped:
            self.events.emit("log", level="warning",
                             message=f"skipped {r.skipped} step(s) with a non-finite or fully zeroed loss")
        if r.max_streak >= self.cfg.training.max_nan_steps > 0:
            self._report_error(f"stopping: {int(r.max_streak)} steps in a row had a non-finite loss or gradient; "
                               "lower training.lr or check the data")
            return StopReason.NAN
        return None

    def _warn_zeroed_special(self, stats: IntervalStats) -> None:
        """Say once (trainer.log, a `log` event, the workbench header) when special tokens are a large share of
        the zeroed tokens (special_tokens.WARN_SHARE)."""
        note = self.special_watch.add(stats.zone_counts[3], stats.special_zeroed)
        if note is not None and self.backend.is_main:
            log.warning(note, extra=NOT_AN_EVENT)  # trainer.log; the event is emitted here, once, in any process
            self.events.emit("log", level="warning", message=note)

    # ------------------------------------------------------------------ validate
    @torch.no_grad()
    def validate(self) -> protocol.EvalEvent | None:
        if not self.eval_samples:
            return None
        self.model.eval()
        tel = Telemetry(self.device, self.backend.special_ids)
        bs = self.cfg.training.batch_size
        for i in range(0, len(self.eval_samples), bs):
            chunk = self.eval_samples[i:i + bs]
            batch = collate(chunk, self.tokenizer.pad_token_id, self.cfg.data.pad_to_multiple_of).to(self.device)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                out = self.backend.loss_step(batch, self.params)
            tel.add(out.tokens.losses, out.weights, out.tokens.rows, batch.sample_ids, self.params, keep_tokens=False,
                    special=out.special, targets=out.tokens.targets)
        self.model.train()
        stats = tel.sync()  # host sync: once per evaluation
        result: protocol.EvalEvent = {
            "step": self.step, "epoch": round(self.epoch_progress, 4), "eval_loss": stats.loss,
            "eval_weighted_loss": stats.weighted_loss, "zone_counts": stats.zone_counts,
            "target_tokens": stats.target_tokens, "special_tokens": stats.special_tokens}
        self.last_eval = result
        self.events.emit("eval", **result)
        if self.trackers is not None:
            self.trackers.log({k: v for k, v in (("eval/loss", stats.loss), ("eval/weighted_loss", stats.weighted_loss))
                               if v is not None}, self.step)
        self.progress.note(f"eval step {self.step}: loss {stats.loss:.4f}")
        return result

    # ------------------------------------------------------------------ commands
    def _handle_commands(self) -> str | None:
        """Apply queued commands at this step boundary; block here while paused. Returns 'stop' to end."""
        waited: list[Command] = []
        while True:
            # Every rank applies the same list (rank 0's queue) at the same step; paused ranks keep meeting here.
            for cmd in self.backend.share_commands(waited + self.commands.drain()):
                if self._apply(cmd) == "stop":
                    return "stop"
            if not self.paused:
                return None
            cmd = self.commands.wait(timeout=0.2)
            waited = [cmd] if cmd is not None else []

    def _apply(self, cmd: Command) -> str | None:
        """Run one command and ack it. The server's reader checked it when it arrived; a `set` is checked again
        here by `parse_set_args` against the parameters now (an earlier `set` may have moved them)."""
        result: str | None = None
        error: str | None = None
        try:
            result = self._run_command(cmd)
        except ConfigError as exc:
            error = "; ".join(exc.problems)
        except (CommandRefused, OSError) as exc:
            error = str(exc).replace("\n", " ")
        if error is None:
            self.events.emit("command", id=cmd.id, name=cmd.name, args=cmd.args, applied_at_step=self.step,
                             source=cmd.source)
        if cmd.ack is not None:
            cmd.ack(protocol.ack(cmd.id, error is None, error, self.step))
        return result

    def _run_command(self, cmd: Command) -> str | None:
        if cmd.name in ("pause", "resume") and self.paused == (cmd.name == "pause"):
            # Nothing to do is said, not acked as done (`docker pause` does the same): ok false and why.
            raise CommandRefused(f"the run is already paused (since step {self.step})" if self.paused
                                 else "the run is not paused; it is running")
        if cmd.name == "pause":
            self.paused = True
            self._set_status("paused")
        elif cmd.name == "resume":
            self.paused = False
            self._set_status("running")
        elif cmd.name == "save":
            if self.save() is None and self.backend.is_main:
                raise CommandRefused(self.last_error or "checkpoint not written")
        elif cmd.name == "stop":
            return "stop"
        elif cmd.name == "generate":
            self._answer_chat(cmd)
        elif cmd.name == "set":
            self._apply_set(parse_set_args(cmd.args, self.params))
        return None

    def _apply_set(self, change: LiveSet) -> None:
        """Save the changed config.yaml first, then change the run: a `set` refused because the disk is full
        changes nothing (every rank learns of the refusal, so the ranks keep one set of NLIRG parameters)."""
        problem = ""
        if self.backend.is_main:
            changed = copy.deepcopy(self.cfg)
            change.apply(changed)
            path = self.run_dir / CONFIG_FILE
            try:
                save_config(changed, path)
            except OSError as exc:
                problem = (f"set not applied: cannot write {path}: {exc.strerror or exc}; free space on that disk "
                           f"and send it again")
        if self.backend.totals(1.0 if problem else 0.0)[0] > 0:  # one small collective, at a `set` only
            raise CommandRefused(problem or "set not applied: rank 0 could not save the run's config.yaml")
        change.apply(self.cfg)  # NLIRG, intervals, flag threshold: the config the loop reads and saves
        if change.lr_scale is not None:
            self.lr_scale = change.lr_scale
            apply_current_lr(self.scheduler)  # effective from this step on

    def _answer_chat(self, cmd: Command) -> None:
        """Answer a prompt with the weights of this step boundary, streamed as `chat` events (docs/chat.md); the
        time it takes is left out of tokens/s, and training goes on exactly where it was."""
        paused = {"paused": True} if self.paused else {}

        def emit(fields: dict[str, Any]) -> None:
            self.events.emit("chat", request=cmd.id, step=self.step, **fields, **(paused if fields["done"] else {}))

        request = parse_chat_args(cmd.args)  # the server checked it; this is the typed form
        started = time.time()
        try:
            answered = answer(getattr(self.model, "module", self.model), self.tokenizer, request, emit,
                              max_length=self.cfg.data.max_length, params=self.params, device=self.device,
                              dtype=self.dtype, synced_gpus=self.world_size > 1)
        except ChatRequestError as exc:
            raise CommandRefused(str(exc)) from None
        spent = time.time() - started
        self.interval.exclude(spent)
        self.steady.exclude(spent)
        if self.backend.is_main:
            entry = {"step": self.step, **request.args()}
            for a in answered:
                entry["answer" if a.model == "tuned" else "base_answer"] = a.text
            append_history(self.run_dir, entry)

    def _report_error(self, message: str) -> None:
        """One error, once: trainer.log, an `error` event, and trainer.json's `error` if the run then fails."""
        log.error(message, extra=NOT_AN_EVENT)  # the event below is this line's event
        self.events.emit("error", message=message, step=self.step)
        self.last_error = message

    def _warn(self, message: str) -> None:
        """One warning: trainer.log and a `log` event (a tracker that stopped; training goes on)."""
        log.warning(message, extra=NOT_AN_EVENT)
        self.events.emit("log", level="warning", message=message)

    def _set_status(self, status: str) -> None:
        self.status = status
        if self.backend.is_main:
            self._record(status=status)
        if status in ("paused", "running") and self.fitting:
            self.events.emit("status", status=status, step=self.step, total_steps=self.total_steps)

    def _record(self, **fields: Any) -> None:
        """Update trainer.json; a full disk leaves the old one whole (atomic rename) and training goes on."""
        record_trainer_json(self.run_dir, **fields)

    # ------------------------------------------------------------------ save / restore
    def _state(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.position.epoch, "batch_in_epoch": self.position.batch_in_epoch,
                "window_in_batch": self.windows.done_in_batch if self.windows is not None else 0,
                "token_batch": self.cfg.training.token_batch,
                "totals": asdict(self.totals), "lr_scale": self.lr_scale, "nlirg": asdict(self.params),
                "seed": self.cfg.training.seed, "total_steps": self.total_steps,
                "schedule": schedule_record(self.cfg.training, self.total_steps),
                **self.earlier.carried(time.time() - self.started, self.last, self.last_eval)}

    def _save_is_due(self) -> bool:
        minutes = self.cfg.training.save_every_minutes
        return self.backend.is_main and minutes > 0 and time.monotonic() - self._last_save_at >= minutes * 60

    def save(self) -> Path | None:
        self._last_save_at = time.monotonic()
        if self._weights_not_finite(f"checkpoint at step {self.step}"):
            return None
        try:
            path = self.backend.save_checkpoint(self.run_dir, self.step, self._state(),
                                                self.cfg.training.save_total_limit)
        except OSError as exc:  # a full disk must not kill the run: the previous checkpoint is intact
            self._report_error(f"checkpoint at step {self.step} failed ({exc.strerror or exc}); free disk space under "
                               f"{self.run_dir}")
            return None
        self.events.emit("checkpoint", step=self.step, path=str(path))
        self._write_summary(self.status)
        if self.trackers is not None:
            self.trackers.flush(self.step)
        return path

    def _weights_not_finite(self, what: str) -> bool:
        """True, with one error, when trainable weights hold NaN/inf: such a save would poison every resume."""
        bad = non_finite_parameters(self.model, self.device, self.backend.all_reduce_sum)  # every rank's verdict
        if bad:
            held = f"{len(bad)} trainable tensor{'s hold' if len(bad) != 1 else ' holds'}"
            last = checkpoint_dirs(self.run_dir)
            way_back = (f"the last checkpoint ({last[-1].name}) is intact: resume from it with a lower training.lr"
                        if last else "no checkpoint was written before it: start again with a lower training.lr")
            self._report_error(f"{what} not written: {held} NaN or inf (first: {bad[0]}); {way_back}")
        return bool(bad)

    def _restore(self, ckpt: Path) -> None:
        require_complete(ckpt)
        state = self.backend.load_checkpoint(ckpt, self.cfg.lora.enabled)  # weights, optimizer, schedule, RNG
        self.step = state["step"]
        self.position = DataPosition(state["epoch"], state["batch_in_epoch"])
        if self.windows is not None and state.get("window_in_batch"):
            self.position.batch_in_epoch -= 1  # fetch the half-trained batch again and go on at its next window
            self.windows.resume_at(state["window_in_batch"], state.get("token_batch"))
        self.totals = RunTotals.of(state["totals"])  # a field added since the checkpoint starts at 0
        self.earlier = EarlierSessions.of(state)
        self._take_config_schedule(ckpt, state)

    def _take_config_schedule(self, ckpt: Path, state: dict[str, Any]) -> None:
        """The resume rule (train/model/resume.py): this config's LR and schedule from the resumed step on, lr_scale 1
        unless kept; one line says what changed."""
        old = resume.old_schedule(state, self.scheduler.base_lrs[0])
        old_scale = float(state.get("lr_scale", 1.0))
        self.lr_scale = old_scale if self.keep_lr_scale else 1.0
        rebuild_at(self.scheduler, self.cfg.training, self.step)
        note = resume.describe(f"{ckpt.parent.name}/{ckpt.name}", self.step, old, self.cfg.training,
                               self.total_steps, self.scheduler.get_last_lr()[0], old_scale, self.keep_lr_scale)
        log.log(logging.WARNING if note.changed else logging.INFO, "%s", note.text)
        if self.lr_scale != old_scale:  # the history of who changed what: the resume changed lr_scale
            self.events.emit("command", id=None, name="set", args={"lr_scale": self.lr_scale},
                             applied_at_step=self.step, source=f"resume (lr_scale was {old_scale:g})")

    def save_final(self) -> StopReason | None:
        """Write final/ (HF format) through a temp folder; why it was not written (one error event), or None."""
        final = self.run_dir / FINAL
        if self._weights_not_finite("final model"):
            return StopReason.NAN
        gathered = self.backend.full_state_dict()  # ZeRO-3: every rank helps gather the shards; rank 0 writes
        if not self.backend.is_main:
            return None
        try:
            with building_dir(final) as tmp:  # .tmp-final, renamed when complete
                self.model.save_pretrained(tmp, safe_serialization=True, **save_options(self.model),
                                           **({"state_dict": gathered} if gathered else {}))
                if self.cfg.lora.enabled:
                    name_portable_base(tmp, self.cfg.model.path)
                self.tokenizer.save_pretrained(tmp)
                if self.cfg.lora.enabled and self.cfg.output.merge_lora:
                    if self.cfg.model.quantization != "none":
                        note = merge_note(self.cfg, self.dtype)
                        log.info(note, extra=NOT_AN_EVENT)
                        self.events.emit("log", level="info", message=note)
                    merged = self.backend.merged_model(self.model, tmp, self.cfg, self.dtype)
                    merged.save_pretrained(tmp / "merged", safe_serialization=True)
                    self.tokenizer.save_pretrained(tmp / "merged")
        except OSError as exc:
            msg = (f"final model not written ({exc.strerror or exc}); the last checkpoint is intact: free disk "
                   f"space under {self.run_dir.parent} and run nlirg train --resume {self.run_dir}")
            self._report_error(msg)
            return StopReason.DISK
        self.events.emit("log", level="info", message=f"final model written to {final}")
        return None

    def _write_summary(self, status: str, reason: str | None = None) -> protocol.Summary:
        steady = self.steady.rate(self.totals.input_tokens)
        carried = self.earlier.carried(time.time() - self.started, self.last, self.last_eval)
        wall = carried["wall_s"]
        mem = memory_reading(self.device)
        summary: protocol.Summary = {
            "status": status, "reason": reason, "steps": self.step, "total_steps": self.total_steps,
            "epochs_done": round(self.epoch_progress, 4), "train_tokens": self.totals.train_tokens,
            "input_tokens": self.totals.input_tokens,
            "tokens_per_s": steady if steady is not None else self.totals.input_tokens / max(wall, 1e-9),
            "final_loss": carried["final_loss"], "final_weighted_loss": carried["final_weighted_loss"],
            "zone_counts": self.totals.zone_counts, "special_tokens": self.totals.special_tokens,
            "skipped_steps": self.totals.skipped_steps,
            "eval": carried["eval"], "wall_s": round(wall, 3), "peak_memory_bytes": mem.get("peak", 0),
            "world_size": self.world_size, "weighting": self.params.effective_weighting,
            "data": data_summary(self.data, self.loader, self.position.epoch, self.position.batch_in_epoch),
        }
        if self.backend.is_main:
            try:
                write_json_atomic(self.run_dir / SUMMARY_FILE, clean(summary))
            except OSError as exc:  # a full disk: the old summary stays whole (atomic rename); training goes on
                log.error("summary.json not updated (%s); free disk space under %s", exc.strerror or exc,
                          self.run_dir.parent)
        return summary

    def _finish(self, status: str, reason: str) -> None:
        self.status = status
        summary = self._write_summary(status, reason)
        if self.backend.is_main:
            error = {"error": self.last_error} if status == "failed" and self.last_error else {}
            self._record(status=status, ended=time.time(), **error)
        self.events.emit("end", status=status, reason=reason, summary=summary)
        self.progress.close(status, summary)
        if self.trackers is not None:
            self.trackers.close(self.step, status)
