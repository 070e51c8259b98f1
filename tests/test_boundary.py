"""The import boundary (STYLE.md): trainer_core never imports textual; nlirg_tui never imports torch."""

import subprocess
import sys

import pytest


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["nlirg_tui", "nlirg_tui.cli", "trainer_core.config", "trainer_core.live.launch",
                                    "trainer_core.train.records", "trainer_core.train.corpus",
                                    "trainer_core.train.cache"])
def test_cli_side_never_imports_torch(module):
    mods = _modules_after_import(module)
    assert "torch" not in mods and "transformers" not in mods


@pytest.mark.parametrize("module", ["trainer_core", "trainer_core.train.loop", "trainer_core.__main__"])
def test_trainer_never_imports_textual_or_the_tui(module):
    mods = _modules_after_import(module)
    assert "textual" not in mods
    assert not any(m == "nlirg_tui" or m.startswith("nlirg_tui.") for m in mods)
