"""Training records: normalising every format to chat messages or plain text (`files.read_records` reads any
data spec into a list of `Record`s with these rules, for small sets: evaluation files, tests, tools).

Torch-free. Every problem names the file and the line (jsonl, csv) or record number (json, parquet, arrow).
Formats (docs/design.md §6): alpaca (Y-Trainer's SFT files too), messages/conversations (ShareGPT's from/value too),
prompt/response, question/answer, text (Y-Trainer's CPT `{id, output}` too). Big corpora go through
`trainer_core.data.corpus`, which uses the same `normalise` record by record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    id: str | None = None
    """The record's own `id` field, where the data has one."""
    reference: Any = None
    """The record's own `reference` field, where the data has one (an evaluation set's accepted answers)."""

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


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
    if "text" in obj or ("output" in obj and "instruction" not in obj):  # Y-Trainer's CPT files: {id, output}
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


def text_key(obj: dict, text_field: str | None) -> str:
    """The field a CPT record's text is in: the configured one, else `text`, else Y-Trainer's `output`."""
    if text_field:
        return text_field
    return "text" if "text" in obj or "output" not in obj else "output"


def apply_columns(obj: Any, columns: dict[str, str]) -> Any:
    """Rename a record's fields from the data's names to ours (`data.columns`: ours -> theirs)."""
    if not columns or not isinstance(obj, dict):
        return obj
    theirs = set(columns.values())
    out = {k: v for k, v in obj.items() if k not in theirs}
    out.update({ours: obj[name] for ours, name in columns.items() if name in obj})
    return out


def record_id(obj: Any) -> str | None:
    value = obj.get("id") if isinstance(obj, dict) else None
    return None if value is None else str(value)


def normalise(obj: Any, fmt: str, where: str, system_prompt: str | None, text_field: str | None = None,
              allow_empty_answer: bool = False) -> tuple[list | None, str | None]:
    """Turn one raw record into (messages, None) or (None, text); raise DataError naming `where`.

    `allow_empty_answer` keeps records whose answers are all empty (corpus scoring rates and flags them;
    training refuses them, as there is nothing to learn)."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if fmt == "text":
        key = text_key(obj, text_field)
        text = _str_field(obj, key, where)
        if not text.strip():
            raise DataError(f"{where}: '{key}' is empty")
        return None, text
    messages: list[dict[str, str]] = []
    if fmt == "messages":
        messages = _messages_from_list(obj.get("messages", obj.get("conversations")), where)
        system = _str_field(obj, "system", where, required=False)  # ShareGPT keeps the system prompt beside
        if system and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system})
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
    if not allow_empty_answer and not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise DataError(f"{where}: no non-empty assistant answer to train on")
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages, None


def file_format(fmt: str, first: Any, where: str) -> str:
    """The format of a file: the configured one, or (auto) the one its first record looks like."""
    if fmt != "auto":
        return fmt
    found = detect_format(first)
    if found is None:
        keys = sorted(first) if isinstance(first, dict) else type(first).__name__
        raise DataError(f"{where}: cannot tell the format from keys {keys}; set data.format "
                        "(alpaca, messages, prompt_response, qa, text) or map your fields with data.columns")
    return found
