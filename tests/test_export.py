"""`nlirg export`: every file proven by a real reader. The GGUF loads back in transformers with the merged model's
logits and the same token ids; the hf folder loads with nothing of this machine in it and generates final/'s
greedy text; Llama's rotary permutation and Qwen3's norms round-trip; bad input is one line, exit 2, nothing
left. One shared tiny LoRA run (conftest `tiny_lora_run`); exports run in this process (`main`), the CLI once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers import nlirg_cli
from tests.test_full_disk import tiny_disk  # noqa: F401 - the real tmpfs fixture
from trainer_core.evaluate.targets import resolve_target
from trainer_core.export.__main__ import main as export_main
from trainer_core.export.plan import plan_export

pytestmark = pytest.mark.slow

PROMPTS = ["What is 3 plus 3?", "答案是多少？ The order 12345 ships today.",
           "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"]


def _export(run_dir: Path, out: Path, *args: str) -> Path:
    assert export_main([str(run_dir), "--out", str(out), *args]) == 0
    return out


def _merged(run_dir: Path):
    from trainer_core.export.hf import load_merged

    return load_merged(plan_export(str(run_dir), "hf", None, Path("unused-out"), run_dir.parent))


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


@pytest.fixture(scope="module")
def merged(tiny_lora_run):
    return _merged(tiny_lora_run[0])


@pytest.mark.parametrize(("dtype", "tolerance"), [("f32", 1e-4), ("f16", 1e-2), ("q8_0", None)])
def test_the_gguf_loads_back_in_transformers_with_the_merged_models_logits_and_token_ids(
        tiny_lora_run, merged, tmp_path, dtype, tolerance, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = merged
    out = _export(tiny_lora_run[0], tmp_path / "g", "--to", "gguf", "--dtype", dtype)
    (gguf,) = out.glob("*.gguf")
    assert sorted(p.name for p in out.iterdir()) == sorted([gguf.name, "README.md"])
    loaded = AutoModelForCausalLM.from_pretrained(out, gguf_file=gguf.name, dtype=torch.float32).eval()
    loaded_tok = AutoTokenizer.from_pretrained(out, gguf_file=gguf.name)
    gaps = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt).input_ids
        assert loaded_tok(prompt).input_ids == ids, prompt
        gaps.append((_logits(model, ids) - _logits(loaded, ids)).abs().max().item())
    assert loaded_tok.chat_template == tokenizer.chat_template and loaded_tok.eos_token == tokenizer.eos_token
    with capsys.disabled():
        print(f"\ngguf {dtype}: max |logit gap| {max(gaps):.2e}")
    if tolerance is not None:
        assert max(gaps) <= tolerance
    else:  # q8_0: reported, and still close to the model (a broken block layout is off by whole units)
        assert max(gaps) < 0.5


def test_the_hf_folder_loads_without_this_machine_and_generates_finals_greedy_text(tiny_lora_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer_core.evaluate.inference import load_for_inference
    from trainer_core.train.model.builtin import cache_dir

    run_dir = tiny_lora_run[0]
    out = _export(run_dir, tmp_path / "hf", "--to", "hf")
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md"} <= names
    for path in out.iterdir():
        if path.suffix in (".json", ".md", ".jinja"):
            text = path.read_text(encoding="utf-8")
            for local in (str(run_dir.parent), str(cache_dir()), str(Path.home())):
                assert local not in text, (path.name, local)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template and model.generation_config.eos_token_id == tokenizer.eos_token_id
    final, final_tok, _ = load_for_inference(resolve_target(str(run_dir)), torch.device("cpu"), "fp32")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 4 plus 4?"}], tokenize=False,
                                           add_generation_prompt=True)
    ids = torch.tensor([tokenizer(prompt).input_ids])
    greedy = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    with torch.no_grad():
        ours, theirs = model.generate(ids, **greedy)[0], final.generate(ids, **greedy)[0]
    assert tokenizer.decode(ours) == final_tok.decode(theirs) and len(ours) > ids.shape[1]
    card = (out / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "transformers" and "nlirg" in meta["tags"] and "lora" in meta["tags"]
    assert "## Training" in card and "train.jsonl" in card and "train loss: first" in card


def test_the_ollama_export_has_a_modelfile_with_the_chat_template_and_stops(tiny_lora_run, tmp_path):
    out = _export(tiny_lora_run[0], tmp_path / "o", "--to", "ollama")
    (gguf,) = out.glob("*-q8_0.gguf")
    modelfile = (out / "Modelfile").read_text(encoding="utf-8")
    assert modelfile.startswith(f"FROM ./{gguf.name}\n")
    assert "<|im_start|>{{ .Role }}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "ollama" in yaml.safe_load((out / "README.md").read_text(encoding="utf-8").split("---")[1])["tags"]


@pytest.mark.parametrize("kind", ["llama", "qwen3"])
def test_llama_rotary_layout_and_qwen3_norms_round_trip(tmp_path, tiny_tokenizer, kind):
    """The Llama q/k permutation and Qwen3's q/k norms, on random tiny models with the tiny tokenizer. Qwen3's head_dim
    is 128 (not hidden / heads), as in every Qwen3: transformers' GGUF loader takes Qwen3Config's 128 rather than
    reading attention.key_length, so only that loads back there (llama.cpp reads the key)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    from trainer_core.export.gguf_file import write_gguf

    common = dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, eos_token_id=tiny_tokenizer.eos_token_id)
    config = LlamaConfig(**common) if kind == "llama" else Qwen3Config(**common, head_dim=128)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    write_gguf(tmp_path / "m.gguf", model, tiny_tokenizer, "f32", kind)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", dtype=torch.float32).eval()
    ids = tiny_tokenizer(PROMPTS[1]).input_ids
    assert (_logits(model, ids) - _logits(loaded, ids)).abs().max().item() <= 1e-4


def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tiny_lora_run, tmp_path, tiny_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    run_dir = tiny_lora_run[0]
    taken = tmp_path / "taken"
    taken.mkdir()
    res = nlirg_cli("export", str(run_dir), "--out", str(taken), cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "already exists" in res.stderr
    res = nlirg_cli("export", str(run_dir), "--to", "gguf", "--dtype", "q4_k_m", cwd=tmp_path)
    assert res.returncode == 2 and "llama-quantize" in res.stderr
    bare = tmp_path / "runs" / "bare-20260101-000000"
    bare.mkdir(parents=True)
    (bare / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    res = nlirg_cli("export", str(bare), cwd=tmp_path)
    assert res.returncode == 2 and "no final/ and no checkpoint" in res.stderr
    assert res.stderr.count("\n") == 1 and not (bare / "exports").exists()
    # An architecture the GGUF writer does not know: refused after loading, before anything is written.
    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=1024, n_embd=32, n_layer=1, n_head=2)).save_pretrained(gpt2)
    AutoTokenizer.from_pretrained(tiny_path).save_pretrained(gpt2)
    assert export_main([str(gpt2), "--to", "gguf", "--out", str(tmp_path / "g")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt2", "runs", "taken"]


def test_a_full_disk_is_refused_before_writing(tiny_lora_run, tiny_disk):  # noqa: F811
    from tests.test_full_disk import _fill

    _fill(tiny_disk)
    assert export_main([str(tiny_lora_run[0]), "--to", "gguf", "--dtype", "f32", "--out", str(tiny_disk / "g")]) == 2
    assert [p.name for p in tiny_disk.iterdir() if not p.name.startswith("filler")] == []



def test_a_lora_adapter_exports_as_itself_and_a_checkpoint_exports_too(tiny_lora_run, merged, tmp_path):
    import shutil

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainer_core.train.model.builtin import resolve_model_path

    run_dir = tiny_lora_run[0]
    out = _export(run_dir, tmp_path / "a", "--to", "hf", "--adapter")
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "builtin:tiny"
    assert not (out / "model.safetensors").exists() and (out / "tokenizer.json").is_file()
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path("builtin:tiny"), dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, out).eval()
    ids = merged[1](PROMPTS[0]).input_ids
    assert (_logits(adapted, ids) - _logits(merged[0], ids)).abs().max().item() <= 1e-5
    # A run without final/ exports its latest checkpoint, and says so; a checkpoint names itself.
    copy = tmp_path / "runs" / "nofinal-20260101-000000"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("final", "exports"))
    plan = plan_export(str(copy), "gguf", None, None, tmp_path / "runs")
    (ckpt,) = (copy / "checkpoints").iterdir()
    assert plan.target.kind == "checkpoint" and ckpt.name in plan.note and plan.stem == "nofinal"
    assert plan.out == copy / "exports" / "gguf-f16"
    assert plan_export(str(ckpt), "hf", "bf16", None, tmp_path).target.adapter == str(ckpt / "model")


def test_the_model_card_carries_the_eval_and_ab_numbers_with_their_intervals(tiny_lora_run, tmp_path):
    """The run as one of an `nlirg ab` experiment's: its eval.json and the report built by the experiment's own
    `build_report` (metric values made up here; the card must show what the files hold)."""
    import shutil

    from trainer_core.evaluate.report import build_report
    from trainer_core.export.card import model_card

    exp_dir = tmp_path / "exp"
    runs = {f"{arm}-r{i}": (arm, 0.1 * i + (0.5 if arm == "nlirg" else 0.0)) for arm in ("plain", "nlirg")
            for i in range(3)}
    run = exp_dir / "nlirg-r1"
    shutil.copytree(tiny_lora_run[0], run, ignore=shutil.ignore_patterns("exports"))
    results = {name: {"eval_loss": 2.0 - shift, "domain_accuracy": shift} for name, (_, shift) in runs.items()}
    (run / "eval.json").write_text(json.dumps({"metrics": results["nlirg-r1"]}))
    spec = {"name": "exp", "command": "nlirg ab", "seeds": [42, 43, 44], "arms": ["plain", "nlirg"],
            "reference_arm": "plain", "base": "builtin:tiny", "model": "builtin:tiny",
            "runs": [{"name": n, "arm": a, "seed": 42, "run_dir": str(exp_dir / n)} for n, (a, _) in runs.items()]}
    report = build_report(spec, results, None)
    (exp_dir / "report.json").write_text(json.dumps(report))
    card = model_card(plan_export(str(run), "gguf", "q8_0", tmp_path / "x", exp_dir), ["nlirg-r1-q8_0.gguf"])
    assert "## Evaluation (`nlirg eval`)" in card and f"| eval_loss | {results['nlirg-r1']['eval_loss']:.4f} |" in card
    d = report["differences"]["nlirg"]["domain_accuracy"]
    assert "nlirg − plain (95% CI)" in card and f"{d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]" in card
    assert "## Training curve" in card and "train loss: first" in card
    assert str(tmp_path) not in card  # no path of this machine
