"""Data sources: what one entry of `data.train` / `data.eval` may say, and its checks (torch-free).

An entry is a plain string (a file, a folder, a `save_to_disk` folder, `builtin:demo` or a hub dataset id in
the local Hugging Face cache) or a mapping with per-source settings:

    data:
      train:
        - {path: a.jsonl, format: alpaca, ratio: 0.7}
        - {path: b/, ratio: 0.3, columns: {instruction: question, output: answer}}

Settings a source leaves out come from the `data` section (`format`, `text_field`, `columns`, `system_prompt`).
"""

from __future__ import annotations

import dataclasses
import difflib
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_core.config.choices import DATA_FORMATS, not_one_of

BUILTIN_DATA = {
    "builtin:demo": "demo/sft.jsonl",
    "builtin:demo-chat": "demo/chat.jsonl",
    "builtin:general": "demo/general.jsonl",
    "builtin:demo-heldout": "demo/heldout.jsonl",
    "builtin:general-instruct": "demo/general_instruct.jsonl",
    "builtin:general-text": "demo/general_text.jsonl",
}
CANONICAL_COLUMNS = ("instruction", "input", "output", "system", "history", "messages", "conversations", "prompt",
                     "response", "completion", "question", "answer", "text", "id")
"""Field names the formats read; `data.columns` maps any of them to the name a file uses."""
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")


@dataclass
class SourceSpec:
    """One data source with its own settings (the entries of `data.train` and `data.eval`)."""

    path: str
    """A file (json, jsonl, parquet, csv, arrow), a folder of them, a `save_to_disk` folder, `builtin:demo`, or a
    hub dataset id that is in the local Hugging Face cache."""
    format: str = "auto"
    """Record format of this source (auto: detected per file from its first record)."""
    ratio: float | None = None
    """Share of each epoch's samples drawn from this source (give it for every source or none)."""
    text_field: str | None = None
    """Field holding a CPT record's text (default: `text`, else Y-Trainer's `output`)."""
    columns: dict[str, str] = field(default_factory=dict)
    """Our field name -> this source's field name, e.g. {instruction: question, output: answer}."""
    system_prompt: str | None = None
    """System prompt for this source's records that bring none."""
    split: str | None = None
    """Split of a hub dataset or a saved DatasetDict (default: train)."""
    subset: str | None = None
    """Configuration (subset) name of a hub dataset."""

    @property
    def is_hub_id(self) -> bool:
        """A name like `org/dataset` that is not a local path (nor a data file's name): looked up in the local
        Hugging Face cache."""
        return (bool(HUB_ID.match(self.path)) and not self.path.lower().endswith(DATA_SUFFIXES)
                and not Path(self.path).expanduser().exists())

    def settings(self) -> dict[str, Any]:
        """Everything that changes how the records are read (part of the cache key)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "ratio"}


def parse_sources(entries: Any, key: str, defaults: dict[str, Any]) -> tuple[list[SourceSpec], list[str]]:
    """Turn `data.train`-style entries into SourceSpecs filled with the section's defaults; list every problem."""
    if isinstance(entries, (str, dict)):
        entries = [entries]
    if not isinstance(entries, list):
        return [], [f"{key}: expected a path, a list of paths or a list of {{path: ...}} sources"]
    specs: list[SourceSpec] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]" if len(entries) > 1 else key
        spec = _one_source(entry, where, defaults, problems)
        if spec is not None:
            problems += check_source(spec, where)
            specs.append(spec)
    with_ratio = [s.ratio is not None for s in specs]
    if any(with_ratio) and not all(with_ratio):
        problems.append(f"{key}: give a ratio for every source or for none")
    return specs, problems


def _one_source(entry: Any, where: str, defaults: dict[str, Any], problems: list[str]) -> SourceSpec | None:
    if isinstance(entry, str):
        return SourceSpec(path=entry, **defaults)
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a path or a mapping with `path`, got {type(entry).__name__}")
        return None
    names = [f.name for f in dataclasses.fields(SourceSpec)]
    values = dict(defaults)
    for k, v in entry.items():
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            problems.append(f"{where}.{k}: unknown key" + (f" (did you mean '{close[0]}'?)" if close
                                                          else f"; valid keys: {', '.join(names)}"))
        else:
            values[k] = v
    if not isinstance(values.get("path"), str) or not values["path"]:
        problems.append(f"{where}.path: give the file, folder or dataset id of this source")
        return None
    return SourceSpec(**values)


def check_source(spec: SourceSpec, where: str) -> list[str]:
    out = []
    if spec.format not in DATA_FORMATS:
        out.append(not_one_of(f"{where}.format", spec.format, DATA_FORMATS))
    if spec.ratio is not None and (isinstance(spec.ratio, bool) or not isinstance(spec.ratio, (int, float))
                                   or spec.ratio <= 0):
        out.append(f"{where}.ratio: {spec.ratio!r} must be a number > 0")
    for name in ("text_field", "system_prompt", "split", "subset"):
        value = getattr(spec, name)
        if value is not None and not isinstance(value, str):
            out.append(f"{where}.{name}: expected a string, got {value!r}")
    out += check_columns(spec.columns, f"{where}.columns")
    p = spec.path
    if p.startswith("builtin:"):
        if p not in BUILTIN_DATA:
            out.append(f"{where}: unknown builtin '{p}'; known: {', '.join(BUILTIN_DATA)}")
    elif spec.is_hub_id:
        if not hub_cache_dirs(p):
            out.append(f"{where}: '{p}' is no local path, and no hub dataset of that name is in the local Hugging "
                       f"Face cache ({hf_datasets_cache()}); load it once where the hub is reachable, or give a file")
    elif not Path(p).expanduser().exists():
        out.append(f"{where}: file '{p}' not found")
    return out


def hf_datasets_cache() -> Path:
    """Where `datasets` keeps prepared datasets ($HF_DATASETS_CACHE, else $HF_HOME/datasets)."""
    home = Path(os.environ.get("HF_HOME", "~/.cache/huggingface"))
    return Path(os.environ.get("HF_DATASETS_CACHE") or home / "datasets").expanduser()


def hub_cache_dirs(dataset_id: str) -> list[Path]:
    """Prepared copies of a hub dataset in the local cache: `<org>___<snake_name>/<config>/<version>/<hash>/`
    (the layout `datasets` writes; its folder names are the dataset name in snake case)."""
    org, name = dataset_id.split("/", 1)
    snake = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)).lower()
    root = hf_datasets_cache() / f"{org}___{snake}"
    return sorted(Path(p) for p in glob.glob(str(root / "*" / "*" / "*")) if Path(p).is_dir())


def check_columns(columns: Any, key: str) -> list[str]:
    if not isinstance(columns, dict):
        return [f"{key}: expected a mapping like {{instruction: question, output: answer}}"]
    out = []
    for ours, theirs in columns.items():
        if ours not in CANONICAL_COLUMNS:
            out.append(f"{key}.{ours}: not a field the formats read; use one of {', '.join(CANONICAL_COLUMNS)}")
        elif not isinstance(theirs, str) or not theirs:
            out.append(f"{key}.{ours}: expected the name of a field in your data, got {theirs!r}")
    return out
