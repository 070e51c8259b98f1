"""`data.max_length` (and `data.pack_length`) against the model's context: a longer row than the model has
positions for is never trained; the setting is capped to the context with a warning."""

from __future__ import annotations

from typing import Any

from trainer_core.config import RunConfig

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
"""Where model configs keep their context length, in the order they are tried."""


def model_context(path: str, trust_remote_code: bool = False) -> int | None:
    """The model's context in tokens, read from its config.json (None when it names none)."""
    from transformers import AutoConfig

    try:
        conf: Any = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - the model load that follows reports what is wrong, in one line
        return None
    text = conf.get_text_config() if hasattr(conf, "get_text_config") else conf
    for key in CONTEXT_KEYS:
        value = getattr(text, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def fit_to_context(cfg: RunConfig, context: int | None) -> list[str]:
    """Cap data.max_length and data.pack_length (in place) to `context`; one warning per setting capped."""
    if context is None:
        return []
    warnings = []
    for key in ("max_length", "pack_length"):
        value = getattr(cfg.data, key)
        if value > context:
            setattr(cfg.data, key, context)
            warnings.append(f"data.{key}: {value} is above the model's context ({context} tokens); using {context}")
    return warnings
