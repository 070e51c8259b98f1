"""Evaluation sets: instruction records with reference answers, and plain text for perplexity (no torch).

Any training format works (DESIGN §6). An instruction record's reference is its optional `reference` key (a
string or a list of accepted strings, for short answers such as `"7 days"` beside a full `output`), else its
last assistant answer. The prompt for generation is everything before that last assistant turn; the whole
conversation is what the eval loss scores. Errors name the file and line, as the trainer's do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_core.config import RunConfig
from trainer_core.train.records import DataError, file_format, normalise

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


def _references(obj: dict[str, Any], messages: list[dict[str, str]], where: str) -> list[str]:
    ref = obj.get("reference")
    if ref is None:
        return [next(m["content"] for m in reversed(messages) if m["role"] == "assistant")]
    refs = [ref] if isinstance(ref, str) else ref
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
        raise DataError(f"{where}: 'reference' must be a non-empty string or a list of them")
    return list(refs)


def read_eval_set(specs: list[str], fmt: str = "auto", system_prompt: str | None = None) -> EvalSet:
    """Read every record of every source (builtins, files, folders, saved datasets, cached hub ids) as the
    trainer's data path reads them; the first bad record raises DataError."""
    from trainer_core.config.sources import parse_sources
    from trainer_core.train.files import expand_source, raw_rows

    sources, problems = parse_sources(list(specs), "evaluation set", {"format": fmt, "system_prompt": system_prompt})
    if problems:
        raise DataError("; ".join(problems))
    out = EvalSet()
    for spec in sources:
        for file in expand_source(spec):
            out.files.append(file.name)
            _read_file(out, file.name, raw_rows(file), spec)
    return out


def _read_file(out: EvalSet, name: str, rows: list[tuple[int, Any]], spec: Any) -> None:
    if not rows:
        raise DataError(f"{name}: holds no records; give a file with at least one")
    file_fmt = file_format(spec.format, rows[0][1], f"{name}:{rows[0][0]}")
    for line, obj in rows:
        where = f"{name}:{line}"
        messages, text = normalise(obj, file_fmt, where, spec.system_prompt, spec.text_field)
        if text is not None:
            out.texts.append(TextItem(name, line, text))
        else:
            assert messages is not None
            out.items.append(EvalItem(name, line, messages, _references(obj, messages, where)))


def sets_digest(specs: list[str]) -> str:
    """A hash of what the sets hold (every file's bytes; a saved or cached hub dataset by its files' sizes and
    times): an experiment reuses an eval.json only when its sets are unchanged, not merely named the same."""
    import hashlib

    from trainer_core.config.sources import parse_sources
    from trainer_core.train.files import SUFFIX_KINDS, expand_source

    h = hashlib.sha256()
    for spec in parse_sources(list(specs), "evaluation set", {})[0]:
        for file in expand_source(spec):
            h.update(file.path.encode() + b"\0")
            data = Path(file.path).read_bytes() if file.kind in SUFFIX_KINDS.values() else None
            h.update(data if data is not None else repr(file.fingerprint()).encode())
    return h.hexdigest()[:16]


def read_domain_set(specs: list[str], system_prompt: str | None = None) -> EvalSet:
    """A domain set: instruction records with references only (plain text has nothing to answer)."""
    found = read_eval_set(specs, system_prompt=system_prompt)
    if found.texts:
        where = f"{found.texts[0].source}:{found.texts[0].line}"
        raise DataError(f"{where}: a plain-text record has no reference answer; the domain set needs instruction "
                        "records with answers (pass text files to --general for perplexity)")
    return found


def read_general_set(specs: list[str], system_prompt: str | None = None) -> EvalSet:
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


def default_sets(cfg: RunConfig | None) -> tuple[list[str], list[str]]:
    """(domain, general) a config evaluates on: its `eval` section, else the demo's sets for the demo data, else
    its `data.eval` files as the domain set."""
    if cfg is None:
        return [], []
    demo = cfg.data.train in (DEMO_TRAIN, DEMO_TRAIN[0])
    data_eval = [e if isinstance(e, str) else e["path"] for e in entries(cfg.data.eval)]
    domain = list(cfg.eval.domain) or (list(DEMO_DOMAIN) if demo else data_eval)
    general = list(cfg.eval.general) or (list(DEMO_GENERAL) if demo else [])
    return domain, general


def entries(value: Any) -> list[Any]:
    """`data.eval` as a list (a single path or mapping is one entry); a mapping's own settings (columns, format)
    are not carried over: give an evaluation set in a supported format, or set eval.domain."""
    return [value] if isinstance(value, (str, dict)) else list(value or [])
