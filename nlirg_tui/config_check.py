"""Validating config text as the user types, with the trainer's own rules and messages (torch-free)."""

from __future__ import annotations

import difflib

from trainer_core.config import ConfigError, RunConfig, config_from_dict
from trainer_core.config.yaml_text import YamlTextError, load_yaml


def check_config_text(text: str) -> tuple[RunConfig | None, list[str]]:
    """The config and no problems, or None and one line per problem, each led by its key path (or line)."""
    try:
        raw = load_yaml(text)
    except YamlTextError as exc:
        return None, [str(exc)]
    try:
        return config_from_dict(raw if raw is not None else {}, "config"), []
    except ConfigError as exc:
        return None, list(exc.problems)


def config_diff(running: str, edited: str) -> str:
    """A unified diff from the running config to the edited one (empty when they are the same)."""
    lines = difflib.unified_diff(running.splitlines(keepends=True), edited.splitlines(keepends=True),
                                 "running/config.yaml", "edited/config.yaml")
    return "".join(lines)
