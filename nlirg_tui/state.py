"""What the TUI knows about one run, built only from protocol events (live or replayed) and `hello`.

Each event type of `trainer_core.live.protocol.EVENTS` has its `_on_<type>` handler here, typed by the
protocol's definition. Widgets read from here and never parse events themselves. Memory is bounded whatever
the run length: curves are `BoundedSeries`, the log and the flagged samples are capped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from nlirg_tui.generation_series import GenerationSeries
from nlirg_tui.series import BoundedSeries
from trainer_core.config import NlirgParams
from trainer_core.live import protocol

_DEFAULT_NLIRG = NlirgParams()

ZONE_NAMES = ("easy-cut", "boost", "hard-cut", "zeroed")
"""How the panes name the protocol's zones (`protocol.ZONES`, in its order)."""
MAX_FLAGGED = 500
MAX_LOG_LINES = 2000
MAX_ACKS = 20
RESUMED_PREFIX = "resumed from "
"""How the trainer's resume line starts (trainer_core.train.model.resume.describe)."""


@dataclass
class ZoneBounds:
    """The run's zone bounds (from its config or a `set`); the defaults are the trainer's own."""

    easy_max: float = _DEFAULT_NLIRG.easy_max
    hard_min: float = _DEFAULT_NLIRG.hard_min
    loss_deadline: float = _DEFAULT_NLIRG.loss_deadline


@dataclass
class RankMemory:
    allocated: BoundedSeries = field(default_factory=BoundedSeries)
    reserved: BoundedSeries = field(default_factory=BoundedSeries)
    peak: BoundedSeries = field(default_factory=BoundedSeries)
    rss: BoundedSeries = field(default_factory=BoundedSeries)
    latest: dict[str, float] = field(default_factory=dict)


class RunState:
    """The store behind every pane; `version` grows on each change so panes redraw only when needed."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.status = "unknown"
        self.step = 0
        self.total_steps: int | None = None
        self.last_seq = -1
        self.config: dict[str, Any] = {}
        self.bounds = ZoneBounds()
        self.version = 0
        self.ended = False
        self.loss = BoundedSeries()
        self.weighted_loss = BoundedSeries()
        self.eval_loss = BoundedSeries()
        self.generation = GenerationSeries()
        """Answer-quality curves from `eval` events of kind `generation` (eval.generate_every)."""
        self.lr = BoundedSeries()
        self.tokens_per_s = BoundedSeries()
        self.zone_share = [BoundedSeries() for _ in range(protocol.ZONES)]
        """Each zone's share of a step's target tokens over time (the heatmap)."""
        self.memory: list[RankMemory] = []
        self.latest_step: dict[str, Any] = {}
        self.hist_total = [0] * protocol.LOSS_HIST_BINS
        self.flagged: dict[tuple[Any, Any], dict[str, Any]] = {}
        self.log: deque[str] = deque(maxlen=MAX_LOG_LINES)
        self.log_count = 0
        """Lines ever logged (the deque keeps the last MAX_LOG_LINES); the log pane writes only new ones."""
        self.last_ack: str = ""
        """The newest command's fate for the header: sent and waiting, applied at a step, or refused."""
        self.acks: deque[str] = deque(maxlen=MAX_ACKS)
        """The last acks, oldest first (the Overview lists them): every command the trainer applied, whichever
        client sent it (its `command` event), and this client's refused ones (a refusal has no event)."""
        self.events_seen = 0
        self.preparing: dict[str, Any] | None = None
        """The data preparation in progress (`phase`, `done`, `total`, `samples_per_s`), until training starts."""
        self.lr_scale = 1.0
        """The live LR multiplier, from the run's `set lr_scale` commands (a resume that resets it sends one too)."""
        self.lr_scale_step: int | None = None
        """The step boundary the last `set lr_scale` applied at: step events after it carry the scaled LR."""
        self.resumed: str | None = None
        """The trainer's last `resumed from ... at step N: lr ...` line: what a resume kept and what it changed."""
        self.special_zeroed: str | None = None
        """The trainer's warning that NLIRG zeroes a special token (`protocol.SPECIAL_ZEROED_PREFIX`)."""

    # ------------------------------------------------------------------ ingest
    def hello(self, msg: protocol.Hello) -> None:
        self.name = msg.get("name") or self.name
        self.status = msg.get("status") or self.status
        self.step = msg.get("step") or self.step
        self.total_steps = msg.get("total_steps") or self.total_steps
        if isinstance(msg.get("config"), dict):
            self.set_config(msg["config"])
        self.version += 1

    def set_config(self, config: dict[str, Any]) -> None:
        self.config = config
        nlirg = config.get("nlirg") or {}
        self.bounds = ZoneBounds(*(float(nlirg.get(k, getattr(ZoneBounds(), k)))
                                   for k in ("easy_max", "hard_min", "loss_deadline")))

    def ingest(self, events: list[dict[str, Any]]) -> None:
        """Apply events in seq order; one already seen (a replay overlapping a reconnect) is skipped."""
        for event in events:
            seq = event.get("seq")
            if isinstance(seq, int):
                if seq <= self.last_seq:
                    continue
                self.last_seq = seq
            self.events_seen += 1
            kind = event.get("type")
            if kind in protocol.EVENTS:  # a newer trainer's event type this store does not know is skipped
                getattr(self, f"_on_{kind}")(event)
        if events:
            self.version += 1

    def _on_step(self, e: protocol.StepEvent) -> None:
        self.preparing = None
        step = e.get("step", self.step)
        self.step = step
        self.total_steps = e.get("total_steps") or self.total_steps
        if self.status in ("unknown", "starting", "created"):
            self.status = "running"
        self.latest_step = e
        self.loss.append(step, e.get("loss"))
        self.weighted_loss.append(step, e.get("weighted_loss"))
        self.lr.append(step, e.get("lr"))
        self.tokens_per_s.append(step, e.get("tokens_per_s"))
        counts = e.get("zone_counts") or [0, 0, 0, 0]
        total = sum(counts) or 1
        for series, n in zip(self.zone_share, counts, strict=False):
            series.append(step, n / total)
        hist = e.get("loss_hist") or []
        for i, n in enumerate(hist[:protocol.LOSS_HIST_BINS]):
            self.hist_total[i] += n
        ranks = e.get("rank_memory") or ([e["memory"]] if e.get("memory") else [])
        while len(self.memory) < len(ranks):
            self.memory.append(RankMemory())
        for mem, reading in zip(self.memory, ranks, strict=False):
            mem.latest = reading
            for key in ("allocated", "reserved", "peak", "rss"):
                if key in reading:
                    getattr(mem, key).append(step, reading[key])

    def _on_eval(self, e: protocol.EvalEvent | protocol.GenerationEvalEvent) -> None:
        if e.get("kind") == "generation":
            self.generation.ingest(e)
            self._log(f"generation eval at {self.generation.summary()}")
            return
        self.eval_loss.append(e.get("step", self.step), e.get("eval_loss"))
        self._log(f"eval at step {e.get('step')}: loss {_num(e.get('eval_loss'))}")

    def _on_status(self, e: protocol.StatusEvent) -> None:
        self.status = e.get("status", self.status)
        if e.get("phase"):  # data preparation: progress for the header; the log gets each phase's start and end
            first = (self.preparing or {}).get("phase") != e["phase"]
            self.preparing = {k: e.get(k) for k in ("phase", "done", "total", "samples_per_s")}
            if first or e.get("done") == e.get("total"):
                self._log(f"{e['phase']} data: {e.get('done'):,}/{e.get('total'):,}")
            return
        self.preparing = None
        self.step = e.get("step", self.step)
        self.total_steps = e.get("total_steps") or self.total_steps
        if self.status in ("running", "paused"):
            self.ended = False  # `nlirg train --resume` brings a run back after its earlier `end`
        self._log(f"status {self.status} at step {self.step}")

    def _on_flagged(self, e: protocol.FlaggedEvent) -> None:
        for sample in e.get("samples") or []:
            key = (sample.get("source"), sample.get("line") if sample.get("line") is not None
                   else sample.get("sample_id"))
            self.flagged[key] = sample
        if len(self.flagged) > MAX_FLAGGED:
            keep = self.flagged_worst_first()[:MAX_FLAGGED]
            self.flagged = {k: v for k, v in self.flagged.items() if v in keep}

    def _on_checkpoint(self, e: protocol.CheckpointEvent) -> None:
        self._log(f"checkpoint at step {e.get('step')}: {e.get('path')}")

    def _on_log(self, e: protocol.LogEvent) -> None:
        message = str(e.get("message"))
        if message.startswith(RESUMED_PREFIX):
            self.resumed = message
        if message.startswith(protocol.SPECIAL_ZEROED_PREFIX):
            self.special_zeroed = message
        self._log(f"{e.get('level', 'info')}: {message}")

    def _on_error(self, e: protocol.ErrorEvent) -> None:
        self._log(f"ERROR: {e.get('message')}")

    def _on_command(self, e: protocol.CommandEvent) -> None:
        args = e.get("args") or {}
        text = " ".join(f"{k}={v}" for k, v in args.items())
        self._log(f"command {e.get('name')} {text} applied at step {e.get('applied_at_step')} "
                  f"({e.get('source', 'client')})".replace("  ", " "))
        self.acks.append(f"{e.get('name')} {text}: ok at step {e.get('applied_at_step')}".replace(" :", ":"))
        if e.get("name") == "set" and isinstance(args.get("lr_scale"), (int, float)):
            self.lr_scale = float(args["lr_scale"])
            at = e.get("applied_at_step")
            self.lr_scale_step = at if isinstance(at, int) else None
        if e.get("name") == "set":
            # The trainer applied new NLIRG knobs: keep the zone bounds drawn on the histogram in step.
            nlirg = dict(self.config.get("nlirg") or {})
            changed = {short: v for k, v in args.items() if (short := protocol.nlirg_key(k)) is not None}
            if changed:
                self.set_config({**self.config, "nlirg": {**nlirg, **changed}})

    def _on_chat(self, e: protocol.ChatEvent) -> None:
        """A chat answer (the Chat screen streams it); the Log pane notes each finished one."""
        if e.get("done"):
            answer = " ".join(str(e.get("answer", "")).split())
            self._log(f"chat at step {e.get('step')} ({e.get('model')}, {e.get('seconds', 0):.1f} s): "
                      f"{answer[:100]}{'...' if len(answer) > 100 else ''}")

    def _on_end(self, e: protocol.EndEvent) -> None:
        self.status = e.get("status", "ended")
        self.ended = True
        self._log(f"run ended: {self.status} ({e.get('reason')})")

    def note_sent(self, name: str, shown_args: str) -> None:
        """A command left for the trainer: shown at once, so a key is never silent while its ack is on its way."""
        self.last_ack = f"{name}: sent, waiting for the trainer"
        self.note(f"sent {name} {shown_args}".rstrip())

    def note_ack(self, name: str, ack: protocol.Ack) -> None:
        if ack.get("ok"):
            self.last_ack = f"{name}: ok at step {ack.get('applied_at_step')}"
        else:
            self.last_ack = f"{name}: refused: {ack.get('error')}"
            self.acks.append(self.last_ack)
        self._log(f"ack {self.last_ack}")
        self.version += 1

    def note(self, text: str) -> None:
        self._log(text)
        self.version += 1

    def _log(self, text: str) -> None:
        self.log.append(text)
        self.log_count += 1

    # ------------------------------------------------------------------ queries
    def loss_histogram(self) -> tuple[list[float], list[int]]:
        """(bin centres, counts) of the newest step's token losses; the whole run's until a step carries one."""
        counts = self.latest_step.get("loss_hist") or self.hist_total
        return [protocol.LOSS_HIST_WIDTH * (i + 0.5) for i in range(len(counts))], list(counts)

    def flagged_worst_first(self) -> list[dict[str, Any]]:
        return sorted(self.flagged.values(), key=lambda s: (-(s.get("zeroed_tokens") or 0),
                                                            -(s.get("mean_loss") or 0.0)))

    @property
    def is_live(self) -> bool:
        return not self.ended and self.status not in protocol.END_STATUSES


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"
