"""Reading training records from files and normalising every format to chat messages or plain text.

Torch-free. Every problem names the file and the line (jsonl, csv) or record index (json, parquet).
Formats (DESIGN §6): alpaca, messages/conversations, prompt/response, question/answer, text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from trainer_core.config import BUILTIN_DATA

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
ROLE_ALIASES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "bot": "assistant", "model": "assistant", "system": "system",
}


class DataError(ValueError):
    """A user error in the data: the message names the file and line/record and what to do."""


@dataclass
class Record:
    """One training sample, normalised: `messages` for SFT formats, `text` for CPT."""

    source: str
    """File the record came from."""
    line: int
    """1-based line (jsonl, csv) or record number (json, parquet) in that file."""
    messages: list[dict[str, str]] | None = None
    text: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def builtin_data_path(spec: str) -> Path:
    """Path of a bundled data file (`builtin:demo` and friends)."""
    rel = BUILTIN_DATA[spec]
    return Path(str(resources.files("trainer_core") / "assets" / rel))


def expand_paths(specs: list[str]) -> list[Path]:
    """Resolve builtins, expand folders into their supported files (sorted), keep files as given."""
    out: list[Path] = []
    for spec in specs:
        if spec.startswith("builtin:"):
            out.append(builtin_data_path(spec))
            continue
        p = Path(spec).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in SUPPORTED_SUFFIXES)
            if not files:
                raise DataError(f"{spec}: folder holds no {', '.join(SUPPORTED_SUFFIXES)} files")
            out.extend(files)
        elif p.is_file():
            if p.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise DataError(f"{spec}: unsupported file type; use {', '.join(SUPPORTED_SUFFIXES)}")
            out.append(p)
        else:
            raise DataError(f"{spec}: file not found")
    return out


def _raw_rows(path: Path) -> list[tuple[int, Any]]:
    """(line-or-record number, raw object) for every record in a file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: not valid JSON ({exc.msg}); fix or remove the line") from None
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
            data = next(iter(data.values()))
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of records")
        return list(enumerate(data, 1))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(enumerate(pq.read_table(path).to_pylist(), 1))
    if suffix == ".csv":
        import csv

        with path.open(encoding="utf-8", newline="") as fh:
            return [(n + 1, row) for n, row in enumerate(csv.DictReader(fh), 1)]  # line 1 is the header
    raise DataError(f"{path}: unsupported file type")


def detect_format(obj: Any) -> str | None:
    """The format a raw record looks like, or None."""
    if not isinstance(obj, dict):
        return None
    if "messages" in obj or "conversations" in obj:
        return "messages"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if "prompt" in obj and ("response" in obj or "completion" in obj):
        return "prompt_response"
    if "question" in obj and "answer" in obj:
        return "qa"
    if "text" in obj:
        return "text"
    return None


def _str_field(obj: dict, key: str, where: str, required: bool = True) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: missing key '{key}'")
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' must be a string, got {type(value).__name__}")
    return value


def _messages_from_list(turns: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise DataError(f"{where}: message {i} is not an object")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if role not in ROLE_ALIASES:
            raise DataError(f"{where}: message {i} has unknown role {role!r}; use system, user or assistant")
        if not isinstance(content, str):
            raise DataError(f"{where}: message {i} needs a string 'content'")
        out.append({"role": ROLE_ALIASES[role], "content": content})
    return out


def normalise(obj: Any, fmt: str, where: str, system_prompt: str | None) -> tuple[list | None, str | None]:
    """Turn one raw record into (messages, None) or (None, text); raise DataError naming `where`."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if fmt == "text":
        text = _str_field(obj, "text", where)
        if not text.strip():
            raise DataError(f"{where}: 'text' is empty")
        return None, text
    messages: list[dict[str, str]] = []
    if fmt == "messages":
        messages = _messages_from_list(obj.get("messages", obj.get("conversations")), where)
    elif fmt == "alpaca":
        system = _str_field(obj, "system", where, required=False)
        if system:
            messages.append({"role": "system", "content": system})
        history = obj.get("history") or []
        if not isinstance(history, list):
            raise DataError(f"{where}: 'history' must be a list of [question, answer] pairs")
        for i, pair in enumerate(history):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise DataError(f"{where}: history[{i}] must be a [question, answer] pair of strings")
            messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        instruction = _str_field(obj, "instruction", where)
        extra = _str_field(obj, "input", where, required=False)
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": _str_field(obj, "output", where)}]
    elif fmt == "prompt_response":
        answer_key = "response" if "response" in obj else "completion"
        messages = [{"role": "user", "content": _str_field(obj, "prompt", where)},
                    {"role": "assistant", "content": _str_field(obj, answer_key, where)}]
    elif fmt == "qa":
        messages = [{"role": "user", "content": _str_field(obj, "question", where)},
                    {"role": "assistant", "content": _str_field(obj, "answer", where)}]
    else:
        raise DataError(f"{where}: unknown format {fmt!r}")
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise DataError(f"{where}: no non-empty assistant answer to train on")
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages, None


def read_records(specs: list[str], fmt: str = "auto", system_prompt: str | None = None) -> list[Record]:
    """Read and normalise every record of every file; the first bad record raises DataError."""
    records: list[Record] = []
    for path in expand_paths(specs):
        rows = _raw_rows(path)
        if not rows:
            raise DataError(f"{path}: holds no records")
        file_fmt = fmt
        if fmt == "auto":
            file_fmt = detect_format(rows[0][1]) or ""
            if not file_fmt:
                keys = sorted(rows[0][1]) if isinstance(rows[0][1], dict) else type(rows[0][1]).__name__
                raise DataError(
                    f"{path}:{rows[0][0]}: cannot tell the format from keys {keys}; set data.format "
                    "(alpaca, messages, prompt_response, qa, text)"
                )
        for line, obj in rows:
            where = f"{path}:{line}"
            messages, text = normalise(obj, file_fmt, where, system_prompt)
            records.append(Record(source=str(path), line=line, messages=messages, text=text))
    return records
