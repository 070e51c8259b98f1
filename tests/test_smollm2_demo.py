"""The embedded default: LoRA on builtin:smollm2-135m over the bundled demo data learns, and zones move."""

import json

import pytest

from tests.helpers import nlirg_cli
from trainer_core.live.events import read_events

pytestmark = [pytest.mark.smollm2, pytest.mark.slow]


def test_demo_headless_trains_smollm2_and_the_loss_falls(tmp_path):
    res = nlirg_cli("demo", "--headless", "--max-steps", "6", "--set", "training.batch_size=2",
                    "--set", "data.max_length=128", "--set", "training.lr=2e-3", "--set", "training.save_every=0",
                    "--set", "training.eval_every=0", "--set", "data.eval_fraction=0.03",
                    "--set", "training.warmup_steps=0", "--set", "training.scheduler=constant",
                    cwd=tmp_path, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    run = next((tmp_path / "runs").glob("demo-*"))
    events = read_events(run / "events.jsonl")
    evals = [e for e in events if e["type"] == "eval"]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 6
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"] - 0.05  # it learns the domain
    steps = [e for e in events if e["type"] == "step"]
    zone_sets = {tuple(e["zone_counts"]) for e in steps}
    assert len(zone_sets) > 1  # the zone counts move from step to step
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and sum(summary["zone_counts"]) == summary["train_tokens"]
    assert (run / "final" / "adapter_model.safetensors").is_file()
