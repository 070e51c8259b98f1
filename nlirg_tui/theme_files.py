"""Themes are data: JSON files in the top-level `themes/` folder, shipped inside the wheel as
`nlirg_tui/themes/` (pyproject maps the folder there), turned into Textual `Theme` objects here."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from textual.theme import Theme

DEFAULT_THEME = "nlirg-dark"
THEME_KEYS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "warning",
              "error", "success", "dark")


def themes_dir() -> Path:
    """Installed: the package's data folder. From a source checkout: the repository's `themes/`."""
    packaged = Path(str(resources.files("nlirg_tui"))) / "themes"
    if packaged.is_dir() and any(packaged.glob("*.json")):
        return packaged
    return Path(__file__).resolve().parent.parent / "themes"


def load_theme(path: Path) -> Theme:
    """One theme file; a broken file names itself and the key at fault."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON theme ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data.get("primary"):
        raise ValueError(f"{path}: a theme needs at least \"name\" and \"primary\"")
    unknown = set(data) - {"name", *THEME_KEYS}
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: name, {', '.join(THEME_KEYS)}")
    return Theme(**data)


def bundled_themes() -> list[Theme]:
    return [load_theme(p) for p in sorted(themes_dir().glob("*.json"))]
