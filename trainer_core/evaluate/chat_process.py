"""The chat of a run that no longer trains (docs/chat.md): `python -m trainer_core.evaluate.chat_process TARGET`
loads its final/ or a checkpoint with the inference loader, keeps a LoRA adapter unmerged (so the base model's
answer is the same weights with the adapter switched off), and answers requests as a live trainer would.

Lines in (stdin): a request's args as JSON with an `id`. Lines out (stdout): `{"type": "ready", ...}` once the
model is loaded, then for each request its `chat` events and an `ack`, as the live protocol's (docs/live.md).
A load that fails is one `{"type": "error"}` line and exit 2; a bad request is an ack with ok false.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from trainer_core.config import ModelConfig, NlirgParams
from trainer_core.evaluate.inference import LOAD_ERRORS, load_target_tokenizer, model_settings
from trainer_core.evaluate.targets import Target, TargetError, resolve_target
from trainer_core.live.chat import ChatRequestError, append_history, parse_chat_args
from trainer_core.train.chat_answer import answer
from trainer_core.train.loop import pick_device
from trainer_core.train.model.load import ModelLoadError, compute_dtype, resolve


def _write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def load_unmerged(target: Target, device: torch.device):
    """(model, tokenizer, dtype): like the inference loader, but a LoRA adapter stays an adapter."""
    from transformers import AutoModelForCausalLM

    cfg = model_settings(target)
    tokenizer = load_target_tokenizer(target, cfg)
    dtype = compute_dtype(cfg, device)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            resolve(ModelConfig(path=target.model)), dtype=dtype, attn_implementation=cfg.attn_implementation,
            trust_remote_code=cfg.trust_remote_code)
        if target.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, target.adapter)
    except LOAD_ERRORS as exc:
        text = str(exc).strip().splitlines()
        raise ModelLoadError(f"cannot load {target.describe()}: {text[0] if text else type(exc).__name__}") from exc
    return model.to(device).eval(), tokenizer, dtype


def serve_requests(target: Target) -> int:
    device = pick_device()
    model, tokenizer, dtype = load_unmerged(target, device)
    cfg = target.config
    max_length = cfg.data.max_length if cfg is not None else 2048
    params = cfg.nlirg if cfg is not None else NlirgParams()
    step = _step_of(target)
    _write({"type": "ready", "model": target.describe(), "step": step})
    for line in sys.stdin:
        if not line.strip():
            continue
        request_id, error = None, None
        try:
            raw = json.loads(line)
            request_id = raw.pop("id", None) if isinstance(raw, dict) else None
            request = parse_chat_args(raw if isinstance(raw, dict) else {})
            answered = answer(model, tokenizer, request,
                              lambda fields, rid=request_id: _write({"type": "chat", "request": rid, "step": step,
                                                                     **fields}),
                              max_length=max_length, params=params, device=device, dtype=dtype)
            if target.run_dir is not None:
                entry = {"step": step, "checkpoint": target.spec, **request.args()}
                for a in answered:
                    entry["answer" if a.model == "tuned" else "base_answer"] = a.text
                append_history(target.run_dir, entry)
        except (json.JSONDecodeError, ChatRequestError) as exc:
            error = str(exc)
        _write({"type": "ack", "id": request_id, "ok": error is None, "error": error, "applied_at_step": step})
    return 0


def _step_of(target: Target) -> int | None:
    name = Path(target.adapter or target.model).name
    return int(name.split("-", 1)[1]) if name.startswith("step-") and name[5:].isdigit() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a run (its final/), a checkpoint folder, a model folder or a builtin")
    parser.add_argument("--root", default="runs")
    args = parser.parse_args(argv)
    try:
        return serve_requests(resolve_target(args.target, Path(args.root)))
    except (TargetError, ModelLoadError) as exc:
        _write({"type": "error", "message": str(exc)})
        return 2


if __name__ == "__main__":
    sys.exit(main())
