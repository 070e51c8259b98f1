"""`nlirg ab` continues a stopped run from the checkpoint a kill left half-renamed, as `nlirg train --resume`
does: the whole copy under `.tmp-step-N` is put back, never an older step taken nor the run folder deleted."""

from __future__ import annotations

from pathlib import Path

from trainer_core.evaluate.runner import continue_point
from trainer_core.live.rundir import COMPLETE_MARKER


def _checkpoint(folder: Path, weights: str) -> None:
    """A whole checkpoint folder: its files, then the marker written last."""
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights").write_text(weights, encoding="utf-8")
    (folder / COMPLETE_MARKER).write_text("", encoding="utf-8")


def _killed_between_the_renames(run_dir: Path) -> Path:
    """step-4 saved again: the old copy renamed aside to .old-step-4, the new one still .tmp-step-4."""
    ckpts = run_dir / "checkpoints"
    _checkpoint(ckpts / ".old-step-4", "old save of step 4")
    _checkpoint(ckpts / ".tmp-step-4", "new save of step 4")
    return ckpts


def test_a_half_renamed_checkpoint_is_put_back_and_continued_from(tmp_path):
    ckpts = _killed_between_the_renames(tmp_path / "plain-r0")
    _checkpoint(ckpts / "step-2", "step 2")
    assert continue_point(tmp_path / "plain-r0") == ckpts / "step-4"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-2", "step-4"]  # no leftovers
    assert (ckpts / "step-4" / "model" / "weights").read_text(encoding="utf-8") == "new save of step 4"


def test_the_only_whole_copy_of_a_run_is_not_deleted(tmp_path):
    ckpts = _killed_between_the_renames(tmp_path / "plain-r0")
    assert continue_point(tmp_path / "plain-r0") == ckpts / "step-4"
    assert (ckpts / "step-4" / COMPLETE_MARKER).is_file()


def test_a_run_without_any_checkpoint_starts_again(tmp_path):
    run_dir = tmp_path / "plain-r0"
    (run_dir / "checkpoints" / ".tmp-step-2").mkdir(parents=True)  # a first save killed before its marker
    assert continue_point(run_dir) is None and not run_dir.exists()
    assert continue_point(tmp_path / "never-started") is None
