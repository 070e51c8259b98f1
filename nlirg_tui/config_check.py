"""Validating config text as the user types, with the trainer's own rules and messages (torch-free)."""

from __future__ import annotations

import difflib

import yaml

from trainer_core.config import ConfigError, RunConfig, config_from_dict


def check_config_text(text: str) -> tuple[RunConfig | None, list[str]]:
    """The config and no problems, or None and one line per problem, each led by its key path (or line)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return None, [f"{where}YAML syntax error: {getattr(exc, 'problem', None) or exc}"]
    try:
        return config_from_dict(raw if raw is not None else {}, "config"), []
    except ConfigError as exc:
        return None, list(exc.problems)


def config_diff(running: str, edited: str) -> str:
    """A unified diff from the running config to the edited one (empty when they are the same)."""
    lines = difflib.unified_diff(running.splitlines(keepends=True), edited.splitlines(keepends=True),
                                 "running/config.yaml", "edited/config.yaml")
    return "".join(lines)
