"""The config a relaunch starts with: the few values an experienced user changes before a relaunch (max steps, LR,
NLIRG on/off, any other key) applied to the config text as `--set` overrides, the CLI's own path, and checked with
the trainer's rules; what the relaunch dialog shows of the rest (torch-free)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from trainer_core.config import ConfigError, RunConfig, config_from_dict
from trainer_core.config.parse import apply_overrides
from trainer_core.config.yaml_text import YamlTextError, load_yaml


@dataclass
class RelaunchEdit:
    """What the user typed in the relaunch dialog, as text (checked by `edited_config`)."""

    max_steps: str
    lr: str
    nlirg: bool
    more: str = ""
    """Further `KEY=VALUE` overrides, separated by spaces (quoted as in a shell)."""

    @classmethod
    def of(cls, cfg: RunConfig) -> RelaunchEdit:
        return cls(str(cfg.training.max_steps), f"{cfg.training.lr:g}", cfg.nlirg.enabled)

    def overrides(self) -> list[str]:
        """The `--set` lines; ValueError for an unbalanced quote in `more`."""
        return [f"training.max_steps={self.max_steps.strip()}", f"training.lr={self.lr.strip()}",
                f"nlirg.enabled={'true' if self.nlirg else 'false'}", *shlex.split(self.more)]


def edited_config(text: str, edit: RelaunchEdit, resumes_at: int | None = None) -> tuple[RunConfig | None, str]:
    """`text` with `edit` applied and checked: the config and no problem, or None and one line naming the key.
    `resumes_at`: the step the new run resumes at (None: fresh weights), for a max_steps that leaves nothing."""
    try:
        raw = load_yaml(text) or {}
        cfg = config_from_dict(apply_overrides(raw, edit.overrides()), "relaunch")
    except ConfigError as exc:
        more = len(exc.problems) - 1
        return None, exc.problems[0] + (f" (+{more} more)" if more > 0 else "")
    except (YamlTextError, ValueError) as exc:  # ValueError: shlex on an open quote
        return None, f"--set: {exc}"
    steps = cfg.training.max_steps
    if resumes_at is not None and 0 < steps <= resumes_at:
        return None, (f"training.max_steps: {steps} leaves nothing to train after step {resumes_at}, where the "
                      "resume starts; raise it or choose fresh weights")
    return cfg, ""


def model_line(cfg: RunConfig) -> str:
    """`builtin:smollm2-135m · LoRA r=16` or `... · full fine-tune`."""
    how = f"LoRA r={cfg.lora.r}" if cfg.lora.enabled else "full fine-tune"
    return f"{cfg.model.path} · {how}"


def data_line(cfg: RunConfig) -> str:
    """The training files by name (a cleaned copy reads `NAME.clean.EXT`), then the eval files, if any."""
    train = ", ".join(_source_name(e) for e in cfg.data.train) or "-"
    evals = ", ".join(_source_name(e) for e in cfg.data.eval)
    return train + (f" · eval {evals}" if evals else "")


def steps_hint(cfg: RunConfig) -> str:
    """What max steps 0 means for this config."""
    return f"0 = {cfg.training.epochs:g} epoch(s)"


def _source_name(entry: object) -> str:
    path = entry.get("path") if isinstance(entry, dict) else entry
    text = str(path)
    return text if text.startswith("builtin:") else Path(text).name
