"""Asking a run's model, for `nlirg chat RUN` and the Chat screen: its answer (and the base model's) streamed,
live while it trains or from its final/ or a checkpoint afterwards (docs/chat.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nlirg_tui.state import ZONE_NAMES
from trainer_core.live.chat import ChatRequest
from trainer_core.live.chat_link import ChatUnavailable, InferenceChat, ask_live
from trainer_core.live.client import LiveClient, NotLive
from trainer_core.live.protocol import ZONES
from trainer_core.live.rundir import FINAL, checkpoint_dirs


class ChatError(RuntimeError):
    """The request could not be answered: one line."""


class Printer:
    """Writes each answer as its pieces arrive: `[tuned, step N] ...`, then `[base] ...` on its own line."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self.current: str | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        if event["model"] != self.current:
            self.current = event["model"]
            step = f", step {event['step']}" if event.get("step") is not None and event["model"] == "tuned" else ""
            self.write(f"[{event['model']}{step}] ")
        self.write(event["text"])
        if event["done"]:
            note = " (run paused: answered anyway)" if event.get("paused") else ""
            limit = ", hit the token limit" if event.get("hit_limit") else ""
            self.write(f"\n  ({event['tokens']} tokens in {event['seconds']:.1f} s{limit}){note}\n")
            if "reference" in event:
                self.write(reference_lines(event["reference"]))
            self.current = None


def reference_lines(scored: dict[str, Any]) -> str:
    """The reference's tokens with their loss and zone, the worst ones named."""
    counts = [scored["zones"].count(z) for z in range(ZONES)]
    worst = sorted(zip(scored["losses"], scored["tokens"], scored["zones"], strict=True), reverse=True)[:5]
    zones = ", ".join(f"{n} {name}" for n, name in zip(counts, ZONE_NAMES, strict=True) if n)
    top = "; ".join(f"{tok!r} {loss:.2f} ({ZONE_NAMES[z]})" for loss, tok, z in worst)
    return f"  reference: mean loss {scored['mean_loss']:.3f}; tokens {zones}\n  hardest: {top}\n"


class ChatSession:
    """Asks a run's model: the live trainer while it trains (unless a checkpoint is named), else one inference
    process on its final/ or the checkpoint, loaded at the first question and reused; `close()` ends it."""

    def __init__(self, run_dir: Path, root: Path, checkpoint: str | None = None,
                 loading: Callable[[Path], None] = lambda target: None):
        self.run_dir, self.root, self.checkpoint = run_dir, root, checkpoint
        self.loading = loading
        """Told which model loads, before an inference process starts (it takes a while)."""
        self.process: InferenceChat | None = None

    def ask(self, request: ChatRequest, on_event: Callable[[dict[str, Any]], None]) -> None:
        """Answer `request`, handing each `chat` event to `on_event`; ChatError says why it was not answered."""
        if self.checkpoint is None and self.process is None:
            try:
                with LiveClient.for_run(self.run_dir, timeout=60, wait_s=5) as client:
                    return _check(ask_live(client, request, on_event))
            except NotLive:
                pass
            except (EOFError, TimeoutError) as exc:
                raise ChatError(f"the trainer stopped answering: {exc}; `nlirg runs` shows the run") from None
        _check(self._process().ask(request, on_event))

    def _process(self) -> InferenceChat:
        if self.process is None:
            target = self._target()
            self.loading(target)
            try:
                self.process = InferenceChat(str(target), self.root)
            except ChatUnavailable as exc:
                raise ChatError(str(exc)) from None
        return self.process

    def _target(self) -> Path:
        """The named checkpoint, else final/ (the run), else the newest checkpoint of a run stopped early."""
        if self.checkpoint:
            return self.run_dir / "checkpoints" / self.checkpoint
        if (self.run_dir / FINAL).is_dir():
            return self.run_dir
        found = checkpoint_dirs(self.run_dir)
        if not found:
            raise ChatError(f"{self.run_dir.name} has no final/ and no checkpoint to answer with")
        return found[-1]

    def close(self) -> None:
        if self.process is not None:
            self.process.close()


def _check(ack: dict[str, Any]) -> None:
    if not ack.get("ok"):
        raise ChatError(f"not answered: {ack.get('error')}")
