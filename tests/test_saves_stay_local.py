"""What a save does not do: reach for the Hub (peft's embedding check of a LoRA base) or import DeepSpeed in a
run that does not use it (accelerate's unwrapping at save_pretrained). Real models on builtin:tiny."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.helpers import TINY, make_config

# A fresh interpreter: whether DeepSpeed is imported depends on what this test process imported before.
FULL_RUN_SAVES = """
import sys
from pathlib import Path
from tests.helpers import TINY, train_in_process, write_alpaca
root = Path(sys.argv[1])
train_in_process(root / "run", [*TINY, f"data.train={write_alpaca(root / 'd.jsonl')}", "training.max_steps=1",
                                "training.eval_at_start=false"])  # the end's checkpoint, then final/
print("deepspeed" in sys.modules)
"""


@pytest.mark.slow
def test_a_full_fine_tune_saves_checkpoints_and_final_without_importing_deepspeed(tmp_path):
    res = subprocess.run([sys.executable, "-c", FULL_RUN_SAVES, str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert res.stdout.strip().splitlines()[-1] == "False"


def test_a_lora_checkpoint_of_a_hub_base_asks_the_hub_nothing(tmp_path, monkeypatch):
    from peft.utils import save_and_load

    from trainer_core.train.model.checkpoint import save_checkpoint
    from trainer_core.train.model.load import load_model, resolve

    cfg = make_config([*TINY, "lora.enabled=true", "lora.r=2"])
    model = load_model(resolve(cfg.model), cfg.model, cfg.lora, torch.float32, torch.device("cpu"))
    model.peft_config["default"].base_model_name_or_path = "someone/some-model"  # as for a hub-id base
    asked: list[str] = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(save_and_load, "check_file_exists_on_hf_hub", lambda repo, name, **_: asked.append(repo))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    ckpt = save_checkpoint(tmp_path, 1, model, optimizer, scheduler, {"step": 1}, keep=0)
    assert asked == []
    saved = json.loads((ckpt / "model" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "someone/some-model"
    assert (ckpt / "model" / "adapter_model.safetensors").is_file()
