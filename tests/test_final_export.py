"""final/ as another machine gets it: the adapter names a portable base, `--merge-lora` works on resume too, and
both load in a fresh process. Real CLI runs on builtin:tiny."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY, cli_run, nlirg_cli, set_args, write_alpaca

pytestmark = pytest.mark.slow

LORA = [*TINY, "lora.enabled=true", "lora.r=4", "lora.dropout=0.0", "output.name=lora"]

# A fresh interpreter, as on another machine: the base comes only from what adapter_config.json says, through the
# documented mapping (a builtin name resolves with resolve_model_path; a hub id would load from the Hub).
LOAD_FINAL = """
import json, sys, torch
from pathlib import Path
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from trainer_core.train.model.builtin import resolve_model_path
final = Path(sys.argv[1])
base_id = json.loads((final / "adapter_config.json").read_text())["base_model_name_or_path"]
base = AutoModelForCausalLM.from_pretrained(resolve_model_path(base_id))
adapted = PeftModel.from_pretrained(base, final).eval()
merged = AutoModelForCausalLM.from_pretrained(final / "merged").eval()
ids = AutoTokenizer.from_pretrained(final / "merged")("The answer is 42.", return_tensors="pt").input_ids
with torch.no_grad():
    gap = (adapted(ids).logits - merged(ids).logits).abs().max().item()
print(json.dumps({"base": base_id, "gap": gap}))
"""


@pytest.fixture(scope="module")
def cli_lora_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("final")
    return cli_run(root, [*LORA, f"data.train={write_alpaca(root / 'd.jsonl')}"], max_steps=3)


def test_the_adapter_names_a_portable_base_not_a_cache_folder(cli_lora_run):
    config = json.loads((cli_lora_run / "final" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "builtin:tiny"


def _run_files(run: Path) -> dict[str, bytes]:
    """Every file of the run but final/merged, by path: what a merge of a finished run must leave alone."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and "merged" not in p.relative_to(run).parts}


def test_resume_of_a_completed_run_with_nothing_left_says_so_and_changes_nothing(cli_lora_run):
    before = _run_files(cli_lora_run)
    res = nlirg_cli("train", "--resume", str(cli_lora_run), cwd=cli_lora_run.parent)
    assert res.returncode == 2
    assert "completed at step 3 and has no step left to train" in res.stderr
    assert _run_files(cli_lora_run) == before


def test_merge_lora_on_resume_merges_and_both_load_in_a_fresh_process(cli_lora_run):
    assert not (cli_lora_run / "final" / "merged").exists()
    before = _run_files(cli_lora_run)
    res = nlirg_cli("train", "--resume", str(cli_lora_run), "--merge-lora", cwd=cli_lora_run.parent)
    assert res.returncode == 0, res.stderr
    assert (cli_lora_run / "final" / "merged" / "config.json").is_file()
    # A finished run: only the merged folder is new. summary.json (final loss, wall time, tokens), trainer.json
    # (start time, status), the evaluation in events.jsonl, lr_scale and config.yaml are as the run left them.
    assert _run_files(cli_lora_run) == before
    assert "final loss" not in res.stderr
    out = subprocess.run([sys.executable, "-c", LOAD_FINAL, str(cli_lora_run / "final")], capture_output=True,
                         text=True, timeout=300, cwd=cli_lora_run.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["base"] == "builtin:tiny" and loaded["gap"] < 1e-4


def test_merge_lora_without_lora_says_why_not(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    res = nlirg_cli("train", *set_args([*TINY, f"data.train={data}"]), "--max-steps", "1", "--merge-lora", cwd=tmp_path)
    assert res.returncode == 2
    assert "output.merge_lora: only a LoRA run has an adapter to merge" in res.stderr
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made
