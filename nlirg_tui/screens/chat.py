"""`t` on the Run screen: ask the run's model a question of your own (docs/chat.md).

While the run trains, the trainer answers at its next step boundary with the weights of that moment and goes on
training exactly where it was; afterwards an inference process answers from final/ (or the newest checkpoint).
A LoRA run's base model (the adapter switched off) answers beside it. An expected answer, when typed, comes back
token by token in the Inspector's zone colours: which tokens of *your* example the model finds hard or zeroes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from nlirg_tui.chat_session import ChatError, ChatSession
from nlirg_tui.state import ZONE_NAMES
from nlirg_tui.widgets.zones import ZONE_STYLES
from trainer_core.live.chat import ChatRequestError, parse_chat_args
from trainer_core.live.protocol import ZONES


class ChatScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "back", tooltip="back to the run")]

    @dataclass
    class Piece(Message):
        """One `chat` event of the answer being written."""

        event: dict[str, Any]

    @dataclass
    class Loading(Message):
        """An inference process starts on `target` (the run is not training)."""

        target: Path

    @dataclass
    class Finished(Message):
        """The request is answered (`error` None) or refused."""

        error: str | None

    def __init__(self, run_dir: Path, root: Path) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.session = ChatSession(run_dir, root, loading=self._loading)
        self.answers: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(f" Chat with {self.run_dir.name}: Enter asks; the base model answers beside a LoRA run",
                     id="chat-title")
        yield Input(placeholder="Ask the model...", id="chat-prompt")
        yield Input(placeholder="Expected answer (optional): its tokens' loss and NLIRG zone", id="chat-reference")
        with Horizontal(id="chat-answers"):
            with VerticalScroll(classes="chat-answer"):
                yield Static("tuned", classes="chat-head", id="chat-tuned-head")
                yield Static("", id="chat-tuned")
            with VerticalScroll(classes="chat-answer"):
                yield Static("base", classes="chat-head", id="chat-base-head")
                yield Static("", id="chat-base")
        yield Static("", id="chat-scored")
        yield Static("", id="chat-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#chat-prompt", Input).focus()

    def on_unmount(self) -> None:
        self.session.close()

    @on(Input.Submitted)
    def _ask(self, submitted: Input.Submitted) -> None:
        prompt = self.query_one("#chat-prompt", Input).value
        reference = self.query_one("#chat-reference", Input).value.strip() or None
        try:
            request = parse_chat_args({"prompt": prompt, **({"reference": reference} if reference else {})})
        except ChatRequestError as exc:
            self._status(str(exc), error=True)
            return
        self.answers = {"tuned": "", "base": ""}
        for model in self.answers:
            self.query_one(f"#chat-{model}", Static).update("")
            self.query_one(f"#chat-{model}-head", Static).update(model)
        self.query_one("#chat-scored", Static).update("")
        self._status("asking... (a training run answers at its next step)")
        self._answer(request)

    @work(thread=True, exclusive=True, group="chat", exit_on_error=False)
    def _answer(self, request) -> None:
        try:
            self.session.ask(request, lambda event: self.post_message(self.Piece(event)))
        except ChatError as exc:
            self.post_message(self.Finished(str(exc)))
            return
        self.post_message(self.Finished(None))

    def _loading(self, target: Path) -> None:
        self.post_message(self.Loading(target))

    @on(Loading)
    def _show_loading(self, message: Loading) -> None:
        self._status(f"loading {message.target} (the run is not training)...")

    @on(Piece)
    def _piece(self, message: Piece) -> None:
        event = message.event
        model = event["model"]
        self.answers[model] = self.answers.get(model, "") + event["text"]
        self.query_one(f"#chat-{model}", Static).update(Text(self.answers[model]))
        if event["done"]:
            where = f" at step {event['step']}" if event.get("step") is not None else ""
            paused = ", run paused" if event.get("paused") else ""
            limit = ", hit the limit" if event.get("hit_limit") else ""
            self.query_one(f"#chat-{model}-head", Static).update(
                Text(f"{model}{where}: {event['tokens']} tokens, {event['seconds']:.1f} s{limit}{paused} [done]"))
            if "reference" in event:
                self.query_one("#chat-scored", Static).update(scored_text(event["reference"]))

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        if message.error is not None:
            self._status(message.error, error=True)
        else:
            self._status("answered; Enter asks again, Escape goes back")

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#chat-status", Static)
        status.update(Text(text, style="bold red" if error else "dim"))


def scored_text(scored: dict[str, Any]) -> Text:
    """The expected answer token by token in the zone colours, then its mean loss and zone counts."""
    text = Text("expected answer: ")
    for token, zone in zip(scored["tokens"], scored["zones"], strict=True):
        text.append(token, style=ZONE_STYLES[zone])
    counts = [scored["zones"].count(z) for z in range(ZONES)]
    zones = ", ".join(f"{n} {name}" for n, name in zip(counts, ZONE_NAMES, strict=True) if n)
    text.append(f"\nmean loss {scored['mean_loss']:.3f}; tokens {zones}", style="dim")
    return text
