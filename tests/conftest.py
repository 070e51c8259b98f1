"""Fixtures shared by the whole suite."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tokenized corpora are cached in a folder of this session only (subprocess trainers inherit it): a test never
# reads a cache entry left by another session or writes into the user's own cache.
_DATA_CACHE = tempfile.mkdtemp(prefix="nlirg-test-data-")
os.environ["NLIRG_DATA_CACHE"] = _DATA_CACHE
atexit.register(shutil.rmtree, _DATA_CACHE, True)


@pytest.fixture(autouse=True)
def no_process_left_behind(request):
    """After each test, end whatever process still runs from its tmp_path: a test that failed half-way (a relaunch
    that started a trainer the test never learnt of) must not leave it training through the rest of the suite."""
    yield
    tmp = request.node.funcargs.get("tmp_path")
    if tmp is not None:
        from tests.live_helpers import end_processes_under

        end_processes_under(tmp)


@pytest.fixture(scope="session")
def tiny_path() -> str:
    from trainer_core.train.model.builtin import resolve_model_path

    return resolve_model_path("builtin:tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_path)


@pytest.fixture(scope="session")
def tiny_model_fn(tiny_path):
    """A function returning a fresh float32 tiny model (eval mode)."""
    import torch
    from transformers import AutoModelForCausalLM

    def make():
        m = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
        return m.eval()

    return make


@pytest.fixture(scope="session")
def tiny_scores(tmp_path_factory):
    """(data, score file, planted lines): the planted data scored once by the real `nlirg score` on builtin:tiny."""
    from tests.helpers import nlirg_cli
    from tests.score_helpers import SCORE_MAX_LENGTH, write_planted

    tmp = tmp_path_factory.mktemp("scored")
    data = tmp / "planted.jsonl"
    lines = write_planted(data)
    out = tmp / "scores.jsonl"
    proc = nlirg_cli("score", str(data), "--model", "builtin:tiny", "--out", str(out),
                     "--max-length", str(SCORE_MAX_LENGTH), "--batch-size", "4", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return data, out, lines, proc.stdout


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory):
    """A real `nlirg ab` on builtin:tiny, interrupted once and continued (tests/experiment_fixture.py)."""
    from tests.experiment_fixture import build

    return build(tmp_path_factory.mktemp("experiment"))


@pytest.fixture(scope="session")
def tiny_lora_run(tmp_path_factory):
    """A finished LoRA run on builtin:tiny (its final/ holds the adapter and the tokenizer, no config.json) whose
    data.eval is a source with its own columns; shared by the `nlirg eval` and `nlirg score` tests."""
    from tests.helpers import TINY, make_config, train_in_process, write_alpaca, write_jsonl
    from trainer_core.config import save_config

    tmp = tmp_path_factory.mktemp("lora-run")
    held = write_jsonl(tmp / "held.jsonl", [{"ask": f"What is {i} plus {i}?", "reply": f"It is {2 * i}.",
                                             "reference": str(2 * i)} for i in range(30, 33)])
    overrides = [*TINY, "lora.enabled=true", f"data.train={write_alpaca(tmp / 'train.jsonl')}",
                 f'data.eval=[{{path: "{held}", columns: {{instruction: ask, output: reply}}}}]',
                 "training.max_steps=2", "training.eval_at_start=false"]
    run_dir = tmp / "runs" / "lora-20260101-000000"
    _, status = train_in_process(run_dir, overrides)
    assert status == "completed"
    save_config(make_config(overrides), run_dir / "config.yaml")  # what `nlirg train` writes first
    return run_dir, held
