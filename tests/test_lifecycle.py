"""One lifecycle for every rank (trainer_core.train.lifecycle): rank 0 and the ranks above it fail the same way.

An out-of-memory cannot be produced on demand on this machine, so the step raises torch's own
OutOfMemoryError; everything around it (config, model, setup, the failure ladder, the records) is real.
"""

from __future__ import annotations

import logging
import signal

import pytest
import torch

from tests.helpers import TINY, make_config, write_alpaca
from trainer_core.config import save_config
from trainer_core.live.events import read_events
from trainer_core.live.rundir import read_json
from trainer_core.train import lifecycle
from trainer_core.train.loop import Trainer


@pytest.fixture()
def run_dir(tmp_path, monkeypatch):
    """A run directory on builtin:tiny inside a 2-rank launch's environment; signals and logging restored after."""
    data = write_alpaca(tmp_path / "d.jsonl", n=8)
    run = tmp_path / "run"
    run.mkdir()
    save_config(make_config([*TINY, f"data.train={data}", "training.max_steps=3", "data.eval_fraction=0"]),
                run / "config.yaml")
    monkeypatch.setenv("WORLD_SIZE", "2")  # rank files are written only in a multi-rank launch
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    logger = logging.getLogger("trainer_core")
    before = list(logger.handlers)
    yield run
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    for handler in logger.handlers[len(before):]:
        handler.close()
    logger.handlers[:] = before


def _fail_at_step(monkeypatch, exc: Exception) -> None:
    def step(self):
        if self.step == 1:
            raise exc
        original(self)

    original = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", step)


@pytest.mark.parametrize("rank", [0, 1])
def test_out_of_memory_advice_reaches_every_rank(run_dir, monkeypatch, capsys, rank):
    _fail_at_step(monkeypatch, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    code = lifecycle.run_trainer(run_dir, rank)
    assert code == lifecycle.EXIT_FAILED
    advice = "out of memory at step 1: lower training.batch_size or data.max_length"
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: " + ("" if rank == 0 else "rank 1: ") + advice)
    assert advice in read_json(run_dir / "ranks" / f"rank-{rank}.json")["error"]
    if rank == 0:  # rank 0 also tells the run's records and its clients
        assert read_json(run_dir / "trainer.json")["status"] == "failed"
        fatal = [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "error"]
        assert advice in fatal[-1]["message"] and fatal[-1]["fatal"]
    else:  # a rank above 0 keeps no event log of its own (the one-device backend here still writes files)
        assert not (run_dir / "events.jsonl").exists()
        assert (run_dir / "ranks" / "rank-1.log").read_text().count(advice) == 1


@pytest.mark.parametrize("rank", [0, 1])
def test_a_bug_on_any_rank_is_recorded_and_keeps_its_traceback(run_dir, monkeypatch, rank):
    _fail_at_step(monkeypatch, ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError):
        lifecycle.run_trainer(run_dir, rank)
    error = read_json(run_dir / "ranks" / f"rank-{rank}.json")["error"]
    assert error == "trainer crashed at step 1: ZeroDivisionError: a bug"
