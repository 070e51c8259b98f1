"""The weights question of a relaunch, shared by the Run screen (an edited config) and the Data screen (cleaned
data): what it offers to resume from."""

from __future__ import annotations

from nlirg_tui.screens.relaunch_dialog import ResumeOffer
from nlirg_tui.screens.relaunching import resume_label, resume_offer


def test_the_dialog_offers_the_newest_whole_checkpoint_or_the_one_a_stop_writes(tmp_path):
    assert resume_label(tmp_path, live=False) is None  # nothing to resume: a fresh start only
    assert resume_label(tmp_path, live=True) == "the checkpoint its stop writes"
    for step in (3, 12):
        (tmp_path / "checkpoints" / f"step-{step}").mkdir(parents=True)
        (tmp_path / "checkpoints" / f"step-{step}" / "COMPLETE").touch()
    (tmp_path / "checkpoints" / "step-15").mkdir()  # torn: no COMPLETE marker
    assert resume_label(tmp_path, live=False) == "step-12"
    assert resume_offer(tmp_path, live=False) == ResumeOffer("step-12", 12)  # the dialog's max-steps check
