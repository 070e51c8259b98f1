"""QLoRA (model.quantization): a real 4-bit base through bitsandbytes on the CPU, under the real trainer."""

import math
import sys

import pytest
import torch

from tests.helpers import TINY, make_config, nlirg_cli, step_losses, train_in_process, write_alpaca, write_jsonl
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
    # The evaluator of `nlirg eval` and of `nlirg ab`'s runs takes the QLoRA run: its adapter on the base.
    from trainer_core.evaluate.evaluator import evaluate
    from trainer_core.evaluate.options import EvalOptions
    from trainer_core.evaluate.targets import resolve_target

    target = resolve_target(str(final))
    assert target.kind == "adapter" and target.model == "builtin:tiny"
    result = evaluate(target, EvalOptions(domain=[str(data)], general=[], max_new_tokens=2, limit=2), lambda _: None)
    assert math.isfinite(result["metrics"]["eval_loss"])


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


def test_nlirg_ab_refuses_a_quantized_arm_without_lora_before_writing(tmp_path):
    res = nlirg_cli("ab", "--set", "model.path=builtin:tiny", "--set", "lora.enabled=false",
                    "--arms", "plain,plain@nf4", "--repeats", "1", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "--arms: arm plain@nf4: model.quantization: nf4 trains a LoRA adapter" in res.stderr
    assert not (tmp_path / "runs").exists()


def test_nlirg_ab_arms_may_differ_only_in_quantization(tmp_path):
    """`nlirg ab --arms nlirg,nlirg@nf4` plans runs whose configs differ in model.quantization alone (the trainer and
    the evaluator then take them as any QLoRA run: test_nf4_lora_trains_... trains and evaluates one)."""
    from trainer_core.evaluate.commands import prepare_experiment
    from trainer_core.evaluate.experiment import load_spec, run_config

    domain = write_jsonl(tmp_path / "domain.jsonl", [{"instruction": "What is 3 plus 3?", "output": "6",
                                                       "reference": "6"}])
    cfg = make_config([*QLORA, "model.quantization=none", f"data.train={write_alpaca(tmp_path / 'd.jsonl', n=8)}",
                       f"output.root={tmp_path / 'runs'}"])
    exp_dir, existed = prepare_experiment(cfg, "nlirg,nlirg@nf4", 1, [str(domain)], [], None, "nlirg ab", "q", False)
    spec = load_spec(exp_dir)
    assert not existed and spec["arms"] == ["nlirg", "nlirg@nf4"] and spec["reference_arm"] == "nlirg"
    runs = {s["arm"]: run_config(spec["config"], s["arm"], s["seed"], s["name"], exp_dir).to_dict()
            for s in spec["runs"]}
    assert [s["name"] for s in spec["runs"]] == ["nlirg-r0", "nlirg@nf4-r0"]
    assert runs["nlirg"]["model"].pop("quantization") == "none"
    assert runs["nlirg@nf4"]["model"].pop("quantization") == "nf4"
    for raw in runs.values():
        raw["output"].pop("name")
    assert runs["nlirg"] == runs["nlirg@nf4"]  # the arms differ in nothing else
