"""`nlirg score` streams: records are encoded and scored a bounded chunk at a time and their rows spooled to disk,
and the score file, its summary and its printout come out as from one pass over the whole set."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import trainer_core.score.run as score_run
from tests.score_helpers import SCORE_MAX_LENGTH, read_rows
from trainer_core.score.options import ScoreOptions


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-3 (batches form within a chunk: other padding, other float rounding)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=1e-3)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
    return a == b


def test_scoring_in_small_chunks_writes_what_one_pass_wrote(tiny_scores, tmp_path, monkeypatch):
    data, scores, _, printed = tiny_scores  # one chunk: the whole planted set, as the scorer was before streaming
    seen: list[int] = []
    encode = score_run.encode_records
    monkeypatch.setattr(score_run, "encode_records", lambda tok, records, *a, **k: (
        seen.append(len(records)), encode(tok, records, *a, **k))[1])
    out = tmp_path / "chunked.jsonl"
    stream = io.StringIO()
    summary = score_run.run(ScoreOptions(data=[str(data)], model="builtin:tiny", out=out, max_length=SCORE_MAX_LENGTH,
                                         batch_size=4, chunk=3), stream=stream)
    whole = read_rows(scores)
    assert max(seen) == 3 and sum(seen) == len(whole)  # never more than a chunk of records encoded at once
    chunked = read_rows(out)
    assert [r["source"] for r in chunked] == [r["source"] for r in whole]  # the same order, worst first
    assert all(_close(a, b) for a, b in zip(chunked, whole, strict=True))  # tokens, losses, spans, flags, quality
    before = json.loads(scores.with_name("scores.summary.json").read_text())
    same = ("records", "written", "answer_tokens", "truncated", "bands", "flags")
    assert {k: summary[k] for k in same} == {k: before[k] for k in same}
    assert [line.split()[:2] for line in stream.getvalue().splitlines()[2:-1]] == \
        [line.split()[:2] for line in printed.splitlines()[2:-1]]  # the worst records printed, read back from disk
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the spool leaves nothing behind


def test_top_k_writes_the_k_worst_and_counts_every_record(tiny_scores, tmp_path):
    data, scores, _, _ = tiny_scores
    out = tmp_path / "top.jsonl"
    summary = score_run.run(ScoreOptions(data=[str(data)], model="builtin:tiny", out=out, max_length=SCORE_MAX_LENGTH,
                                         batch_size=4, top=4, chunk=5), stream=io.StringIO())
    whole = read_rows(scores)
    assert [r["source"] for r in read_rows(out)] == [r["source"] for r in whole[:4]]
    assert (summary["records"], summary["written"]) == (len(whole), 4)
