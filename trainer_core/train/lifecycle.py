"""The life of one trainer process, whatever its rank: start, load the config, set up, fit, fail one way.

Rank 0 (the only rank of a one-device run) owns trainer.json, events.jsonl, trainer.log and the live socket;
a DeepSpeed rank above 0 logs to `ranks/rank-N.log`, builds the same events without keeping them, and follows
the commands rank 0 shares. Everything else, the failure ladder included, is the same code on every rank, so
a user error, an out-of-memory or a dead peer is explained on whichever rank meets it.

Torch-free at import: torch loads only once the config is known to be valid.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from trainer_core.config import ConfigError, build_config
from trainer_core.data.records import DataError
from trainer_core.live.control import Command, CommandQueue
from trainer_core.live.events import EventLog
from trainer_core.live.launch import EXIT_USER_ERROR
from trainer_core.live.log_events import NOT_AN_EVENT, mirror_log
from trainer_core.live.processes import process_started
from trainer_core.live.run_lock import RunBusy, hold_run
from trainer_core.live.rundir import (
    CONFIG_FILE,
    EVENTS_FILE,
    LOG_FILE,
    follow_run_dir_mode,
    record_trainer_json,
)
from trainer_core.train import ranks
from trainer_core.train.telemetry.log_file import LogFileHandler

if TYPE_CHECKING:
    from trainer_core.train.loop import ProbeFactory

EXIT_FAILED = 3

log = logging.getLogger("trainer_core")


class Seat:
    """What differs between rank 0 and the other ranks: where a rank logs, and who hears of its failure."""

    def __init__(self, run_dir: Path, rank: int):
        self.run_dir = run_dir
        self.rank = rank
        self.main = rank == 0

    def start(self) -> EventLog | ranks.SilentEventLog:
        """Set up logging and the run's records of this process; return the event log this rank writes to."""
        if self.main:
            setup_logging(self.run_dir, LOG_FILE)
            record_trainer_json(self.run_dir, pid=os.getpid(), pid_started=process_started(os.getpid()),
                                host=socket.gethostname(), status="starting", started=time.time(), ended=None,
                                run_dir=str(self.run_dir))
        else:
            (self.run_dir / ranks.RANKS_DIR).mkdir(exist_ok=True)
            setup_logging(self.run_dir, f"{ranks.RANKS_DIR}/rank-{self.rank}.log")
        ranks.announce(self.run_dir, self.rank, status="starting", error=None)  # DeepSpeed: lets ranks explain a death
        if not self.main:
            return ranks.SilentEventLog()
        events = EventLog(self.run_dir / EVENTS_FILE)
        mirror_log(log, events)  # trainer.log's lines are `log` events too (the workbench's Log pane)
        return events

    def fail(self, events: EventLog | ranks.SilentEventLog, message: str, code: int) -> int:
        """Record a fatal error everywhere this rank reports to, print it as one line, return the exit code."""
        # To the log file (not mirrored: the `error` event below says it); the terminal gets the one line below.
        log.error(message, extra={"quiet": True, **NOT_AN_EVENT})
        events.emit("error", message=message, fatal=True)
        events.emit("end", status="failed", reason=message)
        if self.main:
            record_trainer_json(self.run_dir, status="failed", ended=time.time(), error=message)
        ranks.announce(self.run_dir, self.rank, status="failed", error=message)
        where = "" if self.main else f"rank {self.rank}: "
        print(f"error: {where}{message}", file=sys.stderr, flush=True)
        return code


def run_trainer(run_dir: Path, rank: int, resume: Path | None = None, progress: bool = False,
                keep_lr_scale: bool = False, make_probe: ProbeFactory | None = None) -> int:
    """Train the run in `run_dir` as this rank; return the process's exit code (0 completed or stopped).

    `keep_lr_scale`: with `resume`, keep the checkpoint's live lr_scale instead of starting again at 1.
    `make_probe`: builds the eval.generate_every probe from the config (the Trainer's `make_probe`).
    """
    follow_run_dir_mode(run_dir)  # 0700/0600 unless output.shared: before the first file is written
    try:  # one trainer per run: a second one is refused before it writes a byte (live/run_lock.py)
        lock = hold_run(run_dir) if rank == 0 else None
    except RunBusy as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    try:
        return _run(run_dir, rank, resume, progress, keep_lr_scale, make_probe)
    finally:
        if lock is not None:
            lock.close()


def _run(run_dir: Path, rank: int, resume: Path | None, progress: bool, keep_lr_scale: bool,
         make_probe: ProbeFactory | None) -> int:
    seat = Seat(run_dir, rank)
    events = seat.start()
    commands = CommandQueue()
    install_signal_handlers(commands)
    try:
        cfg = build_config(run_dir / CONFIG_FILE)
    except ConfigError as exc:
        return seat.fail(events, one_line(exc), EXIT_USER_ERROR)

    from trainer_core.train.loop import Trainer  # torch is imported only past config validation
    from trainer_core.train.model.checkpoint import CheckpointError
    from trainer_core.train.model.load import ModelLoadError
    from trainer_core.train.progress import Progress

    trainer = Trainer(cfg, run_dir, events, commands, resume=resume, progress=Progress(progress and seat.main),
                      keep_lr_scale=keep_lr_scale, make_probe=make_probe)
    server = _start_server(trainer) if seat.main else None  # before setup: clients can attach while it loads
    try:
        trainer.setup()
        status = trainer.fit()
    except (ConfigError, DataError, ModelLoadError, CheckpointError) as exc:
        return seat.fail(events, one_line(exc), EXIT_USER_ERROR)
    except KeyboardInterrupt:
        return seat.fail(events, "interrupted twice: stopped without a final checkpoint", EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 - explained, recorded, and re-raised when it is a bug
        explained = _explain(exc, run_dir, trainer)
        if explained is not None:
            return seat.fail(events, explained, EXIT_FAILED)
        seat.fail(events, f"trainer crashed at step {trainer.step}: {type(exc).__name__}: {exc}", EXIT_FAILED)
        raise  # a bug keeps its traceback
    finally:
        if server is not None:
            server.close()
        events.close()
        if trainer.backend is not None:
            trainer.backend.close()
    ranks.announce(run_dir, rank, status=status)
    return 0 if status in ("completed", "stopped") else EXIT_FAILED


def _explain(exc: Exception, run_dir: Path, trainer) -> str | None:
    """A failure that is not a bug in this process: out of memory, or another rank that died first."""
    if type(exc).__name__ == "OutOfMemoryError":
        return (f"out of memory at step {trainer.step}: lower training.batch_size or data.max_length, "
                "or set model.gradient_checkpointing: true")
    return ranks.failed_peer(run_dir, trainer)  # DeepSpeed: a collective broke because another rank died


def one_line(exc: Exception) -> str:
    return str(exc).replace("\n", " ")


def _start_server(trainer):
    """The live socket server of rank 0 (imported here: ranks above 0 never load it)."""
    from trainer_core.live.server import start_server

    return start_server(trainer)


def setup_logging(run_dir: Path, log_file: str) -> None:
    """Log to `run_dir/log_file`; warnings also reach stderr as plain lines (but not those marked `quiet`)."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handler = LogFileHandler(run_dir / log_file)  # a full disk drops lines, never prints tracebacks
    handler.setFormatter(fmt)
    log.addHandler(handler)
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(logging.Formatter("%(message)s"))
    err.setLevel(logging.WARNING)
    err.addFilter(lambda record: not getattr(record, "quiet", False))
    log.addHandler(err)
    log.setLevel(logging.INFO)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for noisy in ("transformers", "peft", "torch", "DeepSpeed", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # DeepSpeed resets its logger's level when imported (accelerate imports it at the first save of any run,
    # printing "Setting accelerator to CPU"); a filter outlives that.
    logging.getLogger("DeepSpeed").addFilter(lambda record: record.levelno >= logging.ERROR)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def install_signal_handlers(commands: CommandQueue) -> None:
    """SIGTERM/SIGINT: finish the step, save, write the summary, exit 0. A second SIGINT aborts."""

    def graceful(signum, _frame):
        if commands.stop_requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        commands.put(Command("stop", id=f"signal-{signum}", source=f"signal {signal.Signals(signum).name}"))

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped SSH session never stops training
