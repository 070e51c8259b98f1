"""The workbench's launches check the data as `nlirg train` does, before a run directory exists (issue 24)."""

from __future__ import annotations

import pytest

from trainer_core.config import build_config, config_to_yaml


def test_a_relaunch_on_a_malformed_record_is_one_line_and_makes_no_run_folder(tmp_path):
    from nlirg_tui.launching import LaunchError, launch_config_text

    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q2", "output": \n')
    root = tmp_path / "runs"
    cfg = build_config(None, ["model.path=builtin:tiny", f"data.train={data}", f"output.root={root}"])
    with pytest.raises(LaunchError) as caught:
        launch_config_text(config_to_yaml(cfg), "relaunched")
    assert f"{data}:2" in str(caught.value) and "\n" not in str(caught.value)
    assert not root.exists() or not any(root.iterdir())
