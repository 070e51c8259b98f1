"""`python -m trainer_core --run-dir DIR`: the trainer process of one run.

It reads DIR/config.yaml, writes trainer.json / events.jsonl / trainer.log / summary.json there, and
turns every user error (config, data, model) into one line on stderr, an `error` event and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
import warnings
from pathlib import Path

from trainer_core.config import ConfigError, load_config
from trainer_core.live.control import Command, CommandQueue
from trainer_core.live.events import EventLog
from trainer_core.live.launch import EXIT_USER_ERROR
from trainer_core.live.log_events import NOT_AN_EVENT, mirror_log
from trainer_core.live.rundir import CONFIG_FILE, EVENTS_FILE, LOG_FILE, update_trainer_json
from trainer_core.live.terminal import make_output_best_effort
from trainer_core.train import ranks
from trainer_core.train.records import DataError

EXIT_FAILED = 3

log = logging.getLogger("trainer_core")


def _setup_logging(run_dir: Path, echo: bool, log_file: str = LOG_FILE) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handler = logging.FileHandler(run_dir / log_file, encoding="utf-8")
    handler.setFormatter(fmt)
    log.addHandler(handler)
    if echo:
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


def _install_signal_handlers(commands: CommandQueue) -> None:
    """SIGTERM/SIGINT: finish the step, save, write the summary, exit 0. A second SIGINT aborts."""

    def graceful(signum, _frame):
        if commands.stop_requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        commands.put(Command("stop", id=f"signal-{signum}", source=f"signal {signal.Signals(signum).name}"))

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped SSH session never stops training


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer_core", description=__doc__)
    ap.add_argument("--run-dir", required=True, type=Path, help="run directory holding config.yaml")
    ap.add_argument("--resume", type=Path, default=None, help="checkpoint folder to continue from")
    ap.add_argument("--keep-lr-scale", action="store_true",
                    help="with --resume: keep the checkpoint's live lr_scale instead of starting at 1")
    ap.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    args = ap.parse_args(argv)
    make_output_best_effort()  # a closed pipe or terminal never ends a run (`nlirg train ... | head -1`)
    run_dir: Path = args.run_dir.resolve()
    rank = ranks.launcher_rank()
    if rank > 0:  # DeepSpeed: rank 0 alone owns trainer.json, events.jsonl, summary.json and the socket
        return ranks.run_worker(run_dir, rank, args.resume, _setup_logging, _install_signal_handlers,
                                args.keep_lr_scale)
    _setup_logging(run_dir, echo=True)
    update_trainer_json(run_dir, pid=os.getpid(), host=socket.gethostname(), status="starting",
                        started=time.time(), ended=None, run_dir=str(run_dir))
    ranks.announce(run_dir, 0, status="starting", error=None)  # DeepSpeed only: lets ranks explain a death
    events = EventLog(run_dir / EVENTS_FILE)
    mirror_log(log, events)  # trainer.log's lines are `log` events too (the workbench's Log pane)
    commands = CommandQueue()
    _install_signal_handlers(commands)

    def fail(message: str, code: int) -> int:
        log.error(message, extra={"quiet": True, **NOT_AN_EVENT})  # trainer.log; the terminal gets the line below
        events.emit("error", message=message, fatal=True)
        events.emit("end", status="failed", reason=message)
        update_trainer_json(run_dir, status="failed", ended=time.time(), error=message)
        ranks.announce(run_dir, 0, status="failed", error=message)
        print(f"error: {message}", file=sys.stderr, flush=True)
        return code

    try:
        cfg = load_config(run_dir / CONFIG_FILE)
    except ConfigError as exc:
        return fail(str(exc).replace("\n", " "), EXIT_USER_ERROR)

    from trainer_core.train.loop import Trainer  # torch is imported only past config validation
    from trainer_core.train.model import ModelLoadError
    from trainer_core.train.progress import Progress

    trainer = Trainer(cfg, run_dir, events, commands, resume=args.resume, progress=Progress(args.progress),
                      keep_lr_scale=args.keep_lr_scale)
    server = _start_server(trainer)  # before setup: clients can attach (and stop) while the model loads
    try:
        trainer.setup()
        status = trainer.fit()
    except (ConfigError, DataError, ModelLoadError) as exc:
        return fail(str(exc).replace("\n", " "), EXIT_USER_ERROR)
    except KeyboardInterrupt:
        return fail("interrupted twice: stopped without a final checkpoint", EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 - report, record and re-raise: a bug keeps its traceback
        if type(exc).__name__ == "OutOfMemoryError":
            return fail(f"out of memory at step {trainer.step}: lower training.batch_size or data.max_length, "
                        "or set model.gradient_checkpointing: true", EXIT_FAILED)
        peer = ranks.failed_peer(run_dir, trainer)  # DeepSpeed: a collective broke because another rank died
        if peer is not None:
            return fail(peer, EXIT_FAILED)
        fail(f"trainer crashed at step {trainer.step}: {type(exc).__name__}: {exc}", EXIT_FAILED)
        raise
    finally:
        if server is not None:
            server.close()
        events.close()
        ranks.close_backend(trainer)
    return 0 if status in ("completed", "stopped") else EXIT_FAILED


def _start_server(trainer):
    """The live socket server of rank 0."""
    from trainer_core.live.server import start_server

    return start_server(trainer)


if __name__ == "__main__":
    sys.exit(main())
