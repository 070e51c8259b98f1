"""TUI test fixtures: the user's own config and sockets kept out, fixture runs, real detached trainers."""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.geometry import Region
from textual.notifications import Notify

from nlirg_tui.launching import _start
from nlirg_tui.messages import CommandAcked
from tests.helpers import write_jsonl
from tests.tui.fixture_run import write_fixture_run
from trainer_core.config import build_config
from trainer_core.live.processes import pid_alive
from trainer_core.live.rundir import read_json

WAIT_S = 180.0
"""Upper bound on waiting for a state; never an assertion about speed."""

TINY_LIVE = ["model.path=builtin:tiny", "lora.enabled=false", "training.batch_size=2", "data.max_length=96",
             "training.max_steps=100000", "training.eval_every=0", "training.save_every=0",
             # A low deadline puts the untrained tiny model's tokens (loss ~7) in the zeroed zone, so the
             # Inspector has flagged samples to show.
             "nlirg.hard_min=5.0", "nlirg.loss_deadline=6.95"]


@pytest.fixture(scope="session", autouse=True)
def private_dirs() -> Iterator[None]:
    """Sockets and settings in our own temp dirs: tests never meet the user's runs or theme."""
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME")}
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="xdg-", dir="/tmp")
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="nlirg-cfg-")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def fixture_run(tmp_path: Path) -> Path:
    return write_fixture_run(tmp_path / "runs")


def write_data(path: Path, n: int = 24) -> Path:
    return write_jsonl(path, [{"instruction": f"What is {i} plus {i}?", "output": f"The answer is {2 * i}."}
                              for i in range(n)])


def start_trainer(tmp: Path, extra: list[str] | None = None) -> Path:
    """A real detached trainer on builtin:tiny (its own session, as `nlirg train --detach` starts it)."""
    data = tmp / "train.jsonl"
    if not data.exists():
        write_data(data)
    cfg = build_config(None, [*TINY_LIVE, f"data.train={data}", f"output.root={tmp / 'runs'}", *(extra or [])])
    return _start(cfg, "live")


def stop_trainer(run_dir: Path) -> None:
    """SIGTERM is the trainer's graceful stop; wait until the process is gone so no test leaves one behind."""
    pid = (read_json(run_dir / "trainer.json") or {}).get("pid")
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + WAIT_S
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def live_run(tmp_path: Path) -> Iterator[Path]:
    run_dir = start_trainer(tmp_path)
    yield run_dir
    stop_trainer(run_dir)


@pytest.fixture(scope="session")
def shared_live_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One real trainer for every test that only looks and steers gently (pause/resume, save, `set` of lr_scale
    or the curve's k): started once a session, since a trainer start is most of a TUI test's time. A test that
    pauses it resumes it before it ends; none stops it."""
    run_dir = start_trainer(tmp_path_factory.mktemp("shared-run"))
    yield run_dir
    stop_trainer(run_dir)


def acks_of(messages: list, name: str) -> list[dict]:
    """Acks seen for `name`, once each (the hook sees a bubbling message at every node it reaches)."""
    unique = {id(m): m for m in messages if isinstance(m, CommandAcked) and m.name == name}
    return [m.ack for m in unique.values()]


def notes(messages: list) -> list[str]:
    """The notifications (toasts) the app showed, once each, oldest first."""
    unique = {id(m): m for m in messages if isinstance(m, Notify)}
    return [m.notification.message for m in unique.values()]


async def attach(pilot: Any, app: Any) -> Any:
    """The Run screen, once its link is live and two steps have arrived."""
    from nlirg_tui.screens.run import RunScreen

    screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen, "the Run screen")
    await until(pilot, lambda: screen.link_mode == "live" and screen.state.step >= 2, "a live link and two steps")
    return screen


def shown(widget: Any) -> str:
    """The text a widget shows on screen now, line by line (what the user reads, not what the store holds)."""
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, *widget.size)))


def axis_labels(plot: Any) -> list[str]:
    """The numbers on the plot's x axis line (the line under the frame's bottom edge)."""
    lines = shown(plot).splitlines()
    bottom = max(i for i, line in enumerate(lines) if "└" in line)
    return re.findall(r"\d+(?:\.\d+)?", lines[bottom + 1])


async def until(pilot: Any, check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Let the app run until `check()` is truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (Textual's loop) through anyio's pytest plugin."""
    return "asyncio"
