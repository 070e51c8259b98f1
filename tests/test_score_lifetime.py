"""`nlirg score` killed -9 (issue 24): its scorer dies with it and never writes --out; the temp files a killed
scorer left are removed by the next run, whose outputs are as private as a run folder's."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil

from tests.helpers import write_alpaca
from tests.live_helpers import wait_for


def _score(data: Path, out: Path) -> list[str]:
    exe = Path(sys.executable).with_name("nlirg")
    return [str(exe), "score", str(data), "--model", "builtin:tiny", "--out", str(out), "--max-length", "64"]


def test_a_killed_nlirg_score_takes_its_scorer_along(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl", n=8)
    out = tmp_path / "scores.jsonl"
    cli = subprocess.Popen(_score(data, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scorer = wait_for(lambda: next(iter(psutil.Process(cli.pid).children()), None), "the scorer process")
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    wait_for(lambda: not scorer.is_running() or scorer.status() == psutil.STATUS_ZOMBIE, "the scorer to die",
             timeout=15)
    assert not out.exists()



def test_a_killed_scorers_temp_files_go_and_score_files_are_private(tmp_path, tiny_scores):
    from trainer_core.score.lifetime import clean_stale_temps

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is surely gone: a killed scorer's leftovers
    out = tmp_path / "scores.jsonl"
    stale = [tmp_path / f".scores.jsonl.tmp-{dead.pid}", tmp_path / f".scores.summary.json.tmp-{dead.pid}"]
    live = tmp_path / f".scores.jsonl.tmp-{os.getpid()}"  # a scorer writing it now
    other = tmp_path / f".other.jsonl.tmp-{dead.pid}"
    for path in (*stale, live, other):
        path.write_text("half a file")
    assert sorted(clean_stale_temps(out)) == sorted(stale)
    assert live.exists() and other.exists()

    _, scores, *_ = tiny_scores  # written by a real `nlirg score` (tests/conftest.py)
    for path in (scores, scores.with_name(f"{scores.stem}.summary.json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
