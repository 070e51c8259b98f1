"""Talking to the model while it trains (docs/chat.md): what a `generate` request asks, checked before it reaches
a trainer or an inference process, and a run's chat history (chat.jsonl) with its export as training records.

Torch-free: the server's reader, the CLI and the workbench check requests and read history with it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from trainer_core.atomic import write_atomic
from trainer_core.quoting import quoted

CHAT_FILE = "chat.jsonl"
"""A run's chat history: one line per answered request (rank 0 appends it)."""
MAX_PROMPT_CHARS = 16_000
"""The longest prompt or reference a request may carry (the run's data.max_length bounds it again in tokens)."""
MAX_NEW_TOKENS = 1024
"""The most tokens one answer may ask for; the run's data.max_length bounds prompt + answer as well."""
MAX_WAITING = 4
"""Requests a trainer holds at once; one more is refused until one is answered."""
ExportFormat = Literal["alpaca", "messages"]


class ChatRequestError(ValueError):
    """A request that cannot be answered as sent: one line naming the field and what to send."""


@dataclass(frozen=True)
class ChatRequest:
    """The args of a `generate` command (and of a line sent to an inference process)."""

    prompt: str
    max_new_tokens: int = 128
    temperature: float = 0.0
    """0 answers greedily; above 0 samples (with `top_p`), seeded by `seed` so every rank draws the same."""
    top_p: float = 1.0
    seed: int = 0
    system: str | None = None
    reference: str | None = None
    """An answer the user expects: its tokens come back with the model's loss, weight and NLIRG zone."""
    base: bool = True
    """Also answer with the base model (a LoRA run's adapter switched off), side by side."""

    def args(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


_NUMBERS: dict[str, tuple[type, float, float]] = {
    "max_new_tokens": (int, 1, MAX_NEW_TOKENS), "temperature": (float, 0.0, 2.0), "top_p": (float, 1e-6, 1.0),
    "seed": (int, 0, 2**31 - 1),
}


def parse_chat_args(args: dict[str, Any]) -> ChatRequest:
    """A request from a command's args; ChatRequestError names the first wrong field."""
    unknown = sorted(set(args) - set(ChatRequest.__dataclass_fields__))
    if unknown:
        raise ChatRequestError(f"generate takes {', '.join(ChatRequest.__dataclass_fields__)}; "
                               f"not {', '.join(unknown)}")
    prompt = args.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ChatRequestError("generate needs a prompt: a non-empty string")
    for key in ("prompt", "reference", "system"):
        value = args.get(key)
        if value is not None and not isinstance(value, str):
            raise ChatRequestError(f"{key} must be a string, got {quoted(value)}")
        if isinstance(value, str) and len(value) > MAX_PROMPT_CHARS:
            raise ChatRequestError(f"{key} is {len(value):,} characters; at most {MAX_PROMPT_CHARS:,}")
    for key, (kind, low, high) in _NUMBERS.items():
        value = args.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise ChatRequestError(f"{key} must be {'an integer' if kind is int else 'a number'}, got "
                                   f"{quoted(value)}")
        if not low <= value <= high:
            raise ChatRequestError(f"{key} must be between {low:g} and {high:g}, got {quoted(value)}")
    if "base" in args and not isinstance(args["base"], bool):
        raise ChatRequestError(f"base must be true or false, got {quoted(args['base'])}")
    known = {k: (_NUMBERS[k][0](v) if k in _NUMBERS else v) for k, v in args.items() if v is not None}
    return ChatRequest(**known)


def append_history(run_dir: Path, entry: dict[str, Any]) -> None:
    """One answered request, appended whole to the run's chat.jsonl (private like the run folder)."""
    path = run_dir / CHAT_FILE
    line = json.dumps({"ts": round(time.time(), 3), **entry}, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8", opener=lambda p, flags: os.open(p, flags, 0o600)) as f:
        f.write(line)


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The run's answered requests, oldest first (a torn last line is skipped)."""
    path = run_dir / CHAT_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("prompt"), str):
            out.append(entry)
    return out


def as_record(entry: dict[str, Any], fmt: ExportFormat) -> dict[str, Any]:
    """A training record from one exchange: the user's reference (a corrected answer) when given, else the
    model's own answer."""
    answer = entry.get("reference") or entry.get("answer") or ""
    if fmt == "messages":
        messages = ([{"role": "system", "content": entry["system"]}] if entry.get("system") else [])
        return {"messages": [*messages, {"role": "user", "content": entry["prompt"]},
                             {"role": "assistant", "content": answer}]}
    record = {"instruction": entry["prompt"], "input": "", "output": answer}
    if entry.get("system"):
        record["system"] = entry["system"]
    return record


def export_history(run_dir: Path, out: Path, fmt: ExportFormat = "alpaca") -> int:
    """Write the run's exchanges as a JSONL data file the trainer reads (`data.train`); returns the count."""
    entries = read_history(run_dir)
    if not entries:
        raise ChatRequestError(f"{run_dir / CHAT_FILE} holds no answered prompt yet; chat first (nlirg chat RUN)")
    text = "".join(json.dumps(as_record(e, fmt), ensure_ascii=False) + "\n" for e in entries)
    write_atomic(out, text)
    return len(entries)
