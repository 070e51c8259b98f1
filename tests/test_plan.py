"""`nlirg plan`: peak GPU memory from config.json alone, and the changes that make a run fit."""

import json

import pytest

from tests.helpers import make_config, nlirg_cli
from trainer_core.plan import gpu_memory_bytes, parse_memory, plan_config

QWEN2_7B = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
            "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
            "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False}


@pytest.fixture()
def qwen7b(tmp_path):
    folder = tmp_path / "qwen7b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(QWEN2_7B))  # config.json only: no weights, no tokenizer
    return folder


def test_plan_json_on_a_config_json_only_folder_suggests_in_the_articles_order(tmp_path, qwen7b):
    res = nlirg_cli("plan", "--set", f"model.path={qwen7b}", "--set", "data.max_length=4096", "--gpu-mem", "24GB",
                    "--json", cwd=tmp_path)
    assert res.returncode == 1, res.stderr  # does not fit
    out = json.loads(res.stdout)
    assert set(out) >= {"fits", "peak_bytes", "breakdown", "suggestions"} and out["fits"] is False
    parts = out["breakdown"]
    assert set(parts) == {"weights", "gradients", "optimizer", "activations", "head", "overhead"}
    assert all(isinstance(v, int) and v >= 0 for v in parts.values())
    assert 14e9 < parts["weights"] < 17e9  # 7.6B parameters in bf16, plus a float32 adapter
    assert out["peak_bytes"] > 24e9
    first, *rest = out["suggestions"]
    assert first["change"] == {"model.gradient_checkpointing": True}
    assert rest[0]["change"]["model.quantization"] == "nf4"  # QLoRA is the next rung
    peaks = [s["peak_bytes"] for s in out["suggestions"]]
    assert peaks == sorted(peaks, reverse=True) and peaks[0] < out["peak_bytes"]
    assert peaks[-1] <= 24e9 < peaks[-2]  # the ladder stops at the first change that fits
    assert not (tmp_path / "runs").exists()


def test_plan_text_for_a_builtin_fits_and_unknown_gpu_is_one_line(tmp_path):
    res = nlirg_cli("plan", "--gpu", "RTX 4090", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "LoRA r=16" in res.stdout and "fits in 24.0 GB" in res.stdout
    bad = nlirg_cli("plan", "--gpu", "Voodoo5", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown GPU 'Voodoo5'" in bad.stderr


def test_sharding_quantization_and_checkpointing_move_the_right_terms(qwen7b):
    base = [f"model.path={qwen7b}", "data.max_length=2048", "training.batch_size=1"]
    lora = plan_config(make_config(base)).breakdown
    qlora = plan_config(make_config([*base, "model.quantization=nf4"])).breakdown
    ckpt = plan_config(make_config([*base, "model.gradient_checkpointing=true"])).breakdown
    assert qlora.weights < 0.4 * lora.weights and qlora.activations == lora.activations
    assert ckpt.activations < 0.25 * lora.activations and ckpt.weights == lora.weights
    full = [*base, "lora.enabled=false"]
    one = plan_config(make_config(full)).breakdown
    zero3 = plan_config(make_config([*full, "distributed.backend=deepspeed", "distributed.zero_stage=3"]), gpus=4)
    assert zero3.breakdown.optimizer * 4 == pytest.approx(one.optimizer * 1.5, rel=1e-3)  # + fp32 master, / 4
    assert zero3.breakdown.weights * 8 == pytest.approx(one.weights, rel=1e-3)  # bf16 weights, sharded over 4
    assert gpu_memory_bytes("a100-40gb") == parse_memory("40GB") < gpu_memory_bytes("A100")


@pytest.mark.parametrize("sets", [["lora.dropout=0.1"], ["lora.dropout=0", "lora.target_modules=[q_proj,down_proj]"],
                                  ["lora.enabled=false"]], ids=["lora-dropout", "lora-two-modules", "full"])
def test_a_layers_saved_tensors_are_what_the_planner_counts(sets):
    """The activation formula against what autograd really saves for one decoder layer of a real model (every
    storage a saved tensor lives in, counted once; float32 on the CPU, where dropout keeps a float mask)."""
    import torch

    from trainer_core.plan.api import setup_of
    from trainer_core.plan.estimate import layer_saved_bytes
    from trainer_core.plan.shape import read_model_config, shape_from_config
    from trainer_core.train.model.load import load_model, resolve

    cfg = make_config(["model.path=builtin:tiny", "model.dtype=fp32", "data.max_length=24", "training.batch_size=2",
                       "lora.enabled=true", "lora.r=4", *sets])
    model = load_model(resolve(cfg.model), cfg.model, cfg.lora, torch.float32, torch.device("cpu")).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    layer = next(m for name, m in model.named_modules() if name.endswith("layers.1"))
    inside, saved = [], {}
    layer.register_forward_pre_hook(lambda *_: inside.append(1))
    layer.register_forward_hook(lambda *_: inside.clear())

    def pack(t):
        storage = t.untyped_storage()
        if inside and storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(3, 1000, (2, 24))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, position_ids=torch.arange(24).expand(2, -1), use_cache=False)  # as train/ passes them
    shape = shape_from_config(read_model_config(cfg.model.path))
    rope = 2 * shape.head_dim * 4  # RoPE's cos and sin, made once and kept by each layer: the planner counts them once
    assert sum(saved.values()) == 2 * 24 * (layer_saved_bytes(shape, setup_of(cfg, device="cpu")) + rope)
