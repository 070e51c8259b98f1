"""What a kill, a torn write or a careless neighbour leaves in a run directory, and how the real CLI copes:
a checkpoint save killed between its renames, a torn events.jsonl tail, a bad line under `attach --stream`,
the run directory's permissions (issue 15, items 5, 6 and 8). One trained run, copied per test."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from tests.helpers import TINY, nlirg_cli, set_args, write_alpaca
from trainer_core.live.events import read_events
from trainer_core.live.rundir import COMPLETE_MARKER, checkpoint_dirs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 4-step run through the real CLI, checkpoints at steps 2 and 4, nothing pruned."""
    root = tmp_path_factory.mktemp("hardening")
    data = write_alpaca(root / "d.jsonl")
    sets = [*TINY, f"data.train={data}", "training.save_every=2", "training.save_total_limit=0",
            "training.scheduler=constant", "output.name=base"]
    res = nlirg_cli("train", *set_args(sets), "--max-steps", "4", cwd=root)
    assert res.returncode == 0, res.stderr
    return next((root / "runs").glob("base-*"))


@pytest.fixture()
def run(trained, tmp_path):
    copy = tmp_path / "runs" / trained.name
    shutil.copytree(trained, copy, symlinks=True)
    return copy


def _resume(run, max_steps: int):
    return nlirg_cli("train", "--resume", str(run), "--max-steps", str(max_steps), cwd=run.parent.parent)


def test_every_checkpoint_is_marked_complete(trained):
    assert [p.name for p in checkpoint_dirs(trained)] == ["step-2", "step-4"]
    assert all((p / COMPLETE_MARKER).is_file() for p in checkpoint_dirs(trained))


def test_a_kill_between_the_renames_of_a_resave_resumes_from_the_whole_copy(run):
    """The gap of the old save: step-4 half deleted (its weights gone), the whole new copy still in .tmp-step-4.
    The resume must recover .tmp-step-4, not crash on step-4's missing files."""
    ckpts = run / "checkpoints"
    shutil.copytree(ckpts / "step-4", ckpts / ".tmp-step-4")
    shutil.rmtree(ckpts / "step-4" / "model")
    (ckpts / "step-4" / COMPLETE_MARKER).unlink()
    res = _resume(run, 6)
    assert res.returncode == 0, res.stderr
    assert "recovered step-4 from .tmp-step-4" in res.stderr
    assert "resumed from checkpoints/step-4 at step 4" in (run / "trainer.log").read_text()
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-2", "step-4", "step-6"]


def test_leftovers_of_interrupted_saves_are_cleaned_and_the_newest_complete_one_wins(run):
    """An aside copy whose replacement finished, a half-written temp folder and a step folder without its marker
    or its weights (the old save's half-deleted folder): the resume takes step-4, leaves only whole checkpoints."""
    ckpts = run / "checkpoints"
    shutil.copytree(ckpts / "step-4", ckpts / ".old-step-4")
    (ckpts / ".tmp-step-6").mkdir()
    (ckpts / ".tmp-step-6" / "optimizer.pt").write_bytes(b"half")
    shutil.copytree(ckpts / "step-4", ckpts / "step-5")
    (ckpts / "step-5" / COMPLETE_MARKER).unlink()
    shutil.rmtree(ckpts / "step-5" / "model")
    res = _resume(run, 5)
    assert res.returncode == 0, res.stderr
    assert "resumed from checkpoints/step-4 at step 4" in (run / "trainer.log").read_text()
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-2", "step-4", "step-5"]
    assert (ckpts / "step-5" / COMPLETE_MARKER).is_file()  # written afresh by the resumed run


def test_a_torn_event_log_tail_is_cut_before_the_resume_appends(run):
    """A trainer killed mid-write (or by a full disk) left half a line; the resumed run's events must start on a
    line of their own, every line valid JSON, seq continuing without a gap."""
    events = run / "events.jsonl"
    last_seq = read_events(events)[-1]["seq"]
    with events.open("ab") as fh:
        fh.write(b'{"v": 1, "type": "step", "seq": ' + str(last_seq + 1).encode() + b', "ts": 17')
    res = _resume(run, 5)
    assert res.returncode == 0, res.stderr
    lines = events.read_bytes().splitlines()
    seqs = [json.loads(line)["seq"] for line in lines]  # raises on an invalid line anywhere
    assert seqs == list(range(len(seqs)))
    assert seqs[-1] > last_seq


def test_attach_stream_prints_around_a_bad_line(run):
    """Lines no event: a torn number and garbage mid-file; `attach --stream` prints the rest and exits 0."""
    events = run / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    events.write_bytes(b"".join([*lines[:3], b"12\n", b"\x00garbage{\n", *lines[3:]]))
    res = nlirg_cli("attach", str(run), "--stream", cwd=run.parent.parent)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "step 4/4" in res.stdout


def test_the_run_directory_is_private(trained):
    """A run holds training text: 0700 folders, 0600 files, for the launcher's files and the trainer's."""
    assert stat.S_IMODE(trained.stat().st_mode) == 0o700
    for path in [trained, *trained.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        assert mode & 0o077 == 0, f"{path.relative_to(trained)} is {oct(mode)}"


def test_a_shared_run_directory_lets_its_group_read(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl", n=8)
    sets = [*TINY, f"data.train={data}", "output.shared=true", "output.name=team", "training.save_every=0"]
    res = nlirg_cli("train", *set_args(sets), "--max-steps", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    run = next((tmp_path / "runs").glob("team-*"))
    assert stat.S_IMODE(run.stat().st_mode) == 0o750
    for name in ("config.yaml", "trainer.json", "events.jsonl", "trainer.log", "flagged.jsonl", "summary.json"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o640, name


def test_the_complete_marker_is_written_after_every_file_is_on_disk(tmp_path, monkeypatch):
    """A machine stop (not only a kill) must not leave a folder marked complete with empty weights."""
    from trainer_core.train.model import checkpoint

    (tmp_path / "model").mkdir()
    for name in ("model/adapter_model.safetensors", "optimizer.pt", "state.json"):
        (tmp_path / name).write_bytes(b"x")
    flushed: list[str] = []
    real_fsync = checkpoint.os.fsync
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (flushed.append(Path(f"/proc/self/fd/{fd}").resolve().name),
                                                            real_fsync(fd)))
    checkpoint.mark_complete(tmp_path)
    assert flushed == ["adapter_model.safetensors", "optimizer.pt", "state.json", COMPLETE_MARKER]
