"""The Run screen: one run's Overview, Config, Zones, Loss, Memory, Inspector and Log panes, and the steering keys.

Events land in a `RunState` as they arrive; the panes are redrawn from it by one timer, at most
`REDRAWS_PER_S` times a second and only the visible pane, so a fast run never floods the terminal.

Keys: the pane keys (0-6) and the steering keys work wherever the focus is, except inside a text field, where
they are text (the footer then hides them). Showing a pane moves the focus to the part of it that takes keys
(the Config editor, the Inspector's sample list, the log), so no pane needs a Tab before it answers.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane, TextArea
from textual.widgets.tabbed_content import ContentTabs

from nlirg_tui.axis import short_sci
from nlirg_tui.client import RunLink
from nlirg_tui.launching import relaunch
from nlirg_tui.lr_label import lr_label, scale_for_lr
from nlirg_tui.messages import CommandAcked, HelloReceived, LinkChanged, RunEvents
from nlirg_tui.panes import PANE_KEY, PANES, default_pane
from nlirg_tui.review import export_review
from nlirg_tui.review_rows import ReviewFileError
from nlirg_tui.run_header import header_text
from nlirg_tui.screens.chat import ChatScreen
from nlirg_tui.screens.data import DataScreen
from nlirg_tui.screens.dialogs import ValueDialog, ask, confirm_dialog, quit_dialog
from nlirg_tui.screens.keys_help import KeysDialog, KeySection
from nlirg_tui.screens.nlirg_dialog import NlirgDialog
from nlirg_tui.screens.relaunch_dialog import Relaunch
from nlirg_tui.screens.relaunching import (
    RelaunchProgress,
    ask_relaunch,
    fail_relaunch,
    show_progress,
    start_new_run,
    wait_for_exit,
)
from nlirg_tui.state import RunState
from nlirg_tui.widgets.config_editor import ConfigEditor, ConfigPane
from nlirg_tui.widgets.inspector import FlaggedTable, InspectorPane
from nlirg_tui.widgets.log import LogPane
from nlirg_tui.widgets.loss import LossPane
from nlirg_tui.widgets.memory import MemoryPane
from nlirg_tui.widgets.overview import Box, OverviewPane
from nlirg_tui.widgets.zones import ZonesPane
from trainer_core.live.control import validate_command
from trainer_core.live.rundir import CONFIG_FILE, TRAINER_FILE, read_json

REDRAWS_PER_S = 4
LOSS_ONLY = ("toggle_smoothing", "toggle_log_scale")
"""Actions of the Loss pane's keys: shown and live only while it is."""


class RunScreen(Screen):
    AUTO_FOCUS = ""  # none: the shown pane decides (see _focus_pane)
    BINDINGS = [
        Binding("q", "quit_run", "quit", tooltip="leave (asks whether to stop the run)"),
        Binding("p", "pause_resume", "pause", tooltip="pause or resume at the next step"),
        Binding("s", "save", "save", tooltip="save a checkpoint at the next step"),
        Binding("x", "stop", "stop", tooltip="checkpoint, then stop the run (asks)"),
        Binding("l", "lr_scale", "LR", tooltip="scale the learning rate schedule"),
        Binding("n", "nlirg", "NLIRG", tooltip="NLIRG weighting, thresholds and curve"),
        # Not in the footer (80 columns hold no more); `?` and the command palette list it.
        Binding("t", "chat", "chat", show=False, tooltip="ask the model a question of your own (live while it trains)"),
        Binding("m", "toggle_smoothing", "smooth", tooltip="Loss pane: smoothing on/off"),
        Binding("g", "toggle_log_scale", "log y", tooltip="Loss pane: log scale on/off"),
        Binding("question_mark", "keys", "keys", tooltip="this list"),
        *[Binding(key, f"show_pane('{pane}')", title, show=False, tooltip=f"show the {title} pane")
          for pane, title in PANES for key in [PANE_KEY[pane]]],
    ]
    TYPED_KEYS = {b.action.split("(")[0] for b in BINDINGS if len(b.key) == 1 or b.key == "question_mark"}
    """Actions on printable keys: inside a text field those keys are text, so the footer hides them there."""

    def __init__(self, run_dir: Path, *, standalone: bool = True) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.standalone = standalone
        """True when this screen is the whole app (`nlirg attach`): leaving it exits."""
        name = (read_json(self.run_dir / TRAINER_FILE) or {}).get("name") or self.run_dir.name
        self.state = RunState(name)
        self._drawn: dict[str, int] = {}
        self._header_drawn = -1
        self._pending_relaunch: Relaunch | None = None
        self._relaunch_progress: RelaunchProgress | None = None
        self.link_mode = "connecting"

    def compose(self) -> ComposeResult:
        yield RunLink(self.run_dir)
        yield Static(id="run-header")
        yield Static(id="banner")
        with TabbedContent(initial=default_pane(self.app.size.width), id="panes"):
            with TabPane(self._tab_label("overview"), id="overview"):
                yield OverviewPane()
            with TabPane(self._tab_label("config"), id="config"):
                yield ConfigPane(self.run_dir)
            with TabPane(self._tab_label("zones"), id="zones"):
                yield ZonesPane()
            with TabPane(self._tab_label("loss"), id="loss"):
                yield LossPane()
            with TabPane(self._tab_label("memory"), id="memory"):
                yield MemoryPane()
            with TabPane(self._tab_label("inspector"), id="inspector"):
                yield InspectorPane()
            with TabPane(self._tab_label("log"), id="log"):
                yield LogPane()
        yield Footer(compact=True, show_command_palette=False)  # 80 columns hold the keys; `?` lists ctrl+p

    @staticmethod
    def _tab_label(pane: str) -> str:
        return f"[b]{PANE_KEY[pane]}[/b] {dict(PANES)[pane]}"  # the key on the tab: no footer space spent on it

    def on_mount(self) -> None:
        self.query_one("#banner").display = False
        self.query_one(ContentTabs).can_focus = False  # its ←/→ would switch panes from under the Inspector
        config = read_json_yaml(self.run_dir / CONFIG_FILE)
        if config:
            self.state.set_config(config)
        self._focus_pane(self.active_pane)
        self.set_interval(1 / REDRAWS_PER_S, self.redraw)
        self.redraw()

    @property
    def active_pane(self) -> str:
        return self.query_one(TabbedContent).active

    @property
    def link(self) -> RunLink:
        return self.query_one(RunLink)

    # ------------------------------------------------------------------ messages from the link
    @on(RunEvents)
    def _on_events(self, message: RunEvents) -> None:
        self.state.ingest(message.events)
        if self._pending_relaunch and self.state.ended:
            self._finish_relaunch()

    @on(HelloReceived)
    def _on_hello(self, message: HelloReceived) -> None:
        self.state.hello(message.hello)

    @on(CommandAcked)
    def _on_ack(self, message: CommandAcked) -> None:
        self.state.note_ack(message.name, message.ack)
        if not message.ack.get("ok") and self._pending_relaunch and message.name == "stop":
            self._pending_relaunch = None
            fail_relaunch(self, self._relaunch_progress, f"relaunch cancelled: {message.ack.get('error')}")
            self._relaunch_progress = None

    @on(LinkChanged)
    def _on_link(self, message: LinkChanged) -> None:
        self.link_mode = message.mode
        banner = self.query_one("#banner", Static)
        banner.display = message.mode in ("down", "dead", "waiting")
        banner.set_class(message.mode in ("down", "dead"), "-error")
        banner.update(f"{message.mode.upper()}: {message.detail}")
        if message.mode in ("down", "dead", "replay"):
            self.state.note(f"link {message.mode}: {message.detail}")
        self._header_drawn = -1
        if self._pending_relaunch and message.mode in ("dead", "replay"):
            self._finish_relaunch()

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """Redraw the header and the visible pane if the store changed since they were last drawn."""
        if self._header_drawn != self.state.version:
            self._header_drawn = self.state.version
            self.query_one("#run-header", Static).update(self._header_text())
        active = self.active_pane
        if active and self._drawn.get(active) != self.state.version and active != "config":
            self._drawn[active] = self.state.version
            self.query_one(f"#{active} > *").update_from(self.state)

    @on(TabbedContent.TabActivated)
    def _on_tab(self) -> None:
        self._focus_pane(self.active_pane)  # a click on a tab too
        self.refresh_bindings()  # the footer shows the shown pane's keys
        self.call_after_refresh(self.redraw)  # the pane has its size only after the switch

    @on(Box.Jump)
    def _on_box(self, message: Box.Jump) -> None:
        self.action_show_pane(message.pane)

    def _header_text(self) -> Text:
        width = self.query_one("#run-header").size.width or self.app.size.width
        return header_text(self.state, self.shown_status, width)

    def on_resize(self) -> None:
        self._header_drawn = -1  # the header is laid out for the width: what fits changes with it

    @property
    def shown_status(self) -> str:
        """One status: the run's own, or `dead` when its trainer is gone without an end."""
        return "dead" if self.link_mode == "dead" and self.state.is_live else self.state.status

    # ------------------------------------------------------------------ keys and focus
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.TYPED_KEYS and _typing(self.focused):
            return False
        if action in LOSS_ONLY:
            return self.active_pane == "loss"
        return True

    def action_show_pane(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane
        # Focus now, before the old pane hides: a focused widget that hides hands its focus to a sibling,
        # which pulls the old pane straight back (the Inspector's sample list did that to every pane key).
        self._focus_pane(pane)

    def _focus_pane(self, pane: str) -> None:
        """Give the keys to the part of `pane` that takes them; panes without one leave them to the screen."""
        home: Widget | None = {"config": self.query_one("#config-editor"), "inspector": self.query_one(FlaggedTable),
                               "log": self.query_one(LogPane)}.get(pane)
        self.set_focus(home)

    def action_chat(self) -> None:
        self.app.push_screen(ChatScreen(self.run_dir, self.run_dir.parent))

    def action_keys(self) -> None:
        ask(self, KeysDialog(self.key_sections()), lambda _: None)

    def key_sections(self) -> list[KeySection]:
        own = {b.action: b for b in self.BINDINGS}
        panes = [b for b in self.BINDINGS if b.action.startswith("show_pane")]
        return [("Panes (anywhere but a text field)", panes),
                ("Run", [b for a, b in own.items() if not a.startswith("show_pane") and a not in LOSS_ONLY]
                 + [Binding("ctrl+p", "", tooltip="command palette: steering, themes")]),
                ("Loss pane", [own[a] for a in LOSS_ONLY]),
                ("Config pane", [*ConfigEditor.BINDINGS, *ConfigPane.BINDINGS]),
                ("Inspector", [*InspectorPane.BINDINGS]),
                ("Dialogs", [Binding("enter", "", tooltip="submit (once)"), Binding("escape", "", tooltip="cancel"),
                             Binding("ctrl+s", "", tooltip="NLIRG dialog: apply")])]

    # ------------------------------------------------------------------ steering
    def send(self, name: str, args: dict | None = None) -> None:
        self.link.send(name, args)
        self.state.note_sent(name, " ".join(f"{k}={v}" for k, v in (args or {}).items()))

    def action_pause_resume(self) -> None:
        self.send("resume" if self.state.status == "paused" else "pause")

    def action_save(self) -> None:
        self.send("save")

    def action_stop(self) -> None:
        question = confirm_dialog(f"Stop {self.state.name}? It saves a checkpoint first.", "Stop")
        ask(self, question, self._stop_answer)

    def _stop_answer(self, answer: str | None) -> None:
        if answer == "yes":
            self.send("stop")

    def action_lr_scale(self) -> None:
        ask(self, ValueDialog(f"LR now {lr_label(self.state)}. A scale (0.5 = half the schedule; 1 = as configured) "
                              "or an absolute LR in scientific form (1e-4)", f"{self.state.lr_scale:g}",
                              early_chars="0123456789.eE-+xX×"),
            self._lr_scale)

    def _lr_scale(self, value: str | None) -> None:
        if value is None:
            return
        try:
            scale = self._scale_of(value)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        error = validate_command("set", {"lr_scale": scale})  # the trainer's own check: no NaN, inf or < 0
        if error is not None:
            self.notify(error, severity="error")
            return
        self.send("set", {"lr_scale": scale})

    def _scale_of(self, value: str) -> float:
        """`0.5` (or `x0.5`) is a scale; `1e-4` (an exponent) or `lr=1e-4` is an LR, turned into the scale that
        gives it now (the schedule's shape goes on from there)."""
        text = value.strip().lower().lstrip("x×").strip()
        absolute = text.startswith("lr") or "e" in text
        number = text.removeprefix("lr").lstrip("=: ")
        try:
            x = float(number)
        except ValueError:
            raise ValueError(f"lr_scale: {value!r} is not a number (a scale like 0.5, or an LR like 1e-4)") from None
        if not absolute:
            return x
        scale = scale_for_lr(x, self.state)
        if scale is None:
            raise ValueError(f"LR {value}: no LR known yet to scale from (wait for the first step), or give a scale")
        self.notify(f"LR {short_sci(x)} = lr_scale {scale:.4g} of the scheduled {short_sci(x / scale)} now")
        return float(f"{scale:.6g}")

    def action_nlirg(self) -> None:
        ask(self, NlirgDialog(self.state.config.get("nlirg") or {}), self._nlirg)

    def _nlirg(self, changes: dict | None) -> None:
        if changes:
            self.send("set", changes)
        elif changes is not None:
            self.notify("no NLIRG value changed")

    def action_export(self) -> None:
        samples = self.query_one(InspectorPane).selected()
        if not samples:
            self.notify("no flagged sample to export", severity="warning")
            return
        path = export_review(self.run_dir, samples)
        self.state.note(f"exported {len(samples)} sample(s) to {path}")
        self.notify(f"exported {len(samples)} sample(s) to {path.name}")

    def action_toggle_smoothing(self) -> None:
        pane = self.query_one(LossPane)
        pane.smoothing = not pane.smoothing

    def action_toggle_log_scale(self) -> None:
        pane = self.query_one(LossPane)
        pane.log_scale = not pane.log_scale

    def action_quit_run(self) -> None:
        if not self.state.is_live or not self.link.connected:
            self._leave()
        else:
            ask(self, quit_dialog(self.state.name), self._quit_answer)

    async def _quit_answer(self, answer: str | None) -> None:
        if answer == "stop":
            self.send("stop")
            await self.link.flush()
        if answer in ("leave", "stop"):
            self._leave()

    def _leave(self) -> None:
        if self.standalone:
            self.app.exit()
        else:
            self.app.pop_screen()

    # ------------------------------------------------------------------ relaunch
    @on(ConfigPane.RelaunchRequested)
    def _on_relaunch(self, message: ConfigPane.RelaunchRequested) -> None:
        self.relaunch_with(message.text)

    def relaunch_with(self, config_text: str, source: str = "the edited config") -> None:
        """The relaunch dialog (the config's main values, the weights), then the relaunch from `config_text` (a
        live run is stopped first): the Config pane's edits, or the Data screen's cleaned data."""
        live = self.state.is_live and self.link.connected
        ask_relaunch(self, self.run_dir, live, source, config_text, lambda answer: self._relaunch_answer(answer, live))

    def _relaunch_answer(self, answer: Relaunch | None, live: bool) -> None:
        if answer is None:
            return
        self._pending_relaunch = answer
        self._relaunch_progress = show_progress(self, self.run_dir, live)
        if live:
            self.send("stop")  # the stop saves a checkpoint; the new run starts once the `end` event arrives
            self.state.note("relaunch: stopping this run first")
        else:
            self._finish_relaunch()

    @on(InspectorPane.ReviewRequested)
    def _on_review(self, message: InspectorPane.ReviewRequested) -> None:
        sample = message.sample
        try:
            screen = DataScreen(self.run_dir, self.run_dir, select=f"{sample.get('source')}:{sample.get('line')}",
                                on_relaunch=lambda text: self.relaunch_with(text, "the cleaned data"))
        except ReviewFileError as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.push_screen(screen)

    def _finish_relaunch(self) -> None:
        answer, progress = self._pending_relaunch, self._relaunch_progress
        self._pending_relaunch = self._relaunch_progress = None
        if answer is None:
            return
        pid = progress.pid if progress is not None else None
        run_dir = self.run_dir

        def start() -> Path:
            wait_for_exit(pid)  # the stopped trainer holds the run until its process is gone
            return relaunch(run_dir, answer.config_text, answer.resume)

        start_new_run(self, start, self.standalone, progress)


def read_json_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _typing(widget: Widget | None) -> bool:
    """True when `widget` takes printable keys as text."""
    return isinstance(widget, Input) or (isinstance(widget, TextArea) and not widget.read_only)
