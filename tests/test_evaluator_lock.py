"""One evaluator per eval.json (issue 24): an `nlirg ab` killed mid-evaluation leaves its evaluator running; a
second evaluator on the same output is refused in one line, and the experiment's rerun waits for the first."""

from __future__ import annotations

import subprocess
import sys
import time

HOLD = """
import sys, time
from pathlib import Path
from trainer_core.evaluate.eval_lock import hold_eval
lock = hold_eval(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(out, seconds):
    """A process holding `out`'s evaluator lock, as a live evaluator does (until it exits)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_evaluator_on_one_output_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "eval.json"
    first = _holder(out, 60)
    try:
        res = subprocess.run([sys.executable, "-m", "trainer_core.evaluate", "eval", "builtin:tiny", "--out", str(out),
                              "--domain", "builtin:demo-heldout"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip() == (f"error: another evaluator (pid {first.pid}) is writing {out} right now; wait "
                                      f"for it, or stop it (kill {first.pid})")
        assert not out.exists()
    finally:
        first.kill()
        first.wait()


def test_the_experiments_rerun_waits_for_the_evaluator_it_finds(tmp_path):
    from trainer_core.evaluate.runner import Children, ExperimentRunner

    out = tmp_path / "eval.json"
    said: list[str] = []
    runner = object.__new__(ExperimentRunner)  # only what _adopt_evaluator uses: how it speaks, what it stops
    runner.say, runner.children = said.append, Children()
    first = _holder(out, 2)
    started = time.monotonic()
    runner._adopt_evaluator(out, "plain-0")
    assert time.monotonic() - started >= 1.0  # it waited for the first to finish (its lock goes as it exits)
    assert first.wait(timeout=10) == 0
    assert said == [f"plain-0: an evaluator from an earlier start (pid {first.pid}) is still running; waiting for it"]
    runner._adopt_evaluator(out, "plain-0")  # nobody holds it now: no wait, no word
    assert len(said) == 1
