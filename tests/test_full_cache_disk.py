"""A full disk under the data cache: one line, exit 2, no run folder, and the cache left whole (issue 24)."""

from __future__ import annotations

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
