"""The data cache is keyed by what files hold, not by their size and mtime, and never grows without bound
(issue 24): an edit that keeps both is seen, a `touch` re-reads nothing, unused entries are pruned, a cap holds."""

from __future__ import annotations

import json
import os

from tests.helpers import nlirg_cli
from trainer_core.config.sources import SourceSpec
from trainer_core.data.cache import list_entries
from trainer_core.data.cache_prune import enforce_cap
from trainer_core.data.corpus import read_sources


def _write(path, answers):
    path.write_text("".join(json.dumps({"instruction": f"q{i}", "output": a}) + "\n" for i, a in enumerate(answers)))


def _read(path, root):
    (source,) = read_sources([SourceSpec(path=str(path))], root)
    return source.key, list(source.dataset["messages"])


def test_an_edit_that_keeps_size_and_mtime_is_read_a_touch_is_not_and_prune_drops_the_old(tmp_path):
    root, data = tmp_path / "cache", tmp_path / "d.jsonl"
    _write(data, ["alpha", "bravo"])
    key, first = _read(data, root)
    st = os.stat(data)
    _write(data, ["ALPHA", "bravo"])  # `cp -p` / `rsync -a` of an edited copy: same size, same mtime
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(data).st_size == st.st_size and os.stat(data).st_mtime_ns == st.st_mtime_ns
    edited_key, edited = _read(data, root)
    assert edited_key != key and edited != first and "ALPHA" in json.dumps(edited)
    os.utime(data)  # a bare touch: same bytes, same entry
    assert _read(data, root)[0] == edited_key and len(list_entries(root)) == 2

    res = nlirg_cli("data", "cache", "--prune", "--cache-dir", str(root), cwd=tmp_path)
    assert res.returncode == 0 and "pruned 1 unused entry" in res.stdout, res.stdout + res.stderr
    assert [e.name for e in list_entries(root)] == [edited_key]


def test_the_cap_removes_the_least_recently_used_but_never_the_runs_own(tmp_path):
    root = tmp_path / "cache"
    keys = []
    for i in range(3):
        data = tmp_path / f"d{i}.jsonl"
        _write(data, [f"answer {i}"] * 50)
        keys.append(_read(data, root)[0])
    entries = {e.name: e for e in list_entries(root)}
    for i, key in enumerate(keys):  # used in order: keys[0] longest ago
        os.utime(root / key / "meta.json", (1_000_000 + i, 1_000_000 + i))
    one = entries[keys[0]].size_bytes
    assert [e.name for e in enforce_cap(root, int(one * 2.5), keep=set())] == [keys[0]]  # the oldest use goes
    assert [e.name for e in enforce_cap(root, int(one * 1.5), keep={keys[1]})] == [keys[2]]  # never the run's own
    assert [e.name for e in list_entries(root)] == [keys[1]]
    assert enforce_cap(root, 0, keep=set()) == []  # 0: no cap
