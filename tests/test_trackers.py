"""telemetry.report_to: TensorBoard, W&B, MLflow and trackio each get the run's scalars under the HF Trainer's
names and ours, offline, under the run directory, read back with each library's own reader; and none of them can
stop a run (an import error, a network error, a full disk: one warning and a `log` event each)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from tests.helpers import TINY, cli_run, train_in_process, write_alpaca
from tests.test_full_disk import _fill, tiny_disk  # noqa: F401 - the real tmpfs fixture
from trainer_core.live.events import read_events

pytestmark = pytest.mark.slow
for _library in ("wandb", "mlflow", "trackio"):  # the extras the `run` set-up installs
    pytest.importorskip(_library)

ALL = "telemetry.report_to=[tensorboard,wandb,mlflow,trackio]"
TRACKIO_READ = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
logs = SQLiteStorage.get_logs(project="nlirg", run=sys.argv[1])
print(json.dumps([{k: v for k, v in row.items() if k in ("step", "train/loss", "eval/loss")} for row in logs]))
"""


def wandb_records(path):
    """W&B's offline run file, record by record, parsed by wandb's own protobuf `Record` (wandb has no Python
    reader of it; its framing is the LevelDB log format: a 7-byte file header, then in 32 KiB blocks records with a
    7-byte header: crc32, length (2 bytes, little-endian), type 1 full / 2 first / 3 middle / 4 last)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, pos, block, pending, out = path.read_bytes(), 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trackers")
    overrides = [*TINY, ALL, f"data.train={write_alpaca(root / 'd.jsonl')}", "data.eval_fraction=0.2",
                 "output.name=tracked"]
    return cli_run(root, overrides, max_steps=3)


def test_every_tracker_reads_back_the_steps_with_hf_trainer_names(tracked_run, monkeypatch):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tracked_run
    assert "WARNING tracker" not in (run_dir / "trainer.log").read_text()  # no tracker warned
    board = EventAccumulator(str(run_dir / "tb"))
    board.Reload()
    tags = set(board.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "eval/loss", "nlirg/zone_share/boost",
            "nlirg/grad_share/easy", "perf/tokens_per_s", "memory/rss_gib"} <= tags
    assert [s.step for s in board.Scalars("train/loss")] == [1, 2, 3]

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the reader's side of the file store, too
    client = MlflowClient((run_dir / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("nlirg").experiment_id])
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3]
    assert run.data.params["training.lr"] == "0.003" and run.data.params["model.path"] == "builtin:tiny"
    assert "nlirg/zone_share/zeroed" in run.data.metrics and "eval/loss" in run.data.metrics

    (offline,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")  # the file `wandb sync` uploads
    records = wandb_records(offline)
    steps = {}
    for rec in records:
        if rec.WhichOneof("record_type") == "history":
            steps.setdefault(rec.history.step.num, set()).update(i.key or "/".join(i.nested_key)
                                                                 for i in rec.history.item)
    assert [s for s, keys in sorted(steps.items()) if "train/loss" in keys] == [1, 2, 3]
    assert {"train/learning_rate", "nlirg/grad_share/boost", "perf/tokens_per_s"} <= steps[3]
    assert "eval/loss" in steps[0]
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert {"training.lr", "nlirg.k"} <= {u.key for u in run.config.update}

    out = subprocess.run([sys.executable, "-c", TRACKIO_READ, run_dir.name], capture_output=True, text=True,
                         timeout=120, env={"TRACKIO_DIR": str(run_dir / "trackio"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["step"] for r in rows if "train/loss" in r] == [1, 2, 3] and any("eval/loss" in r for r in rows)


def test_a_tracker_that_fails_is_one_warning_and_the_run_goes_on(tmp_path, tiny_disk, monkeypatch, caplog):  # noqa: F811
    """trackio cannot be imported, W&B cannot reach its server, MLflow's store is on a full disk."""
    monkeypatch.setitem(sys.modules, "trackio", None)  # `import trackio` raises ImportError
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")
    _fill(tiny_disk)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tiny_disk / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="trainer_core"):
        _, status = train_in_process(run_dir, [*TINY, ALL, f"data.train={write_alpaca(tmp_path / 'd.jsonl')}",
                                               "training.max_steps=2"])
    assert status == "completed"
    warned = [e["message"] for e in read_events(run_dir / "events.jsonl")
              if e["type"] == "log" and e["message"].startswith("tracker ")]
    assert sorted(m.split()[1] for m in warned) == ["mlflow", "trackio", "wandb"], warned
    assert any("ModuleNotFoundError" in m and "nlirg-workbench[trackio]" in m for m in warned)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("tracker ")] == warned
    assert [e["step"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "step"] == [1, 2]
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))  # TensorBoard went on


def test_a_tracker_server_that_never_answers_holds_up_nothing(tmp_path, monkeypatch):
    """MLflow's tracking server accepts connections and never answers (a real listening socket nobody serves):
    opening the tracker and logging return at once, because the trackers run on a thread of their own; the
    failure is one warning, which the end of the run waits for (bounded)."""
    import socket

    from tests.helpers import make_config
    from trainer_core.train.telemetry.trackers import Trackers

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # the kernel completes each connection; no one reads the request
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "4")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    warned: list[str] = []
    try:
        trackers = Trackers(["tensorboard", "mlflow"], tmp_path, make_config(TINY), warned.append, warned.append)
        for step in range(1, 6):
            trackers.log({"train/loss": 1.0 / step}, step)
        assert warned == []  # nothing has come back from the server yet: the loop did not wait for it
        trackers.close(5, "completed")
    finally:
        server.close()
    assert len(warned) == 1 and warned[0].startswith("tracker mlflow could not start"), warned
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))  # TensorBoard, written on the loop's side
