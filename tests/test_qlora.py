"""QLoRA (model.quantization): a real 4-bit base through bitsandbytes on the CPU, under the real trainer."""

import sys

import pytest
import torch

from tests.helpers import TINY, make_config, nlirg_cli, step_losses, train_in_process, write_alpaca
from trainer_core.config import ConfigError
from trainer_core.live.events import read_events

QLORA = [*TINY, "lora.enabled=true", "lora.r=4", "lora.dropout=0.0", "model.quantization=nf4",
         "model.gradient_checkpointing=true"]


@pytest.mark.slow
def test_nf4_lora_trains_resumes_exactly_and_merges_in_compute_precision(tmp_path):
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM

    data = write_alpaca(tmp_path / "d.jsonl", n=24)
    args = [*QLORA, f"data.train={data}", "training.max_steps=6", "training.save_every=3",
            "training.save_total_limit=0", "output.merge_lora=true", "training.token_batch=40"]
    straight, status = train_in_process(tmp_path / "straight", args)
    assert status == "completed"
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in straight.model.modules())
    assert all(p.dtype == torch.float32 for p in straight.model.parameters() if p.requires_grad)
    steps = [e for e in read_events(tmp_path / "straight" / "events.jsonl") if e["type"] == "step"]
    assert steps and all(e["base_weights"] == "nf4 (4-bit)" for e in steps)
    assert sum(sum(e["zone_counts"]) for e in steps) > 0  # NLIRG telemetry unchanged
    resumed, _ = train_in_process(tmp_path / "resumed", args, resume=tmp_path / "straight" / "checkpoints" / "step-3")
    full, tail = step_losses(tmp_path / "straight"), step_losses(tmp_path / "resumed")
    assert len(tail) == 3 and tail == pytest.approx(full[3:], abs=1e-6)
    final = tmp_path / "straight" / "final"
    assert (final / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(final / "merged")
    assert getattr(merged.config, "quantization_config", None) is None
    assert all(p.dtype == torch.float32 for p in merged.parameters())
    log = (tmp_path / "straight" / "events.jsonl").read_text()
    assert "merging the adapter into the base loaded in float32 (not nf4 (4-bit))" in log


@pytest.mark.parametrize(("sets", "needle"), [
    (["model.quantization=nf4", "lora.enabled=false"], "full fine-tuning of a quantized base"),
    (["model.quantization=nf4", "distributed.backend=deepspeed", "distributed.zero_stage=3"], "ZeRO-3"),
    (["model.quantization=nf4", "distributed.backend=deepspeed", "distributed.zero_stage=2"], "ZeRO-2"),
    (["model.quantization=nf3"], "'nf3' is not one of none, nf4, fp4, int8"),
])
def test_impossible_quantization_is_refused_by_the_config(sets, needle):
    with pytest.raises(ConfigError) as err:
        make_config(["model.path=builtin:tiny", *sets])
    assert len(err.value.problems) == 1 and needle in err.value.problems[0]


def test_missing_bitsandbytes_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # how Python spells "not importable"
    with pytest.raises(ConfigError) as err:
        make_config(["model.path=builtin:tiny", "model.quantization=fp4"])
    assert err.value.problems == [
        "model.quantization: fp4 needs bitsandbytes, which is not installed: pip install 'nlirg-workbench[qlora]' "
        "(or ./run, which installs it)"]


def test_nlirg_train_refuses_quantized_full_fine_tuning_with_exit_2(tmp_path):
    res = nlirg_cli("train", "--set", "model.path=builtin:tiny", "--set", "model.quantization=int8",
                    "--set", "lora.enabled=false", "--max-steps", "1", cwd=tmp_path)
    assert res.returncode == 2
    assert "model.quantization: int8 trains a LoRA adapter" in res.stderr
    assert not (tmp_path / "runs").exists()  # refused before a run directory or any load
