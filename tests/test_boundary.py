"""The import rules (docs/design.md §1) as checks, not prose.

import-linter's contracts in pyproject.toml cover every import statement, those inside functions too:
trainer_core never imports the TUI or Textual; its client half (config, live, data) never imports torch; its
layers (score and export, evaluate, train, live and data, config) import only downwards; no package or module
imports one that imports it back; nlirg_tui never imports torch and reaches trainer_core only through config,
live, data and evaluate's torch-free half; widgets never import screens. One more test imports
the whole client side in a fresh interpreter, so an import that no statement shows (importlib, a plugin, a
library's own import) cannot bring torch in either.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EVALUATE_CLIENT_SIDE = ("commands", "runner", "experiment", "report", "metrics", "stats", "eval_data", "targets")
"""The torch-free modules of trainer_core.evaluate (the contract in pyproject.toml names the same)."""


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_the_whole_client_side_loads_without_torch():
    code = f"EVALUATE_CLIENT_SIDE = {EVALUATE_CLIENT_SIDE!r}\n" + """
import importlib, pkgutil, sys
import nlirg_tui, trainer_core.config, trainer_core.data, trainer_core.live
loaded = []
for package in (nlirg_tui, trainer_core.config, trainer_core.data, trainer_core.live):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
        loaded.append(module.name)
loaded.append(importlib.import_module("trainer_core.score.options").__name__)  # `nlirg score`'s options
for name in EVALUATE_CLIENT_SIDE:  # what `nlirg eval`, `nlirg ab` and the Experiment screen import
    loaded.append(importlib.import_module("trainer_core.evaluate." + name).__name__)
from nlirg_tui.cli import app
app(["--help"], standalone_mode=False)  # typer builds every command
heavy = sorted(m for m in ("torch", "transformers", "peft", "deepspeed") if m in sys.modules)
print(len(loaded), " ".join(heavy))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    count, *heavy = out.stdout.strip().splitlines()[-1].split()
    assert int(count) >= 30, out.stdout  # every module of the client side was really imported
    assert heavy == [], f"the client side imported {heavy}"
