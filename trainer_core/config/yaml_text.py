"""Reading config YAML text into plain data: a syntax error or absurd nesting is one line, never a traceback."""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 32
"""Deepest nesting a config may have (its own keys need four or five levels; data sources a few more)."""


class YamlTextError(ValueError):
    """One line: where the text is wrong (line and column when known) and what is wrong."""


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, with a syntax error, and nesting deeper than MAX_DEPTH (which would otherwise
    exhaust Python's recursion limit inside the parser), raised as a one-line YamlTextError."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlTextError(f"{where}YAML syntax error: {problem}") from None
    except RecursionError:
        raise YamlTextError(f"nested too deeply (more than {MAX_DEPTH} levels of lists or mappings)") from None
    if _depth(data) > MAX_DEPTH:
        raise YamlTextError(f"nested too deeply (more than {MAX_DEPTH} levels of lists or mappings)")
    return data


def _depth(data: Any) -> int:
    """Levels of lists and mappings in `data`, counted without recursion."""
    deepest, todo = 0, [(data, 0)]
    while todo:
        node, level = todo.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest
        todo.extend((child, level + 1) for child in children)
    return deepest
