"""The embedded default: LoRA on builtin:smollm2-135m over the bundled demo data learns, and zones move."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import nlirg_cli
from trainer_core.live.events import read_events
from trainer_core.train.model.builtin import resolve_model_path

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
    assert summary["status"] == "completed"
    assert sum(summary["zone_counts"]) + summary["special_tokens"] == summary["train_tokens"]
    assert (run / "final" / "adapter_model.safetensors").is_file()
    assert _loads_through_the_hub_id(run / "final", tmp_path / "hub") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def _loads_through_the_hub_id(final: Path, hub: Path) -> str:
    """Load final/ in a fresh process by the base id it names, the way a machine with the Hub would, with the Hub
    cache pointed at the builtin's local copy (README: final/ is portable)."""
    base_id = json.loads((final / "adapter_config.json").read_text())["base_model_name_or_path"]
    repo = hub / f"models--{base_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for f in Path(resolve_model_path("builtin:smollm2-135m")).iterdir():
        (snapshot / f.name).symlink_to(f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    code = ("import sys; from peft import AutoPeftModelForCausalLM; "
            "m = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1]); print(type(m.get_base_model()).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(final)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0 and out.stdout.strip().endswith("ForCausalLM"), out.stderr[-2000:]
    return base_id
