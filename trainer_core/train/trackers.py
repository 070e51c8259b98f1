"""The run's scalars for the trackers of `telemetry.report_to` (rank 0 only): TensorBoard, Weights & Biases,
MLflow and trackio, under the Hugging Face Trainer's metric names plus ours (docs/export.md "Trackers").

Each tracker is optional and offline by default, with its files under the run directory: W&B in `wandb/`
(`WANDB_MODE` offline unless set), MLflow in the file store `mlruns/` (unless `MLFLOW_TRACKING_URI` is set),
trackio in `trackio/` (unless `TRACKIO_DIR` is set). Their own environment variables (WANDB_PROJECT, WANDB_DIR,
MLFLOW_EXPERIMENT_NAME, TRACKIO_SPACE_ID, ...) are honoured.

A tracker never stops a run: its import error, network error or full disk is one warning (trainer.log and a
`log` event) and that tracker is off for the rest of the run; the others and training go on.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from trainer_core.train.telemetry.tensorboard import TensorBoard

ZONE_NAMES = ("easy", "boost", "hard", "zeroed")
MLFLOW_BATCH = 100
"""MLflow takes at most 100 params (and 1000 metrics) in one log_batch."""


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
    """Every tracker of `report_to`, each switched off by its first failure (one warning)."""

    def __init__(self, names: list[str], run_dir: Path, config: Any, warn: Callable[[str], None],
                 tb_error: Callable[[str], None]):
        self.warn = warn
        self.live: dict[str, Any] = {}
        params = flat_params(config)
        name = run_dir.name
        for tracker in dict.fromkeys(names):
            if tracker == "tensorboard":
                self.live[tracker] = TensorBoard(run_dir / "tb", tb_error)
                continue
            try:
                self.live[tracker] = OPENERS[tracker](run_dir, name, params)
            except Exception as exc:  # noqa: BLE001 - whatever the library raises, the run goes on
                self._failed(tracker, "could not start", exc)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for tracker in list(self.live):
            if tracker == "tensorboard":
                for tag, value in metrics.items():
                    self.live[tracker].scalar(tag, value, step)
                continue
            self._call(tracker, "log", metrics, step)

    def flush(self, step: int) -> None:
        if "tensorboard" in self.live:
            self.live["tensorboard"].flush(step)

    def close(self, step: int, status: str) -> None:
        for tracker in list(self.live):
            if tracker == "tensorboard":
                self.live.pop(tracker).close(step)
            else:
                self._call(tracker, "close", status)
                self.live.pop(tracker, None)

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
