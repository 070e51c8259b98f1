"""The user's settings (`$XDG_CONFIG_HOME/nlirg/settings.json`): today the chosen theme."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trainer_core.atomic import write_atomic


def settings_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nlirg" / "settings.json"


def load_settings() -> dict[str, Any]:
    """The saved settings; a missing or broken file means defaults (settings are a convenience, not data)."""
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def save_setting(key: str, value: Any) -> None:
    path = settings_path()
    data = load_settings()
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2) + "\n")
