"""The pieces under the panes: bounded history, the run store, the weight curve, themes, review export.
(The import boundary is tests/test_boundary.py.)"""

from __future__ import annotations

import json

import pytest

from nlirg_tui.review import export_review
from nlirg_tui.series import BoundedSeries, resample
from nlirg_tui.state import RunState
from nlirg_tui.theme_files import bundled_themes, load_theme, themes_dir
from nlirg_tui.weight_curve import curve
from nlirg_tui.widgets.memory import throughput_caption
from nlirg_tui.widgets.zones import heatmap, zone_table
from tests.tui.fixture_run import fixture_events
from trainer_core.live import protocol


def test_bounded_series_keeps_the_whole_history_in_bounded_memory():
    series = BoundedSeries(capacity=64)
    for step in range(1, 1_000_001):
        series.append(step, float(step))
    xs, ys = series.points()
    assert len(xs) <= 65 and series.count == 1_000_000
    assert xs[0] < 20_000 and xs[-1] == 1_000_000  # spans the run from the start to the newest step
    assert all(a < b for a, b in zip(xs, xs[1:], strict=False))
    # Each stored point is the mean of its bucket, so a straight line stays straight.
    assert all(abs(y - x) < series.stride for x, y in zip(xs, ys, strict=True))


def test_bounded_series_skips_missing_values():
    series = BoundedSeries(capacity=4)
    for y in (1.0, None, float("nan"), 3.0):
        series.append(0, y)
    assert series.count == 2 and series.last == 3.0


def test_resample_never_returns_more_points_than_asked():
    xs, ys = resample(list(range(1000)), [1.0] * 1000, 37)
    assert len(xs) == len(ys) == 37 and xs[-1] == 999


def test_the_fixture_run_speaks_the_protocol():
    """The snapshots and store tests read these events: they must be what a trainer could have written."""
    for event in fixture_events():
        assert protocol.event_problems(event) == [], event


def test_store_ingests_a_run_once_even_when_a_replay_overlaps():
    events = fixture_events()
    state = RunState()
    state.ingest(events[:100])
    state.ingest(events[50:])  # a reconnect replays from an older seq: nothing counted twice
    assert state.events_seen == len(events)
    assert state.step == 60 and state.status == "completed" and state.ended
    assert state.loss.count == 60
    worst = state.flagged_worst_first()
    keys = [(s["zeroed_tokens"], s["mean_loss"]) for s in worst]
    assert keys == sorted(keys, reverse=True) and worst[-1]["line"] == 7  # most zeroed first, then mean loss


def test_data_preparation_progress_shows_until_training_starts():
    from nlirg_tui.run_header import preparing_text

    state = RunState()
    for seq, done in enumerate((0, 40_000, 100_000)):
        state.ingest([{"seq": seq, "type": "status", "status": "starting", "phase": "tokenizing", "done": done,
                       "total": 100_000, "samples_per_s": 3400.0}])
    assert preparing_text(state.preparing) == "tokenizing 100,000/100,000 (100%) 3,400/s"
    assert list(state.log) == ["tokenizing data: 0/100,000", "tokenizing data: 100,000/100,000"]  # not every event
    state.ingest([{"seq": 3, "type": "status", "status": "running", "step": 0, "total_steps": 10}])
    assert state.preparing is None and state.status == "running"


def test_memory_pane_caption_shows_tokens_per_second_and_mfu():
    state = RunState()
    state.ingest([{"type": "step", "step": 1, "tokens_per_s": 12345.0, "mfu": 0.4123, "model_tflops": 312.04}])
    assert throughput_caption(state) == "tokens/s 12,345 · MFU 41.2% · 312.0 TFLOP/s"
    state.ingest([{"type": "step", "step": 2, "tokens_per_s": 900.0, "mfu": None, "model_tflops": 0.0123}])
    assert throughput_caption(state) == "tokens/s 900 · MFU - · 12.3 GFLOP/s"  # a CPU without a configured peak


def test_zone_panes_show_counts_shares_and_time():
    state = RunState()
    state.ingest(fixture_events())
    from rich.console import Console

    console = Console(width=60, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(zone_table(state))
    table = console.export_text()
    assert "zeroed" in table and "hard-cut" in table and "70.0%" in table
    text = heatmap(state, 40).plain
    assert text.count("\n") == 4 and "step 1 → 60" in text


def test_a_set_command_moves_the_zone_bounds():
    state = RunState()
    state.set_config({"nlirg": {"easy_max": 1.45, "hard_min": 6.6, "loss_deadline": 15.0}})
    state.ingest([{"type": "command", "seq": 0, "name": "set", "args": {"nlirg.loss_deadline": 12.0},
                   "applied_at_step": 3}])
    assert state.bounds.loss_deadline == 12.0


def test_weight_curve_matches_the_trainer():
    torch = pytest.importorskip("torch")
    from trainer_core.config import NlirgParams
    from trainer_core.train.loss.weights import nlirg_weights

    for params in (NlirgParams(), NlirgParams(k=2.5, loss_deadline=9.0, hard_min=7.0), NlirgParams(weighting="dft")):
        xs, ys = curve(params, points=81)
        expected = nlirg_weights(torch.tensor(xs), params).tolist()
        assert ys == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_bundled_themes_load_and_a_broken_one_names_itself(tmp_path):
    names = {t.name for t in bundled_themes()}
    assert {"nlirg-dark", "nlirg-light"} <= names
    assert themes_dir().name == "themes"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "primary": "#000", "primry": "#fff"}))
    with pytest.raises(ValueError, match="bad.json: unknown key"):
        load_theme(bad)


def test_review_export_has_source_line_and_zeroed_tokens(tmp_path):
    sample = next(e for e in fixture_events() if e["type"] == "flagged")["samples"][0]
    path = export_review(tmp_path, [sample])
    record = json.loads(path.read_text())
    assert record["source"] == "data/train.jsonl" and record["line"] == 12
    assert [z["token"] for z in record["zeroed"]] == ["2", " ZZ", "qx"]



def test_a_zeroed_special_token_warning_reaches_the_header():
    from nlirg_tui.run_header import special_zeroed_summary

    state = RunState()
    message = (f"{protocol.SPECIAL_ZEROED_PREFIX}40 of 50 zeroed tokens (80%) are special tokens, most often "
               "'<|im_end|>' (id 2): ... set nlirg.protect_special_tokens: true")
    state.ingest([{"type": "log", "level": "warning", "message": "something else"},
                  {"type": "log", "level": "warning", "message": message}])
    assert state.special_zeroed == message
    assert special_zeroed_summary(message) == "'<|im_end|>' zeroed: nlirg.protect_special_tokens"
