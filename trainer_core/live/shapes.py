"""Checking a decoded JSON object against a TypedDict, so the protocol's definitions can be checked at run time.

Understood in a definition: `int` (not bool), `float` (an int is a JSON number too), `str`, `bool`, `None`,
`Any`, `Literal[...]`, unions (`X | None`), `list[X]`, `dict[str, X]`, nested TypedDicts (required and
`NotRequired` keys; an unknown key is a problem), and `Annotated[list[X], Length(n)]` for fixed-length lists.
Every problem is reported with its key path, all at once.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from typing_extensions import NotRequired, Required, get_type_hints, is_typeddict

from trainer_core.quoting import quoted


@dataclass(frozen=True)
class Length:
    """`Annotated[list[int], Length(4)]`: a list of exactly this many items."""

    n: int


def keys_problems(obj: dict[str, Any], shape: type, where: str) -> list[str]:
    """Missing required keys and unknown keys only (cheap enough for every emitted event)."""
    allowed = shape.__required_keys__ | shape.__optional_keys__
    out = [f"{where}: missing {key!r}" for key in sorted(shape.__required_keys__ - obj.keys())]
    out += [f"{where}: unknown key {key!r}" for key in sorted(obj.keys() - allowed)]
    return out


def problems(obj: Any, shape: type, where: str) -> list[str]:
    """Every way `obj` differs from the TypedDict `shape`, each led by its key path (empty when it fits)."""
    out: list[str] = []
    _check(obj, shape, where, out)
    return out


def _check(value: Any, hint: Any, where: str, out: list[str]) -> None:
    if hint is Any:
        return
    if is_typeddict(hint):
        _check_mapping(value, hint, where, out)
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        _check(value, args[0], where, out)
        for meta in args[1:]:
            if isinstance(meta, Length) and isinstance(value, list) and len(value) != meta.n:
                out.append(f"{where}: expected {meta.n} items, got {len(value)}")
        return
    if origin in (Union, types.UnionType):
        if not any(not problems_of(value, a) for a in args):
            out.append(f"{where}: {quoted(value)} is not {' or '.join(_name(a) for a in args)}")
        return
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            out.append(f"{where}: {quoted(value)} is not one of {', '.join(map(str, args))}")
        return
    if origin is list:
        if not isinstance(value, list):
            out.append(f"{where}: expected a list, got {quoted(value)}")
            return
        for i, item in enumerate(value):
            _check(item, args[0], f"{where}[{i}]", out)
        return
    if origin is dict:
        if not isinstance(value, dict):
            out.append(f"{where}: expected an object, got {quoted(value)}")
            return
        for key, item in value.items():
            _check(item, args[1], f"{where}.{key}", out)
        return
    if not _is_instance(value, hint):
        out.append(f"{where}: expected {_name(hint)}, got {quoted(value)}")


def problems_of(value: Any, hint: Any) -> list[str]:
    out: list[str] = []
    _check(value, hint, "", out)
    return out


def _check_mapping(value: Any, shape: type, where: str, out: list[str]) -> None:
    if not isinstance(value, dict):
        out.append(f"{where}: expected an object, got {quoted(value)}")
        return
    out += keys_problems(value, shape, where)
    hints = get_type_hints(shape, include_extras=True)
    for key, item in value.items():
        if key in hints:
            _check(item, _unwrap_required(hints[key]), f"{where}.{key}", out)


def _unwrap_required(hint: Any) -> Any:
    """NotRequired[X] -> X (get_type_hints keeps the marker with include_extras)."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) in (NotRequired, Required) else hint


def _is_instance(value: Any, hint: Any) -> bool:
    if hint is None or hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _name(hint: Any) -> str:
    if hint is type(None) or hint is None:
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, getattr(hint, "__name__", str(hint)))
