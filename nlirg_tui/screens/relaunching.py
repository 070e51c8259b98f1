"""The relaunch both the Run screen (an edited config) and the Data screen (cleaned data) offer: one dialog with the
new run's config and its weights (`RelaunchDialog`), a progress screen while the old run stops and the new one
starts, and the new run shown in place of the screen that asked. How a live run is stopped first differs (the Run
screen has a link to it, the Data screen sends `stop` itself), so that stays with each screen."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Label

from nlirg_tui.config_check import check_config_text
from nlirg_tui.launching import LaunchError, latest_checkpoint
from nlirg_tui.messages import OpenRun
from nlirg_tui.screens.dialogs import ask
from nlirg_tui.screens.relaunch_dialog import Relaunch, RelaunchDialog, ResumeOffer
from trainer_core.live.processes import pid_alive
from trainer_core.live.runs import run_info

EXIT_WAIT_S = 60.0
"""After its `end` event, how long a stopped trainer may take to exit (and let go of the run) before the new run
starts anyway; its resume is then refused in one line if the old one still holds the run."""


def resume_label(run_dir: Path, live: bool) -> str | None:
    """What the dialog offers to resume the weights from; None: nothing, a fresh start only. A live run's stop
    writes a checkpoint, so its weights can be resumed even if none exists yet."""
    if live:
        return "the checkpoint its stop writes"
    ckpt = latest_checkpoint(run_dir)
    return ckpt.name if ckpt else None


def resume_offer(run_dir: Path, live: bool) -> ResumeOffer | None:
    """The label and the step a resume goes on from: a checkpoint's own, or (live) the run's newest step so far,
    which its stop's checkpoint is at or past."""
    label = resume_label(run_dir, live)
    if label is None:
        return None
    if live:
        step = run_info(run_dir).step
    else:
        number = label.rpartition("-")[2]
        step = int(number) if number.isdigit() else None
    return ResumeOffer(label, step if isinstance(step, int) else None)


def ask_relaunch(screen: Screen, run_dir: Path | None, live: bool, source: str, config_text: str,
                 then: Callable[[Relaunch | None], None]) -> None:
    """The relaunch dialog over `screen` for `config_text` (`run_dir` None: a new run, fresh weights only);
    `then` gets the answer, or None when cancelled."""
    cfg, problems = check_config_text(config_text)
    if cfg is None:
        screen.notify(f"relaunch: {problems[0]}", severity="error", timeout=10)
        return
    offer = resume_offer(run_dir, live) if run_dir is not None else None
    name = run_dir.name if run_dir is not None else ""
    question = (f"Stop {name} and start a new run from {source}:" if live
                else f"Start a new run from {source}:")
    ask(screen, RelaunchDialog(question, cfg, offer), then)


class RelaunchProgress(ModalScreen[None]):
    """What a relaunch is doing: `stopping NAME (pid N): waiting for its checkpoint… 12s`, then `starting…`.
    It closes when the new run's screen replaces the one below, or the relaunch fails (a notification says why)."""

    def __init__(self, name: str, pid: int | None) -> None:
        super().__init__(classes="dialog-screen")
        self.run_name = name
        self.pid = pid
        self.phase = "stopping" if pid is not None else "starting"
        self.since = time.monotonic()
        self.phases = [self.headline()]
        """Each phase's line as it began (a quick stop may be over before the screen is drawn)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.text(), id="relaunch-progress")
            yield Label("The new run opens here once its trainer has started.", classes="dialog-hint")

    def on_mount(self) -> None:
        self.set_interval(0.5, self._draw)

    def headline(self) -> str:
        if self.phase == "stopping":
            return f"stopping {self.run_name} (pid {self.pid}): waiting for its checkpoint…"
        return "starting the new run: checking the model and the data…"

    def text(self) -> str:
        return f"{self.headline()} {int(time.monotonic() - self.since)}s"

    def _draw(self) -> None:
        self.query_one("#relaunch-progress", Label).update(self.text())

    def starting(self) -> None:
        self.phase, self.since = "starting", time.monotonic()
        self.phases.append(self.headline())
        if self.is_mounted:
            self._draw()

    def close(self) -> None:
        if self.app.screen is self:
            self.app.pop_screen()


def show_progress(screen: Screen, run_dir: Path | None, live: bool) -> RelaunchProgress:
    """The progress screen over `screen`: stopping (a live run, its pid), else starting."""
    pid = run_info(run_dir).pid if live and run_dir is not None else None
    progress = RelaunchProgress(run_dir.name if run_dir is not None else "", pid if live else None)
    screen.app.push_screen(progress)
    return progress


def wait_for_exit(pid: int | None, timeout: float = EXIT_WAIT_S) -> None:
    """Until the stopped trainer's process is gone (it holds the run until then), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def launch_and_open(screen: Screen, start: Callable[[], Path], standalone: bool,
                    progress: RelaunchProgress | None) -> None:
    """On a worker thread: start a run (`start` returns its directory), then show it in place of `screen` (the
    app's `OpenRun`); a failure closes the progress screen and is a notification."""
    call = screen.app.call_from_thread
    if progress is not None:
        call(progress.starting)
    try:
        new_dir = start()
    except (LaunchError, OSError) as exc:
        call(fail_relaunch, screen, progress, f"relaunch failed: {exc}")
        return
    call(_opened, screen, progress, new_dir, standalone)


def start_new_run(screen: Screen, start: Callable[[], Path], standalone: bool,
                  progress: RelaunchProgress | None = None) -> None:
    """`launch_and_open` off the UI thread (checking the model and the data takes a while): the screen stays drawn."""
    progress = progress or show_progress(screen, None, False)
    screen.run_worker(lambda: launch_and_open(screen, start, standalone, progress), thread=True, group="relaunch")


def fail_relaunch(screen: Screen, progress: RelaunchProgress | None, message: str) -> None:
    """On the UI thread: close the progress screen and say why the relaunch stopped."""
    if progress is not None:
        progress.close()
    screen.notify(message, severity="error", timeout=10)


def _opened(screen: Screen, progress: RelaunchProgress | None, new_dir: Path, standalone: bool) -> None:
    if progress is not None:
        progress.close()
    screen.post_message(OpenRun(new_dir, standalone))
