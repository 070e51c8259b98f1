"""Relative paths in a config file name files next to that file, not in the shell's current folder.

`nlirg train configs/my.yaml` reads `data.train: data/a.jsonl` as `configs/data/a.jsonl`, from whatever folder
it is run. The same holds for `data.exclude`, `model.path`, `eval.domain`, `eval.general`,
`distributed.deepspeed_config` and `distributed.hostfile`. Builtins
(`builtin:...`), absolute paths, `~` paths and hub ids (`org/name` that is no file or folder next to the config)
are left as written. `--set` values typed on the command line stay relative to the shell's folder, as any
command-line path is. The run directory's config.yaml records the resolved, absolute paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainer_core.config.sources import DATA_SUFFIXES, HUB_ID

PATH_KEYS = (("data", "train"), ("data", "eval"), ("data", "exclude"), ("model", "path"), ("eval", "domain"),
             ("eval", "general"), ("distributed", "deepspeed_config"), ("distributed", "hostfile"))


def anchor_paths(raw: Any, base: Path) -> Any:
    """`raw` (a config mapping read from a file in `base`) with its relative paths made relative to `base`."""
    if not isinstance(raw, dict):
        return raw
    for section, key in PATH_KEYS:
        node = raw.get(section)
        if isinstance(node, dict) and key in node:
            value = node[key]
            node[key] = [_anchor_entry(v, base) for v in value] if isinstance(value, list) else _anchor_entry(
                value, base)
    return raw


def _anchor_entry(entry: Any, base: Path) -> Any:
    """A path string, or a data source mapping's `path`."""
    if isinstance(entry, dict) and isinstance(entry.get("path"), str):
        return {**entry, "path": anchor(entry["path"], base)}
    return anchor(entry, base) if isinstance(entry, str) else entry


def anchor(value: str, base: Path) -> str:
    """One path: relative to `base` unless it is a builtin, absolute, under `~`, or a hub id."""
    if value.startswith("builtin:") or not value.strip():
        return value
    path = Path(value).expanduser()
    if path.is_absolute():  # `~/x` too
        return value
    if (base / path).exists() or not _looks_like_hub_id(value):
        return os.path.normpath(base.absolute() / path)
    return value


def _looks_like_hub_id(value: str) -> bool:
    """`org/name` as config.sources reads a hub dataset id (a model's hub id has the same shape)."""
    return bool(HUB_ID.match(value)) and not value.lower().endswith(DATA_SUFFIXES)
