"""The shared helpers under both halves: atomic files and folders (trainer_core.atomic) and the one answer to
"is this run's process alive" (trainer_core.live.processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from tests.live_helpers import wait_for
from trainer_core.atomic import building_dir, write_atomic
from trainer_core.live.processes import descends_from, pid_alive


def test_write_atomic_replaces_the_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "trainer.json"
    path.write_text("old")
    write_atomic(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["trainer.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_atomic(path, 42)  # type: ignore[arg-type]  (fails after the temp file was opened)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_building_dir_publishes_whole_or_not_at_all(tmp_path):
    target = tmp_path / "step-4"
    with building_dir(target) as tmp:
        assert tmp.name == ".tmp-step-4" and not target.exists()
        (tmp / "model.bin").write_text("v1")
    assert (target / "model.bin").read_text() == "v1"
    with pytest.raises(OSError), building_dir(target) as tmp:
        (tmp / "model.bin").write_text("half")
        raise OSError(28, "No space left on device")
    assert (target / "model.bin").read_text() == "v1"  # the old checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-4"]
    with building_dir(target) as tmp:  # a second save of the same step replaces it whole
        (tmp / "other.bin").write_text("v2")
    assert sorted(p.name for p in target.iterdir()) == ["other.bin"]


def test_pid_alive_for_live_dead_zombie_and_nonsense_pids():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert pid_alive(os.getpid())
    assert not pid_alive(gone.pid)
    assert not any(pid_alive(p) for p in (None, True, 0, -1, "123", 1.0))
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exited, not yet reaped: a SIGKILLed trainer's state
    wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, "a zombie")
    assert not pid_alive(zombie.pid)
    zombie.wait()


def test_another_users_process_is_not_our_trainer():
    """A pid held by another user's process is a reused pid: the run is dead for the Runs and the Run screen alike
    (before, one pid_alive said dead and the other alive)."""
    if os.getuid() == 0:
        other = subprocess.Popen(["sleep", "30"], user=65534)  # nobody
        try:
            assert not pid_alive(other.pid)
        finally:
            other.kill()
            other.wait()
    else:
        assert not pid_alive(1)  # init belongs to root


def test_descends_from_follows_the_parent_chain():
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                              "p = subprocess.Popen(['sleep', '30']); print(p.pid, flush=True); p.wait()"],
                             stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        assert descends_from(grandchild, os.getpid()) and descends_from(grandchild, child.pid)
        assert not descends_from(os.getpid(), child.pid)
        assert not descends_from(grandchild, os.getpid(), depth=1)
    finally:
        subprocess.run(["kill", str(grandchild)], check=False)
        child.wait()
