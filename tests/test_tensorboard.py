"""TensorBoard scalars are optional: nothing about TensorBoard may stop a run from starting."""

from __future__ import annotations

import sys
import threading
import types

import pytest

from trainer_core.train.telemetry.tensorboard import TensorBoard

pytest.importorskip("torch.utils.tensorboard")  # imports the real writer modules first


def test_a_tensorboard_without_its_private_writer_thread_class_still_logs(tmp_path, monkeypatch):
    """The quiet-thread hook names a private class; a tensorboard release without it must not kill setup()."""
    # What the trainer's import then finds: a module without the class (the real writer keeps its own reference).
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", types.ModuleType("renamed"))
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)  # restored after the test
    errors: list[str] = []
    board = TensorBoard(tmp_path / "tb", errors.append)
    board.scalar("train/loss", 1.5, 1)
    board.close(1)
    assert errors == [] and list((tmp_path / "tb").glob("events.out.tfevents.*"))
