"""Where `model.path` points, checked before anything is loaded: a local folder with its config.json, or a hub id
that is in the local Hugging Face cache or can be downloaded now.

The check runs in the CLI before a run directory exists (so a wrong path leaves nothing behind) and again in the
trainer (runs started from the workbench). Without it a missing config.json surfaced as a cut-off transformers
message, and an unknown hub id on a machine without network as 48 s of retries and 24 lines. Torch-free.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

HUB_PROBE_TIMEOUT_S = 3.0
"""How long to wait for the hub to answer a connect before deciding the machine is offline."""
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class ModelLoadError(RuntimeError):
    """The model or tokenizer cannot be loaded; the message says which and what to do."""


def check_model_source(spec: str) -> None:
    """Raise ModelLoadError, in one line, for a `model.path` that cannot load; go offline when the hub is
    unreachable but the model is cached, so transformers never waits on retries."""
    if spec.startswith("builtin:"):
        return
    local = Path(spec).expanduser()
    if local.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        _check_folder(spec, local)
        return
    if _hub_offline() or not _hub_reachable():
        _go_offline()  # before huggingface_hub is first imported (it reads the switch once, at import)
        if not _cached(spec):
            raise ModelLoadError(
                f"model.path: '{spec}' is not a local folder and not in the Hugging Face cache ({_cache_dir()}), and "
                "the hub cannot be reached: download it where there is network (hf download "
                f"{spec}) and copy the cache here, or set model.path to a local folder")


def _go_offline() -> None:
    """Load from the cache with no retries: in this process and in the trainer, which inherits the variable."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported already (the switch is a module constant read at import)
        constants.HF_HUB_OFFLINE = True


def _check_folder(spec: str, local: Path) -> None:
    if not local.is_dir():
        raise ModelLoadError(f"model.path: {spec} does not exist (a local model folder, a hub id like "
                             "HuggingFaceTB/SmolLM2-135M, or builtin:tiny)")
    if not (local / "config.json").is_file():
        raise ModelLoadError(f"model.path: {local} has no config.json: point it at a folder written by "
                             "save_pretrained (config.json, the weights and the tokenizer files)")


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id: never in the cache
        return False


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_reachable() -> bool:
    """Whether the hub's host takes a TCP connection (assumed yes behind a proxy, which this cannot probe)."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)
