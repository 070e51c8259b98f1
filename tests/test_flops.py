"""MFU: the model FLOPs counted from the model's shapes, the device peak table, and MFU in step events."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import TINY, train_in_process, write_alpaca
from trainer_core.config import LoraConfig
from trainer_core.live.events import read_events
from trainer_core.train.data.batch import Sample, collate
from trainer_core.train.loss.step import lm_head
from trainer_core.train.model.load import apply_lora
from trainer_core.train.telemetry.flops import MfuMeter, ModelFlops, device_peak_tflops, peak_for_name

# builtin:tiny: hidden 64, MLP 128, 4 heads of 16, 2 key-value heads, 2 layers, 1,024-token tied vocabulary.
TINY_LAYER_WEIGHTS = 64 * 64 + 64 * 32 + 64 * 32 + 64 * 64 + 3 * 64 * 128  # q, k, v, o, gate/up/down
TINY_HEAD_WEIGHTS = 1024 * 64


def test_full_fine_tuning_counts_6n_per_token_and_the_head_on_targets_only(tiny_model_fn) -> None:
    model = tiny_model_fn().train()
    flops = ModelFlops.of(model, lm_head(model))
    assert flops.per_input_token == 6 * 2 * TINY_LAYER_WEIGHTS
    assert flops.per_target_token == 6 * TINY_HEAD_WEIGHTS
    assert flops.per_attention_pair == 12 * 2 * 4 * 16


def test_lora_counts_4n_for_the_frozen_base_and_6n_for_the_adapter(tiny_model_fn) -> None:
    model = apply_lora(tiny_model_fn(), LoraConfig(r=4, alpha=8, dropout=0.0))
    adapter = sum(p.numel() for p in model.parameters() if p.requires_grad)
    flops = ModelFlops.of(model, lm_head(model))
    assert flops.per_input_token == 4 * 2 * TINY_LAYER_WEIGHTS + 6 * adapter
    assert flops.per_target_token == 4 * TINY_HEAD_WEIGHTS  # the tied head is frozen under LoRA


def test_attention_pairs_follow_the_causal_mask_of_each_document() -> None:
    padded = collate([Sample([5] * 3, [1] * 3, 0), Sample([5] * 5, [1] * 5, 1)], pad_id=0)
    assert padded.attention_pairs == 3 * 4 // 2 + 5 * 6 // 2
    packed = collate([Sample([5] * 4, [1] * 4, 0, segments=[0, 0, 1, 1]), Sample([5] * 2, [1] * 2, 1, [0, 0])], 0, 8)
    assert packed.attention_pairs == 3 + 3 + 3  # two documents of two tokens, then one; padding attends nothing
    assert packed.to(torch.device("cpu")).attention_pairs == packed.attention_pairs


@pytest.mark.parametrize("name,dtype,peak", [
    ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989.0), ("NVIDIA H100 PCIe", torch.bfloat16, 756.0),
    ("NVIDIA H200", torch.bfloat16, 989.0), ("NVIDIA A100-SXM4-80GB", torch.float16, 312.0),
    ("NVIDIA A100-SXM4-80GB", torch.float32, 19.5), ("NVIDIA L40S", torch.bfloat16, 362.0),
    ("NVIDIA L4", torch.bfloat16, 121.0), ("NVIDIA GeForce RTX 4090", torch.bfloat16, 165.0),
    ("NVIDIA A10G", torch.bfloat16, 70.0), ("Some Future Accelerator", torch.bfloat16, None),
])
def test_peak_table_finds_the_most_specific_name(name, dtype, peak) -> None:
    assert peak_for_name(name, dtype) == peak


def test_cpu_has_no_peak_unless_configured() -> None:
    assert device_peak_tflops(torch.device("cpu"), torch.float32) is None
    assert device_peak_tflops(torch.device("cpu"), torch.float32, configured=2.5) == 2.5


def test_meter_divides_counted_flops_by_time_and_the_peak_of_every_rank() -> None:
    meter = MfuMeter(ModelFlops(per_input_token=10, per_target_token=100, per_attention_pair=1), 1e-9, world_size=2)
    tflops, mfu = meter.interval(input_tokens=4, target_tokens=2, seconds=0.5, pairs=10)
    assert tflops == pytest.approx((40 + 200 + 10) / 0.5 / 1e12)
    assert mfu == pytest.approx((40 + 200 + 10) / 0.5 / (2 * 1e3))
    assert vars(meter) == vars(MfuMeter(meter.flops, 1e-9, world_size=2))  # no state moves with an interval


def test_step_events_carry_mfu(tmp_path) -> None:
    data = write_alpaca(tmp_path / "train.jsonl", n=8)
    overrides = [*TINY, f"data.train={data}", "training.max_steps=2", "training.eval_at_start=false"]
    trainer, _ = train_in_process(tmp_path / "cpu", overrides)
    steps = [e for e in read_events(tmp_path / "cpu" / "events.jsonl") if e["type"] == "step"]
    assert all(e["mfu"] is None and e["model_tflops"] > 0 for e in steps), "CPU without a configured peak: null"
    flops = trainer.mfu.flops
    for e in steps:  # the linears' share alone is a lower bound of what the event reports
        linears = flops.per_input_token * e["input_tokens"] + flops.per_target_token * e["target_tokens"]
        assert e["model_tflops"] * 1e12 * e["step_time_s"] >= linears * 0.999
    train_in_process(tmp_path / "peak", [*overrides, "telemetry.peak_tflops=0.001"])
    steps = [e for e in read_events(tmp_path / "peak" / "events.jsonl") if e["type"] == "step"]
    assert all(e["mfu"] == pytest.approx(e["model_tflops"] / 0.001) for e in steps)
