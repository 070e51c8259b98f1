"""Running an experiment: the base model evaluated once, then every run trained (or continued) and evaluated,
with `report.json` / `report.md` rewritten atomically after each evaluation.

Torch-free: trainers (`python -m trainer_core`, detached as `nlirg train --detach` starts them) and evaluations
(`python -m trainer_core.evaluate eval`) are child processes. What is already done is reused: a completed run
with its final model, an `eval.json` made with the same settings. A run stopped midway resumes from its last
checkpoint. Ctrl+C (SIGINT) or SIGTERM stops the current run with a checkpoint and leaves the experiment ready to
continue with the same command.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trainer_core.atomic import write_atomic
from trainer_core.evaluate.eval_lock import running_evaluator, wait_for_evaluator
from trainer_core.evaluate.experiment import (
    BASE_DIR,
    EVAL_FILE,
    LOG_FILE,
    REPORT_JSON,
    REPORT_MD,
    ExperimentError,
    current_report,
    load_spec,
    run_config,
)
from trainer_core.evaluate.options import EvalOptions
from trainer_core.evaluate.report import render_markdown
from trainer_core.live.checkpoint_recovery import resume_point
from trainer_core.live.launch import prepare_run, start_detached
from trainer_core.live.processes import pid_alive
from trainer_core.live.run_lock import LockHeld, hold, holder, lock_holder
from trainer_core.live.rundir import FINAL, read_json, write_json_atomic
from trainer_core.live.runs import last_step_event, run_info

Say = Callable[[str], None]
POLL_S = 0.5
PROGRESS_EVERY_S = 15.0
EXIT_INTERRUPTED = 130


class Interrupted(Exception):
    """The user asked the experiment to stop; what is finished stays, the rest continues next time."""


class RunFailed(RuntimeError):
    """A run or an evaluation ended badly; the message names it and its log."""


class Children:
    """Processes this experiment waits on; a stop request sends each SIGTERM (a trainer then checkpoints)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pids: set[int] = set()
        self.stopping = threading.Event()

    def add(self, pid: int) -> None:
        with self.lock:
            self.pids.add(pid)
        if self.stopping.is_set():
            _terminate(pid)

    def discard(self, pid: int) -> None:
        with self.lock:
            self.pids.discard(pid)

    def stop_all(self) -> None:
        self.stopping.set()
        with self.lock:
            for pid in self.pids:
                _terminate(pid)


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs; our own child is reaped here so it never lingers as a zombie."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done != pid
    except ChildProcessError:
        return pid_alive(pid)  # started by an earlier invocation: not ours to reap


@contextlib.contextmanager
def experiment_lock(exp_dir: Path) -> Iterator[None]:
    """One process per experiment: a second `nlirg ab` on the same folder is refused, not interleaved."""
    try:
        fh = hold(exp_dir / EXPERIMENT_LOCK)
    except LockHeld as exc:
        raise ExperimentError(experiment_busy_message(exp_dir, exc.pid)) from None
    with fh:
        yield


EXPERIMENT_LOCK = ".lock"


def experiment_busy_message(exp_dir: Path, pid: int | None) -> str:
    who = f" (pid {pid})" if pid else ""
    return (f"{exp_dir.name} is already being run by another nlirg ab{who}; wait for it, or stop it with Ctrl+C "
            f"there{f' or kill {pid}' if pid else ''}")


def experiment_runner_pid(exp_dir: Path) -> int | None:
    """The pid of the `nlirg ab` running the experiment (0 when unknown), or None when none runs it."""
    return holder(exp_dir / EXPERIMENT_LOCK)


@contextlib.contextmanager
def stop_on_signals(children: Children, say: Say) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        if not children.stopping.is_set():
            say(f"{signal.Signals(signum).name}: stopping the current run with a checkpoint; run the same "
                "command again to continue")
        children.stop_all()

    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in saved.items():
            signal.signal(s, old)


class ExperimentRunner:
    """Trains and evaluates the runs of one experiment folder, one run per device at a time."""

    def __init__(self, exp_dir: Path, say: Say, gpus: list[str] | None = None) -> None:
        self.exp_dir = exp_dir.resolve()
        self.spec = load_spec(self.exp_dir)
        self.say = say
        self.gpus: list[str | None] = list(gpus) if gpus else [None]
        self.children = Children()
        self.report_lock = threading.Lock()
        self.errors: list[BaseException] = []

    # ------------------------------------------------------------------ the whole experiment
    def run(self) -> int:
        with experiment_lock(self.exp_dir), stop_on_signals(self.children, self.say):
            try:
                self.evaluate(None, self.exp_dir / BASE_DIR, self.spec["base"], self.gpus[0])
                self._train_and_evaluate_all()
            except Interrupted:
                pass
            finally:
                report = self.write_report()
        if self.children.stopping.is_set():
            self.say(f"interrupted: {report['evaluated']}/{report['planned']} runs evaluated; run the same command "
                     "again to continue")
            return EXIT_INTERRUPTED
        self.say((self.exp_dir / REPORT_MD).read_text(encoding="utf-8"))
        return 0

    def _train_and_evaluate_all(self) -> None:
        todo: queue.Queue[dict[str, Any]] = queue.Queue()
        for slot in self.spec["runs"]:
            todo.put(slot)
        workers = [threading.Thread(target=self._worker, args=(todo, gpu), daemon=True) for gpu in self.gpus]
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            time.sleep(POLL_S)  # the main thread stays free for Ctrl+C
        if self.errors:
            raise self.errors[0]

    def _worker(self, todo: queue.Queue, gpu: str | None) -> None:
        while not self.children.stopping.is_set() and not self.errors:
            try:
                slot = todo.get_nowait()
            except queue.Empty:
                return
            try:
                run_dir = self.exp_dir / slot["name"]
                self.train(slot, run_dir, gpu)
                self.evaluate(slot, run_dir, str(run_dir), gpu)
                self.write_report()
            except Interrupted:
                return
            except (RunFailed, ExperimentError) as exc:
                self.errors.append(exc)
                self.children.stop_all()
                return

    # ------------------------------------------------------------------ training
    def train(self, slot: dict[str, Any], run_dir: Path, gpu: str | None) -> None:
        label = f"{slot['name']} (seed {slot['seed']})"
        info = run_info(run_dir) if run_dir.is_dir() else None
        if info is not None and info.status == "completed" and (run_dir / FINAL).is_dir():
            self.say(f"{label}: trained already; reused")
            return
        wait_for_trainer(self._start(slot, run_dir, info, gpu, label), run_dir, label, self.say, self.children)
        self._check_trained(run_dir, label)

    def _start(self, slot: dict[str, Any], run_dir: Path, info: Any, gpu: str | None, label: str) -> int:
        """The pid to wait for: a trainer still running from an earlier start, a resumed one, or a new one."""
        env = {"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}
        holder = lock_holder(run_dir) if run_dir.is_dir() else None  # a trainer of an earlier start holds it
        if holder or (info is not None and info.live and info.pid is not None):
            self.say(f"{label}: still training from an earlier start; waiting for it")
            return holder or info.pid
        ckpt = continue_point(run_dir)
        if ckpt is not None:
            self.say(f"{label}: continuing from {ckpt.name}{_on(gpu)}")
            return start_detached(run_dir, ckpt, env)
        cfg = run_config(self.spec["config"], slot["arm"], slot["seed"], slot["name"], self.exp_dir)
        prepare_run(cfg, slot["name"], at=run_dir)
        self.say(f"{label}: training {slot['arm']}{_on(gpu)} -> {run_dir}")
        return start_detached(run_dir, None, env)

    def _check_trained(self, run_dir: Path, label: str) -> None:
        info = run_info(run_dir)
        if info.status == "completed" and (run_dir / FINAL).is_dir():
            self.say(f"{label}: trained ({info.step} steps)")
            return
        if self.children.stopping.is_set():
            raise Interrupted
        error = (read_json(run_dir / "trainer.json") or {}).get("error") or info.status
        raise RunFailed(f"run {label} ended {info.status}: {error}; see {run_dir / 'trainer.log'}")

    # ------------------------------------------------------------------ evaluation
    def eval_options(self) -> EvalOptions:
        """The options every evaluation of this experiment shares: the runs' and the base model's eval.json
        compare (one max_length and system prompt), and the base model's perplexity is reused."""
        ev, data = self.spec["eval"], self.spec["config"]["data"]
        return EvalOptions(domain=self.spec["domain"], general=self.spec["general"], base=self.spec["base"],
                           max_new_tokens=ev["max_new_tokens"], batch_size=ev["batch_size"], limit=ev.get("limit", 0),
                           base_result=str(self.exp_dir / BASE_DIR / EVAL_FILE), max_length=data["max_length"],
                           system_prompt=data["system_prompt"])

    def evaluations_current(self) -> bool:
        """Whether the base model and every run have an eval.json made with today's settings and set contents."""
        settings = self.eval_options().settings()
        dirs = [self.exp_dir / BASE_DIR, *(self.exp_dir / slot["name"] for slot in self.spec["runs"])]
        return all(_same_settings(read_json(d / EVAL_FILE), settings) for d in dirs)

    def evaluate(self, slot: dict[str, Any] | None, out_dir: Path, target: str, gpu: str | None) -> None:
        label = slot["name"] if slot else f"base model {target}"
        out = out_dir / EVAL_FILE
        opts = self.eval_options()
        self._adopt_evaluator(out, label)
        if _same_settings(read_json(out), opts.settings()):
            self.say(f"{label}: evaluated already; reused")
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        cmd = opts.command(target, out)
        self.say(f"{label}: evaluating{_on(gpu)}")
        env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {})}
        with (out_dir / "eval.log").open("ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        self.children.add(proc.pid)
        try:
            code = proc.wait()
        finally:
            self.children.discard(proc.pid)
        if code != 0:
            if self.children.stopping.is_set():
                raise Interrupted
            raise RunFailed(f"evaluation of {label} failed (exit {code}): {_last_line(out_dir / 'eval.log')}")
        self.say(f"{label}: " + _headline(read_json(out) or {}))

    def _adopt_evaluator(self, out: Path, label: str) -> None:
        """An evaluator still writing `out` (started by an `nlirg ab` that was killed): wait for it rather than
        start a second one; a stop request stops it too."""
        pid = running_evaluator(out)
        if pid is None:
            return
        self.say(f"{label}: an evaluator from an earlier start (pid {pid}) is still running; waiting for it")
        if pid:
            self.children.add(pid)
        try:
            if not wait_for_evaluator(out, self.children.stopping.is_set):
                raise Interrupted
        finally:
            if pid:
                self.children.discard(pid)

    # ------------------------------------------------------------------ report
    def write_report(self) -> dict[str, Any]:
        with self.report_lock:
            report = current_report(self.exp_dir, self.spec)
            write_json_atomic(self.exp_dir / REPORT_JSON, report)
            write_atomic(self.exp_dir / REPORT_MD, render_markdown(report))
            return report


def wait_for_trainer(pid: int, run_dir: Path, label: str, say: Say, children: Children,
                     every_s: float = PROGRESS_EVERY_S) -> None:
    """Wait for a trainer, saying its latest step at most every `every_s` and only when it moved: a step slower
    than `every_s` is said once, not line after line."""
    children.add(pid)
    shown_at, shown_step = time.monotonic(), None
    try:
        while _alive(pid):
            time.sleep(POLL_S)
            if time.monotonic() - shown_at < every_s:
                continue
            shown_at = time.monotonic()
            last = last_step_event(run_dir / "events.jsonl") or {}
            if last and last.get("step") != shown_step:
                shown_step = last.get("step")
                say(f"{label}: step {shown_step}/{last.get('total_steps')} loss {last.get('loss', float('nan')):.4f}")
    finally:
        children.discard(pid)


def continue_point(run_dir: Path) -> Path | None:
    """The checkpoint a stopped run continues from: its newest whole one once the leftovers of a save that a kill
    interrupted are finished or undone (`resume_point`), so a whole copy under `.tmp-`/`.old-` is never lost.
    None when there is none; the folder of a run that never got a checkpoint is removed, to start it again."""
    if not run_dir.exists():
        return None
    ckpt = resume_point(run_dir)
    if ckpt is None:
        shutil.rmtree(run_dir)
    return ckpt


def _on(gpu: str | None) -> str:
    """Where a run goes, for the progress lines: `--gpus` pins each run to one device."""
    return f" on GPU {gpu}" if gpu is not None else ""


def _same_settings(result: dict[str, Any] | None, opts: dict[str, Any]) -> bool:
    settings = (result or {}).get("settings") or {}
    return bool(result) and all(settings.get(k) == v for k, v in opts.items())


def _headline(result: dict[str, Any]) -> str:
    shown = ("eval_loss", "domain_accuracy", "general_ppl_ratio", "repetition_3gram", "json_valid_rate")
    got = result.get("metrics") or {}
    return "  ".join(f"{k} {got[k]:.4f}" for k in shown if isinstance(got.get(k), (int, float)))


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def start_experiment_detached(exp_dir: Path, gpus: list[str] | None) -> int:
    """`nlirg ab --detach`: this runner in its own session (a closed terminal never stops it), logging to
    experiment.log; returns its pid."""
    cmd = [sys.executable, "-m", "trainer_core.evaluate", "ab", str(exp_dir)]
    if gpus:
        cmd += ["--gpus", ",".join(gpus)]
    with (exp_dir / LOG_FILE).open("ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc.pid


def run_experiment(exp_dir: Path, say: Say, gpus: list[str] | None = None) -> int:
    """Run or continue the experiment in `exp_dir`; 0 when every run is trained and evaluated, 130 if stopped."""
    return ExperimentRunner(exp_dir, say, gpus).run()
