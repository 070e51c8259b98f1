"""Evaluation sets: instruction records with reference answers, and plain text for perplexity (no torch).

Any training format works (docs/design.md §6). An instruction record's reference is its optional `reference` key (a
string or a list of accepted strings, for short answers such as `"7 days"` beside a full `output`), else its
last assistant answer. The prompt for generation is everything before that last assistant turn; the whole
conversation is what the eval loss scores. Errors name the file and line, as the trainer's do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_core.config import RunConfig
from trainer_core.data.files import read_records
from trainer_core.data.records import DataError, Record

DEMO_TRAIN = ["builtin:demo"]
DEMO_DOMAIN = ["builtin:demo-heldout"]
"""Held-out support questions written apart from the demo's training set (none of its prompts)."""
DEMO_GENERAL = ["builtin:general-instruct", "builtin:general-text"]


@dataclass
class EvalItem:
    """One instruction with its reference answer(s)."""

    source: str
    line: int
    messages: list[dict[str, str]]
    """The whole conversation, last assistant answer included (scored by the eval loss)."""
    references: list[str]
    """Accepted answers; the first one decides whether the item is a JSON item."""

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def prompt(self) -> list[dict[str, str]]:
        """The conversation up to (not including) its last assistant turn: what the model answers."""
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return self.messages[:last]


@dataclass
class TextItem:
    source: str
    line: int
    text: str


@dataclass
class EvalSet:
    """What one or more files hold: instructions with references and/or plain text."""

    items: list[EvalItem] = field(default_factory=list)
    texts: list[TextItem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _references(ref: Any, messages: list[dict[str, str]], where: str) -> list[str]:
    if ref is None:
        return [next(m["content"] for m in reversed(messages) if m["role"] == "assistant")]
    refs = [ref] if isinstance(ref, str) else ref
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
        raise DataError(f"{where}: 'reference' must be a non-empty string or a list of them")
    return list(refs)


def eval_item(record: Record) -> EvalItem | None:
    """An instruction record as an item with its references; None for a plain-text record."""
    if record.messages is None:
        return None
    return EvalItem(record.source, record.line, record.messages,
                    _references(record.reference, record.messages, record.where))


def read_eval_set(specs: list[Any], fmt: str = "auto", system_prompt: str | None = None) -> EvalSet:
    """Every record of every source (builtins, files, folders, saved datasets, cached hub ids, `{path, columns,
    ...}` mappings) read as the trainer reads data; the first bad record raises DataError."""
    records = read_records(specs, fmt, system_prompt, key="evaluation set")
    out = EvalSet(files=list(dict.fromkeys(r.source for r in records)))  # every file holds a record
    for record in records:
        item = eval_item(record)
        if item is not None:
            out.items.append(item)
        else:
            out.texts.append(TextItem(record.source, record.line, record.text or ""))
    return out


def sets_digest(specs: list[Any]) -> str:
    """A hash of what the sets hold (every file's bytes; a saved or cached hub dataset by its files' sizes and
    times): an experiment reuses an eval.json only when its sets are unchanged, not merely named the same."""
    import hashlib

    from trainer_core.config.sources import parse_sources
    from trainer_core.data.files import SUFFIX_KINDS, expand_source

    h = hashlib.sha256()
    for spec in parse_sources(list(specs), "evaluation set", {})[0]:
        for file in expand_source(spec):
            h.update(file.path.encode() + b"\0")
            data = Path(file.path).read_bytes() if file.kind in SUFFIX_KINDS.values() else None
            h.update(data if data is not None else repr(file.fingerprint()).encode())
    return h.hexdigest()[:16]


def read_domain_set(specs: list[Any], system_prompt: str | None = None) -> EvalSet:
    """A domain set: instruction records with references only (plain text has nothing to answer)."""
    found = read_eval_set(specs, system_prompt=system_prompt)
    if found.texts:
        where = f"{found.texts[0].source}:{found.texts[0].line}"
        raise DataError(f"{where}: a plain-text record has no reference answer; the domain set needs instruction "
                        "records with answers (pass text files to --general for perplexity)")
    return found


def read_general_set(specs: list[Any], system_prompt: str | None = None) -> EvalSet:
    """A general set: instructions with short references and/or plain text; empty is an error."""
    found = read_eval_set(specs, system_prompt=system_prompt)
    if not found.items and not found.texts:
        raise DataError(f"general set {', '.join(specs)}: no records; give instructions with references or text")
    return found


def limit(items: list, n: int) -> list:
    """`n` items spread evenly over the set, in order (all when n <= 0 or n >= len): a quick look that still
    meets every part of a file written in sections (both languages, the JSON items at the end)."""
    if n <= 0 or n >= len(items):
        return items
    return [items[i * len(items) // n] for i in range(n)]


def default_sets(cfg: RunConfig | None) -> tuple[list[Any], list[Any]]:
    """(domain, general) a config names as sets: its `eval` section, else the demo's sets for the demo data. An
    empty domain means the run's own held-out records (`held_out_items`), which the evaluator reads from the
    run's config: data.eval or the data.eval_fraction split, after data.exclude, as the trainer holds them out."""
    if cfg is None:
        return [], []
    demo = cfg.data.train in (DEMO_TRAIN, DEMO_TRAIN[0])
    domain = list(cfg.eval.domain) or (list(DEMO_DOMAIN) if demo else [])
    general = list(cfg.eval.general) or (list(DEMO_GENERAL) if demo else [])
    return domain, general


def held_out_items(cfg: RunConfig) -> list[EvalItem]:
    """eval.domain, else the demo's held-out set for the demo data, else the run's own evaluation records
    (data.eval, or the data.eval_fraction split: the records the trainer holds out, after data.exclude).
    The one definition the generation probe, `nlirg eval RUN` and `nlirg ab` share."""
    from trainer_core.data.split import held_out_records

    specs = default_sets(cfg)[0]
    if specs:
        return read_domain_set(specs, cfg.data.system_prompt).items
    return [item for item in map(eval_item, held_out_records(cfg)) if item is not None]


def held_out_set(cfg: RunConfig) -> EvalSet:
    """`held_out_items` as a domain set (its files: the sources the records came from); a plain-text record
    among them is refused as in any domain set."""
    items = held_out_items(cfg)
    return EvalSet(items=items, files=list(dict.fromkeys(i.source for i in items)))


def entry_argument(entry: str | dict[str, Any]) -> str:
    """An evaluation set entry as one command-line value: a path as it is, a mapping as JSON."""
    return entry if isinstance(entry, str) else json.dumps(entry, ensure_ascii=False, sort_keys=True)


def parse_entries(values: list[str]) -> list[str | dict[str, Any]]:
    """`--domain`/`--general` values as set entries: a value that starts with `{` is a JSON source mapping."""
    return [_json_entry(v) if v.lstrip().startswith("{") else v for v in values]


def _json_entry(value: str) -> dict[str, Any]:
    hint = 'give a path, or a source as JSON: {"path": "held.csv", "columns": {"output": "answer"}}'
    try:
        entry = json.loads(value)
    except json.JSONDecodeError as exc:
        raise DataError(f"{value}: not valid JSON ({exc.msg}); {hint}") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise DataError(f"{value}: a source mapping needs a string 'path'; {hint}")
    return entry
