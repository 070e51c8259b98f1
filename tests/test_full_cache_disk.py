"""A full disk under the data cache: one line, exit 2, no run folder, and the cache left whole (issue 24)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import TINY, nlirg_cli, set_args, write_alpaca
from tests.test_full_disk import _fill, tiny_disk  # noqa: F401 - the real tmpfs fixture


def test_a_full_cache_disk_is_one_line_and_leaves_no_run_folder(tmp_path, tiny_disk):  # noqa: F811
    data = write_alpaca(tmp_path / "d.jsonl", n=200)
    _fill(tiny_disk)
    runs = tmp_path / "runs"
    res = nlirg_cli("train", *set_args([*TINY, f"data.train={data}", f"data.cache_dir={tiny_disk / 'cache'}"]),
                    "--max-steps", "2", "--root", str(runs), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no space left" in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) <= 3, res.stderr  # the progress line at most, and the error
    assert not runs.exists() or not any(runs.iterdir())
    cache = tiny_disk / "cache"
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.startswith(".")]

    # A trainer started on a run directory (as the workbench and experiments start them) says the same.
    from trainer_core.config import build_config
    from trainer_core.live.launch import prepare_run

    cfg = build_config(None, [*TINY, f"data.train={data}", f"data.cache_dir={cache}", f"output.root={runs}"])
    run_dir = prepare_run(cfg, "full")
    res = subprocess.run([sys.executable, "-m", "trainer_core", "--run-dir", str(run_dir)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "no space left" in res.stderr, res.stderr
    assert len([line for line in res.stderr.splitlines() if line.strip()]) <= 3, res.stderr
