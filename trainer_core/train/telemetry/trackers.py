"""The run's scalars for the trackers of `telemetry.report_to` (rank 0 only): TensorBoard, Weights & Biases,
MLflow and trackio, under the Hugging Face Trainer's metric names plus ours (docs/export.md "Trackers").

Each tracker is optional and offline by default, with its files under the run directory: W&B in `wandb/`
(`WANDB_MODE` offline unless set), MLflow in the file store `mlruns/` (unless `MLFLOW_TRACKING_URI` is set),
trackio in `trackio/` (unless `TRACKIO_DIR` is set). Their own environment variables (WANDB_PROJECT, WANDB_DIR,
MLFLOW_EXPERIMENT_NAME, TRACKIO_SPACE_ID, ...) are honoured.

A tracker never stops a run: its import error, network error or full disk is one warning (trainer.log and a
`log` event) and that tracker is off for the rest of the run; the others and training go on. Nor does it slow
one: W&B, MLflow and trackio are opened, fed and closed on one thread of their own (`tracker_thread`), so a slow
or unreachable server costs the loop nothing; TensorBoard writes from its own writer thread already. At the end
of the run the trackers get `CLOSE_WAIT_S` seconds to send what is queued.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from trainer_core.train.telemetry.tensorboard import TensorBoard
from trainer_core.train.telemetry.tracker_thread import MAX_PENDING, TrackerThread

ZONE_NAMES = ("easy", "boost", "hard", "zeroed")
MLFLOW_BATCH = 100
"""MLflow takes at most 100 params (and 1000 metrics) in one log_batch."""
CLOSE_WAIT_S = 120.0
"""How long the end of a run waits for the trackers to send their queued values and close."""


def step_metrics(event: dict[str, Any]) -> dict[str, float]:
    """A `step` event under the HF Trainer's names (train/loss, train/learning_rate, train/grad_norm, train/epoch)
    and ours (train/weighted_loss, nlirg/zone_share/<zone>, nlirg/grad_share/<zone>, perf/..., memory/...)."""
    out = {"train/loss": event.get("loss"), "train/weighted_loss": event.get("weighted_loss"),
           "train/learning_rate": event.get("lr"), "train/grad_norm": event.get("grad_norm"),
           "train/epoch": event.get("epoch"), "perf/tokens_per_s": event.get("tokens_per_s"),
           "perf/target_tokens_per_s": event.get("target_tokens_per_s"), "perf/mfu": event.get("mfu"),
           "perf/model_tflops": event.get("model_tflops"), "perf/step_time_s": event.get("step_time_s")}
    counts = event.get("zone_counts") or [0, 0, 0, 0]
    total = sum(counts)
    for i, zone in enumerate(ZONE_NAMES):
        out[f"nlirg/zone_share/{zone}"] = counts[i] / total if total else None
        out[f"nlirg/grad_share/{zone}"] = (event.get("zone_grad_share") or [None] * 4)[i]
    for key, value in (event.get("memory") or {}).items():
        out[f"memory/{key}_gib"] = value / 2**30
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def flat_params(config: Any) -> dict[str, str]:
    """The run's config as `section.key` -> text, for a tracker's parameters."""
    out: dict[str, str] = {}
    for section, values in asdict(config).items():
        for key, value in (values.items() if isinstance(values, dict) else [("", values)]):
            out[f"{section}.{key}".rstrip(".")] = value if isinstance(value, str) else json.dumps(value, default=str)
    return out


class Trackers:
    """Every tracker of `report_to`, each switched off by its first failure (one warning). TensorBoard is
    written here; the others only on the tracker thread (`live` belongs to it)."""

    def __init__(self, names: list[str], run_dir: Path, config: Any, warn: Callable[[str], None],
                 tb_error: Callable[[str], None]):
        self.warn = warn
        self.live: dict[str, Any] = {}
        wanted = list(dict.fromkeys(names))
        self.tensorboard = TensorBoard(run_dir / "tb", tb_error) if "tensorboard" in wanted else None
        remote = [tracker for tracker in wanted if tracker != "tensorboard"]
        self._thread = TrackerThread() if remote else None
        self._warned_behind = False
        params = flat_params(config)  # now: a live `set` may change the config before the thread gets to it
        for tracker in remote:
            self._submit(partial(self._open, tracker, run_dir, params))

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.tensorboard is not None:
            for tag, value in metrics.items():
                self.tensorboard.scalar(tag, value, step)
        self._submit(partial(self._each, "log", dict(metrics), step))

    def flush(self, step: int) -> None:
        if self.tensorboard is not None:
            self.tensorboard.flush(step)

    def close(self, step: int, status: str) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close(step)
            self.tensorboard = None
        if self._thread is None:
            return
        thread, self._thread = self._thread, None
        if not thread.finish(partial(self._each, "close", status), CLOSE_WAIT_S):
            self.warn(f"trackers still sending after {CLOSE_WAIT_S:.0f} s at the end of the run: "
                      f"{', '.join(self.live) or 'one still opening'} may miss the last values (every value is "
                      "in events.jsonl)")

    # ------------------------------------------------------------------ on the tracker thread
    def _open(self, tracker: str, run_dir: Path, params: dict[str, str]) -> None:
        try:
            self.live[tracker] = OPENERS[tracker](run_dir, run_dir.name, params)
        except Exception as exc:  # noqa: BLE001 - whatever the library raises, the run goes on
            self._failed(tracker, "could not start", exc)

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self.live):
            self._call(tracker, method, *args)
        if method == "close":
            self.live.clear()

    def _call(self, tracker: str, method: str, *args: Any) -> None:
        try:
            getattr(self.live[tracker], method)(*args)
        except Exception as exc:  # noqa: BLE001
            self._failed(tracker, f"stopped ({method})", exc)

    def _failed(self, tracker: str, what: str, exc: BaseException) -> None:
        self.live.pop(tracker, None)
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        hint = (f"pip install 'nlirg-workbench[{tracker}]'" if isinstance(exc, ImportError)
                else "training goes on; every value is still in events.jsonl")
        self.warn(f"tracker {tracker} {what}: {type(exc).__name__}: {text} ({hint})")

    # ------------------------------------------------------------------ on the loop's thread
    def _submit(self, call: Callable[[], None]) -> None:
        if self._thread is None or self._thread.submit(call) or self._warned_behind:
            return
        self._warned_behind = True
        self.warn(f"trackers fell behind ({MAX_PENDING} calls waiting): values are dropped until they catch up; "
                  "every value is still in events.jsonl")


class Wandb:
    def __init__(self, run_dir: Path, name: str, params: dict[str, str]):
        import wandb

        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "nlirg"), name=name, config=params,
                              dir=os.environ.get("WANDB_DIR", str(run_dir)), mode=os.environ.get("WANDB_MODE",
                                                                                                   "offline"),
                              reinit="create_new", settings=wandb.Settings(console="off", silent=True))

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "completed" else 1)


class Mlflow:
    def __init__(self, run_dir: Path, name: str, params: dict[str, str]):
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow-skinny has no sqlite store
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # an unreachable server: seconds, not minutes
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        self.Metric = Metric
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "nlirg")
        found = self.client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(exp_id, run_name=name).info.run_id
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + MLFLOW_BATCH])

    def log(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self.Metric(k, v, now, step) for k, v in metrics.items()])

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if status == "completed" else "FAILED")


class Trackio:
    def __init__(self, run_dir: Path, name: str, params: dict[str, str]):
        os.environ.setdefault("TRACKIO_DIR", str(run_dir / "trackio"))  # read once, when trackio is imported
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=os.environ.get("TRACKIO_PROJECT", "nlirg"), name=name, config=params,
                                embed=False)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self, status: str) -> None:
        self.run.finish()


OPENERS: dict[str, Callable[[Path, str, dict[str, str]], Any]] = {"wandb": Wandb, "mlflow": Mlflow,
                                                                   "trackio": Trackio}
