"""The prompt and answer fields of a raw record, whatever its format, for the Data screen's editor. Torch-free."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from trainer_core.data.records import DataError, detect_format, normalise

Path_ = tuple[str | int, ...]


@dataclass
class Field:
    label: str
    path: Path_
    """Keys and list indices from the record to the string."""
    value: str


def _get(obj: Any, path: Path_) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _last_turn(turns: list, roles: tuple[str, ...]) -> int | None:
    for i in range(len(turns) - 1, -1, -1):
        if isinstance(turns[i], dict) and turns[i].get("role", turns[i].get("from")) in roles:
            return i
    return None


def _message_paths(obj: dict[str, Any]) -> list[tuple[str, Path_]]:
    """The last user turn (prompt) and the last assistant turn (answer) of a conversation."""
    key = "messages" if "messages" in obj else "conversations"
    turns = obj.get(key) or []
    out = []
    for label, roles in (("prompt (last user turn)", ("user", "human")),
                         ("answer (last assistant turn)", ("assistant", "gpt", "bot", "model"))):
        i = _last_turn(turns, roles)
        if i is not None:
            out.append((label, (key, i, "content" if "content" in turns[i] else "value")))
    return out


def _paths(obj: dict[str, Any]) -> list[tuple[str, Path_]]:
    fmt = detect_format(obj)
    if fmt == "alpaca":
        return [("prompt (instruction)", ("instruction",)), *([("input", ("input",))] if "input" in obj else []),
                ("answer (output)", ("output",))]
    if fmt == "prompt_response":
        return [("prompt", ("prompt",)), ("answer", ("response" if "response" in obj else "completion",))]
    if fmt == "qa":
        return [("prompt (question)", ("question",)), ("answer", ("answer",))]
    if fmt == "messages":
        return _message_paths(obj)
    if fmt == "text":
        return [("text", ("text",))]
    return []


def editable_fields(obj: Any) -> list[Field]:
    if not isinstance(obj, dict):
        return []
    return [Field(label, path, v) for label, path in _paths(obj) if isinstance(v := _get(obj, path), str)]


def with_values(obj: dict[str, Any], fields: list[Field], values: list[str]) -> dict[str, Any]:
    """A copy of the record with the fields set to `values`; every other key as it was."""
    out = copy.deepcopy(obj)
    for f, value in zip(fields, values, strict=True):
        *parents, last = f.path
        _get(out, tuple(parents))[last] = value
    return out


def record_problem(obj: dict[str, Any], where: str) -> str | None:
    """The trainer's own complaint about the record, or None when it would train."""
    fmt = detect_format(obj)
    if fmt is None:
        return f"{where}: cannot tell the format of the edited record"
    try:
        normalise(obj, fmt, where, None)
    except DataError as exc:
        return str(exc)
    return None
