"""A model's shape from its config.json alone (no weights): what the planner's formulas need.

Reads a local folder's config.json (a folder holding only that file works), a hub id's config.json from the local
Hugging Face cache, or a builtin's (the built folder if it exists, else the shape it is built with).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

BUILTIN_SHAPES = {
    "builtin:tiny": {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
                     "tie_word_embeddings": True},
    "builtin:smollm2-135m": {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
                             "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                             "head_dim": 64, "vocab_size": 49152, "tie_word_embeddings": True},
}
"""The builtins' config.json essentials (train/builtin.py builds them with these), for a plan before a build."""


class ShapeError(ValueError):
    """No readable config.json for the model; the message names the path and what to do."""


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qkv_bias: bool
    experts: int = 1
    """MoE: experts per layer (all held in memory); 1 for a dense model."""
    active_experts: int = 1

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear module of one layer, by the name LoRA targets it with."""
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
                "o_proj": (self.q_dim, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def linear_params(self) -> int:
        """Parameters of every layer's linear modules (the part QLoRA quantizes)."""
        attn = sum(a * b for n, (a, b) in self.linears().items() if not n.endswith(("gate_proj", "up_proj",
                                                                                     "down_proj")))
        mlp = 3 * self.hidden * self.intermediate * self.experts
        return self.layers * (attn + mlp)

    def other_params(self) -> int:
        """Embeddings, the LM head when untied, norms and biases: kept unquantized."""
        embed = self.vocab * self.hidden * (1 if self.tied else 2)
        bias = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        return embed + self.layers * (2 * self.hidden + bias) + self.hidden

    def params(self) -> int:
        return self.linear_params() + self.other_params()


def shape_from_config(raw: dict) -> ModelShape:
    """The shape of a transformers config dict (Llama, Qwen2/3, Mistral, Gemma, Phi-3 and other decoder layouts)."""
    text = raw.get("text_config") or raw  # multimodal configs nest the language model's
    try:
        hidden = int(text["hidden_size"])
        heads = int(text["num_attention_heads"])
        layers = int(text["num_hidden_layers"])
        vocab = int(text["vocab_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ShapeError(f"config.json lacks {exc}: not a decoder-only language model the planner knows") from exc
    experts = int(text.get("num_local_experts") or text.get("num_experts") or 1)
    intermediate = int(text.get("moe_intermediate_size") if experts > 1 and text.get("moe_intermediate_size")
                       else text.get("intermediate_size") or 4 * hidden)
    return ModelShape(
        hidden=hidden, intermediate=intermediate, layers=layers, heads=heads,
        kv_heads=int(text.get("num_key_value_heads") or heads),
        head_dim=int(text.get("head_dim") or hidden // heads), vocab=vocab,
        tied=bool(text.get("tie_word_embeddings", raw.get("tie_word_embeddings", False))),
        qkv_bias=bool(text.get("attention_bias") or text.get("model_type") == "qwen2"),
        experts=experts, active_experts=int(text.get("num_experts_per_tok") or 1) if experts > 1 else 1)


def read_model_config(spec: str) -> dict:
    """The config.json of `model.path` as a dict, without loading any weights."""
    if spec.startswith("builtin:"):
        built = _builtin_folder(spec)
        if built is not None and (built / "config.json").is_file():
            return _read(built / "config.json")
        if spec in BUILTIN_SHAPES:
            return dict(BUILTIN_SHAPES[spec])
        raise ShapeError(f"model.path: unknown builtin '{spec}'; known: {', '.join(BUILTIN_SHAPES)}")
    local = Path(spec).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ShapeError(f"model.path: {local} has no config.json; the planner reads only that file")
        return _read(local / "config.json")
    if local.suffix == ".json" and local.is_file():
        return _read(local)
    cached = _hub_cached_config(spec)
    if cached is None:
        raise ShapeError(f"model.path: '{spec}' is no local folder and its config.json is not in the Hugging Face "
                         "cache; give a folder holding its config.json (hf download ID config.json)")
    return _read(cached)


def _read(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShapeError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ShapeError(f"{path}: not a JSON object")
    return raw


def _builtin_folder(spec: str) -> Path | None:
    """Where train/builtin.py keeps a built builtin (its cache rule, read without importing it)."""
    name = spec.removeprefix("builtin:")
    folder = {"tiny": "tiny-v1", "smollm2-135m": "smollm2-135m-v1"}.get(name)
    if folder is None:
        return None
    env = os.environ.get("NLIRG_CACHE_DIR")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "nlirg"
    return root / "models" / folder


def _hub_cached_config(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except (ImportError, ValueError):
        return None
    return Path(found) if isinstance(found, str) else None
