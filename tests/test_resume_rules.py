"""Which settings a resumed run takes (README "Resuming"): the config's LR and schedule rebuilt at the resumed step,
`lr_scale` back to 1 unless kept, and one line that says what changed. Real trainers on builtin:tiny."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import TINY, cli_run, nlirg_cli, train_in_process, write_alpaca
from trainer_core.config import TrainingConfig
from trainer_core.live.control import Command
from trainer_core.live.events import read_events
from trainer_core.train.loop_state import EarlierSessions
from trainer_core.train.schedule import lr_factor

pytestmark = pytest.mark.slow

BASE = [*TINY, "training.lr=0.0002", "training.scheduler=cosine", "training.save_every=2",
        "training.save_total_limit=0", "output.name=base"]


def _step_lrs(run: Path, after: int = 0) -> dict[int, float]:
    return {e["step"]: e["lr"] for e in read_events(run / "events.jsonl") if e["type"] == "step" and e["step"] > after}


def _cosine(lr: float, step: int, total: int) -> float:
    """The LR a step event reports: the schedule's value for the step after it (what get_last_lr() says)."""
    return lr * lr_factor(step, total, TrainingConfig(scheduler="cosine"))


@pytest.fixture(scope="module")
def cosine_run(tmp_path_factory) -> Path:
    """4 cosine steps at lr 2e-4 through the CLI, checkpoints at steps 2 and 4: its schedule ends at LR 0."""
    root = tmp_path_factory.mktemp("resume")
    return cli_run(root, [*BASE, f"data.train={write_alpaca(root / 'd.jsonl')}"], max_steps=4)


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / run.name
    shutil.copytree(run, target)
    return target


def test_resume_with_a_new_lr_trains_at_the_new_lr_and_says_so(cosine_run, tmp_path):
    run = _copy(cosine_run, tmp_path)
    shutil.rmtree(run / "checkpoints" / "step-4")  # resume mid-run, from step 2 of 4
    res = nlirg_cli("train", "--resume", str(run), "--set", "training.lr=1e-3", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lrs = _step_lrs(run, after=2)
    assert lrs == pytest.approx({s: _cosine(1e-3, s, 4) for s in (3, 4)}, rel=1e-9)
    line = "resumed from checkpoints/step-2 at step 2: lr 0.0002 -> 0.001, schedule cosine over 4 steps"
    assert line in (run / "trainer.log").read_text()
    assert line in res.stderr  # a change is a warning: it reaches the terminal
    logs = [e["message"] for e in read_events(run / "events.jsonl") if e["type"] == "log"]
    assert any(m.startswith(line) for m in logs)  # and the workbench's Log pane
    assert "lr: 0.001" in (run / "config.yaml").read_text()


def test_a_finished_cosine_run_resumed_for_more_steps_gets_a_rebuilt_schedule(cosine_run, tmp_path):
    run = _copy(cosine_run, tmp_path)
    assert _step_lrs(run)[4] == 0.0  # the first run's schedule ended at LR 0
    state_file = run / "checkpoints" / "step-4" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["wall_s"] = 10_000.0  # the earlier sessions' time, as the checkpoint notes it
    state_file.write_text(json.dumps(state))
    before = json.loads((run / "summary.json").read_text())
    res = nlirg_cli("train", "--resume", str(run), "--max-steps", "8", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    after = json.loads((run / "summary.json").read_text())  # a resumed run's summary accumulates
    assert 10_000 < after["wall_s"] < 10_000 + 600
    assert after["train_tokens"] > before["train_tokens"] and after["steps"] == 8
    lrs = _step_lrs(run, after=4)
    assert lrs == pytest.approx({s: _cosine(2e-4, s, 8) for s in range(5, 9)}, rel=1e-9)
    assert lrs[5] > 0
    assert ("schedule cosine over 8 steps (was 4 steps, whose LR had reached 0 at step 4; rebuilt at step 4)"
            in res.stderr)


def test_the_first_step_after_a_resume_already_trains_on_the_rebuilt_schedule(cosine_run, tmp_path):
    """Step events show the LR after each step; the LR step 5 itself trains at is the optimizer's on resume."""
    seen: list[float] = []
    data = next(p for p in cosine_run.parent.parent.glob("d.jsonl"))
    args = [*BASE, f"data.train={data}", "training.max_steps=8", "training.save_every=0"]
    train_in_process(tmp_path / "r", args, resume=cosine_run / "checkpoints" / "step-4",
                     before_fit=lambda t: seen.append(t.optimizer.param_groups[0]["lr"]))
    assert seen == [pytest.approx(_cosine(2e-4, 4, 8), rel=1e-9)]  # not the finished schedule's 0


def test_a_live_lr_scale_resets_to_one_on_resume_unless_kept(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    args = [*TINY, f"data.train={data}", "training.max_steps=4", "training.save_every=2", "training.save_total_limit=0",
            "training.scheduler=constant", "training.lr=0.001"]

    def halve(trainer):
        trainer.commands.put(Command("set", args={"lr_scale": 0.5}, id="half"))

    train_in_process(tmp_path / "scaled", args, before_fit=halve)
    assert set(_step_lrs(tmp_path / "scaled").values()) == {0.0005}
    ckpt = tmp_path / "scaled" / "checkpoints" / "step-2"
    reset, _ = train_in_process(tmp_path / "reset", args, resume=ckpt)
    assert set(_step_lrs(tmp_path / "reset").values()) == {0.001}
    assert reset.lr_scale == 1.0
    sets = [e for e in read_events(tmp_path / "reset" / "events.jsonl") if e["type"] == "command"]
    assert [(e["args"], e["source"]) for e in sets] == [({"lr_scale": 1.0}, "resume (lr_scale was 0.5)")]
    kept, _ = train_in_process(tmp_path / "kept", args, resume=ckpt, keep_lr_scale=True)
    assert set(_step_lrs(tmp_path / "kept").values()) == {0.0005}
    assert kept.lr_scale == 0.5


def test_a_session_that_logs_no_step_keeps_the_earlier_final_loss_and_evaluation():
    earlier = EarlierSessions.of({"wall_s": 12.5, "final_loss": 2.9486, "final_weighted_loss": 2.5,
                                  "eval": {"step": 15, "eval_loss": 3.1}})
    carried = earlier.carried(1.25, None, None)
    assert carried == {"wall_s": 13.75, "final_loss": 2.9486, "final_weighted_loss": 2.5,
                       "eval": {"step": 15, "eval_loss": 3.1}}
    assert EarlierSessions.of({}).carried(1.0, None, None)["final_loss"] is None  # an older checkpoint
