"""A data file as the exact text of each record, numbered as trainer_core.data.records numbers them (line for
jsonl and csv, record number for json and parquet), so a cleaned copy keeps untouched records byte-identical.
Torch-free."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LINE = re.compile(r"[^\n]*\n|[^\n]+$")
"""A line ends at \\n only (\\r\\n stays whole; a U+2028 inside a JSON string does not split a record)."""
_SPACE = " \t\r\n"


@dataclass
class RawFile:
    path: Path
    kind: str
    """jsonl, json, csv or parquet."""
    parts: list[tuple[int | None, str]]
    """jsonl / csv / parquet: the file in order, as records (their number) and the text between them (None)."""
    objects: dict[int, Any]
    """The parsed record of every number."""
    header: list[str] | None = None
    """csv: the column names."""
    json_frame: tuple[str, str, str] = ("[", ", ", "]")
    """json: the text before the first record, between two records, after the last one."""
    json_records: dict[int, str] = field(default_factory=dict)

    def raw(self, number: int) -> str:
        if self.kind == "json":
            return self.json_records[number]
        return next(text for n, text in self.parts if n == number)

    def rebuild(self, changes: dict[int, str | None]) -> str:
        """The file with records replaced (new text) or dropped (None); every other byte as it was."""
        if self.kind == "json":
            head, sep, tail = self.json_frame
            kept = [changes.get(n, text) for n, text in self.json_records.items()]
            return head + sep.join(t for t in kept if t is not None) + tail
        out = [changes.get(n, text) if n is not None else text for n, text in self.parts]
        return "".join(t for t in out if t is not None)


def read_raw(path: Path) -> RawFile:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl(path)
    if suffix == ".json":
        return _json(path)
    if suffix == ".csv":
        return _csv(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        return RawFile(path, "parquet", [(n, json.dumps(r, ensure_ascii=False) + "\n") for n, r in enumerate(rows, 1)],
                       dict(enumerate(rows, 1)))
    raise ValueError(f"{path}: unsupported file type")


def _lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:  # newline="": \r\n is kept, the bytes rebuild exactly
        return _LINE.findall(fh.read())


def _jsonl(path: Path) -> RawFile:
    parts: list[tuple[int | None, str]] = []
    objects = {}
    for n, line in enumerate(_lines(path), 1):
        if line.strip():
            parts.append((n, line))
            objects[n] = json.loads(line)
        else:
            parts.append((None, line))
    return RawFile(path, "jsonl", parts, objects)


def _json(path: Path) -> RawFile:
    """Each element of the top-level list (or of the list in a one-key object) as its exact text."""
    text = "".join(_lines(path))
    decoder = json.JSONDecoder()
    pos = _skip(text, 0, _SPACE)
    if text[pos] == "{":  # {"data": [...]}: skip the key
        _, pos = decoder.raw_decode(text, _skip(text, pos + 1, _SPACE))
        pos = _skip(text, pos, _SPACE + ":")
    records: dict[int, str] = {}
    objects = {}
    ends = [pos + 1]
    seps = []
    while True:
        start = _skip(text, ends[-1], _SPACE + ",")
        if text[start] == "]":
            break
        obj, end = decoder.raw_decode(text, start)
        if records:
            seps.append(text[ends[-1]:start])
        records[len(records) + 1] = text[start:end]
        objects[len(records)] = obj
        ends.append(end)
        if len(records) == 1:
            head = text[:start]
    if not records:
        head = text[:ends[0]]
    frame = (head, seps[0] if seps else ", ", text[ends[-1]:])
    return RawFile(path, "json", [], objects, json_frame=frame, json_records=records)


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _csv(path: Path) -> RawFile:
    """Rows as their physical lines (a quoted field may span several); numbered as records.py does: row k is k + 1."""
    lines = _lines(path)
    reader = csv.reader(iter(lines))
    header = next(reader)
    parts: list[tuple[int | None, str]] = [(None, "".join(lines[:reader.line_num]))]
    objects = {}
    consumed = reader.line_num
    for k, row in enumerate(reader, 1):
        parts.append((k + 1, "".join(lines[consumed:reader.line_num])))
        objects[k + 1] = dict(zip(header, row, strict=False))
        consumed = reader.line_num
    return RawFile(path, "csv", parts, objects, header)


def render_record(raw: RawFile, obj: dict[str, Any], like: str) -> str:
    """An edited record in the file's own format, ending as the text it replaces ends."""
    ending = like[len(like.rstrip("\r\n")):]
    if raw.kind == "csv":
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=raw.header or list(obj), lineterminator=ending or "\n").writerow(obj)
        return buf.getvalue()
    if raw.kind == "json":
        return json.dumps(obj, ensure_ascii=False)
    return json.dumps(obj, ensure_ascii=False) + (ending or "\n")
