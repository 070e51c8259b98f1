"""Turning YAML and `--set` overrides into a validated `RunConfig`, and back to YAML.

Every problem is reported with its key path, all at once, before anything heavy is loaded. Torch-free: the
TUI and the CLI validate configs without importing torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from trainer_core.atomic import write_atomic
from trainer_core.config.choices import not_one_of
from trainer_core.config.paths import anchor_paths
from trainer_core.config.schema import ConfigError, RunConfig, non_finite
from trainer_core.config.yaml_text import YamlTextError, load_yaml
from trainer_core.quoting import quoted


# --------------------------------------------------------------------------- parsing
def _as_float(value: Any) -> float | None:
    """A number as float (YAML reads 1e-4, without a dot, as a string); None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        return float(value) if isinstance(value, (int, float, str)) else None
    except (ValueError, OverflowError):  # OverflowError: an integer beyond float's range
        return None



def _coerce(value: Any, hint: Any, key: str, problems: list[str]) -> Any:
    """Check `value` against a field's type hint; return the value to use (coerced where harmless)."""
    if hint is Any:  # checked by the section's own `check` (e.g. data sources: a path or a mapping)
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:  # a choice field (schema.py): one of its values, nothing else
        if value in args and isinstance(value, str) == isinstance(args[0], str):
            return value
        problems.append(not_one_of(key, value, args))
        return None
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and args[0] in (str, Any):
            value = [str(value)]
        if isinstance(value, dict) and args[0] is Any:  # one source given as a mapping
            value = [value]
        if not isinstance(value, list):
            problems.append(f"{key}: expected a list, got {quoted(value)}")
            return None
        return [_coerce(v, args[0], f"{key}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{key}: expected a mapping, got {quoted(value)}")
            return None
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"{key}: expected true or false, got {quoted(value)}")
        return None
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        problems.append(f"{key}: expected an integer, got {quoted(value)}")
        return None
    if hint is float:
        number = _as_float(value)
        problem = f"{key}: expected a number, got {quoted(value)}" if number is None else non_finite(key, number)
        if problem is None:
            return number
        problems.append(problem)
        return None
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        problems.append(f"{key}: expected a string, got {quoted(value)}")
        return None
    return value


def _build_section(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{prefix}: expected a mapping of keys, got {type(raw).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{prefix}.{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}.{close[0]}'?)" if close else f"; valid keys: {', '.join(names)}"
            problems.append(f"{path}: unknown key{hint}")
            continue
        before = len(problems)
        coerced = _coerce(value, hints[key], path, problems)
        if len(problems) == before:
            kwargs[key] = coerced
    return cls(**kwargs)


def config_from_dict(raw: Any, source: str = "config") -> RunConfig:
    """Build and validate a RunConfig; raise ConfigError listing every problem."""
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): expected a mapping of sections, got {type(raw).__name__}"], source)
    sections = {f.name: f for f in dataclasses.fields(RunConfig)}
    hints = typing.get_type_hints(RunConfig)
    built = {}
    for key, value in raw.items():
        if key not in sections:
            close = difflib.get_close_matches(str(key), list(sections), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; sections: {', '.join(sections)}"
            problems.append(f"{key}: unknown section{hint}")
            continue
        built[key] = _build_section(hints[key], value, key, problems)
    cfg = RunConfig(**built)
    problems += cfg.check()  # fields with type errors kept their defaults, so this is still meaningful
    if cfg.distributed.backend == "deepspeed" and not problems:
        from trainer_core.config.deepspeed import deepspeed_problems  # reads the DeepSpeed JSON from disk

        problems += deepspeed_problems(cfg)
    if problems:
        raise ConfigError(problems, source)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """`training.lr=1e-4` -> ("training.lr", 1e-4); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError([f"--set {text}: expected KEY=VALUE, e.g. training.lr=1e-4"], "--set")
    key, _, value = text.partition("=")
    try:
        parsed = load_yaml(value) if value.strip() else ""
    except YamlTextError as exc:
        if "nested" in str(exc):
            raise ConfigError([f"--set {key.strip()}: {exc}"], "--set") from None
        parsed = value
    return key.strip(), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set a.b=value` overrides to a raw config mapping (in place) and return it."""
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        node = raw
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file; a YAML syntax error becomes a one-line ConfigError with the line number."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"config file '{path}' not found"], str(path))
    try:
        raw = load_yaml(p.read_text(encoding="utf-8"))
    except YamlTextError as exc:
        raise ConfigError([str(exc)], str(path)) from None
    return raw if raw is not None else {}


def build_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                 source: str | None = None) -> RunConfig:
    """The one way from a YAML file (or the embedded defaults when `path` is None) and `--set` overrides to a
    validated RunConfig; problems are reported under `source` (default: the path, or "default config").

    Relative paths in the file are read from the file's folder (`config.paths`); those in `overrides` from the
    current folder."""
    raw = anchor_paths(read_yaml(path), Path(path).parent) if path else {}
    label = source or (str(path) if path else "default config")
    return config_from_dict(apply_overrides(raw, list(overrides)), label)


def config_to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write config.yaml atomically: a `set` rewrites it under a running trainer."""
    write_atomic(path, config_to_yaml(cfg))
