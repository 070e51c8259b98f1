"""`nlirg ab` says a training run's progress once per step reached, however slow the steps are: a real child
process stands in for the trainer and a real events.jsonl carries its steps."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from trainer_core.evaluate.runner import Children, wait_for_trainer


def _step(path: Path, step: int, loss: float) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"type": "step", "step": step, "total_steps": 8, "loss": loss}) + "\n")


def test_a_slow_step_is_said_once_and_the_next_step_when_it_comes(tmp_path):
    events = tmp_path / "events.jsonl"
    _step(events, 3, 2.5)
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def steps_then_stop() -> None:
        time.sleep(2.0)  # several polls see step 3 alone
        _step(events, 4, 2.25)
        time.sleep(2.0)  # several polls see step 4
        trainer.terminate()

    helper = threading.Thread(target=steps_then_stop)
    helper.start()
    said: list[str] = []
    wait_for_trainer(trainer.pid, tmp_path, "plain-r0", said.append, Children(), every_s=0.0)
    helper.join()
    assert said == ["plain-r0: step 3/8 loss 2.5000", "plain-r0: step 4/8 loss 2.2500"]
