"""Answering a chat request with the weights of the moment (docs/chat.md), for the trainer at a step boundary and
for the inference process of a finished run alike.

The answer streams: a `transformers` streamer hands over each new token and `emit` gets the added text every few
tokens. Training goes on exactly where it was: eval mode and no gradient while answering, and every random
number drawn for sampling comes from a forked RNG state that is put back afterwards. With a LoRA model the same
prompt is answered again with the adapter switched off (the base model), and a reference answer the user typed
comes back token by token with the model's loss, NLIRG weight and zone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from trainer_core.config import NlirgParams
from trainer_core.live.chat import ChatRequest, ChatRequestError
from trainer_core.train.data.token_text import token_texts
from trainer_core.train.loss.weights import nlirg_weights, zone_of
from trainer_core.train.prompts import encode_prompt, stop_token_ids

Emit = Callable[[dict[str, Any]], None]
"""Receives each `chat` event's fields (without `request` and `step`, which the caller adds)."""
EMIT_EVERY_TOKENS = 8
EMIT_EVERY_S = 0.25


@dataclass
class Answered:
    model: str
    text: str
    tokens: int
    seconds: float
    hit_limit: bool


class _Streamer:
    """transformers' streamer interface: `put` gets the prompt once, then each new token; `end` closes."""

    def __init__(self, tokenizer, stops: set[int], emit: Callable[[str], None]):
        self.tokenizer, self.stops, self.emit = tokenizer, stops, emit
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False
        self._prompt_seen = False
        self._since = 0
        self._last = time.monotonic()

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():  # host transfer: one token, which generate has synced anyway
            if self.stopped:
                continue
            if token in self.stops:
                self.stopped = True
                continue
            self.ids.append(token)
            self._since += 1
        if self._since >= EMIT_EVERY_TOKENS or time.monotonic() - self._last >= EMIT_EVERY_S:
            self.flush()

    def end(self) -> None:
        self.flush(final=True)

    def text(self, final: bool = False) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        return text if final else text.rstrip("\ufffd")  # a character still cut in half waits for its last byte

    def flush(self, final: bool = False) -> None:
        text = self.text(final)
        if final:
            text = text.rstrip("\ufffd")
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.emit(text[len(self.sent):])
            self.sent = text
        self._since, self._last = 0, time.monotonic()


def has_adapter(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def prompt_ids(tokenizer, request: ChatRequest, max_length: int) -> tuple[list[int], int]:
    """The prompt through the chat template, and how many tokens the answer may have: `max_new_tokens`, cut to
    what `max_length` leaves. A prompt that leaves no room is refused."""
    messages = ([{"role": "system", "content": request.system}] if request.system else [])
    messages.append({"role": "user", "content": request.prompt})
    ids = encode_prompt(tokenizer, messages, max_prompt_tokens=10**9)
    room = max_length - len(ids)
    if room < 1:
        raise ChatRequestError(f"the prompt is {len(ids)} tokens; data.max_length {max_length} leaves no room for "
                               "an answer: shorten it")
    return ids, min(request.max_new_tokens, room)


def _generate(model, tokenizer, ids: list[int], request: ChatRequest, max_new_tokens: int,
              emit: Callable[[str], None], synced_gpus: bool) -> tuple[str, int, bool]:
    from transformers import GenerationConfig

    stops = stop_token_ids(tokenizer)
    streamer = _Streamer(tokenizer, set(stops), emit)
    sampling = request.temperature > 0
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=sampling, eos_token_id=stops, use_cache=True,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0],
        **({"temperature": request.temperature, "top_p": request.top_p} if sampling else {}))
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=config,
                         streamer=streamer, synced_gpus=synced_gpus)
    produced = out.shape[1] - input_ids.shape[1]
    return streamer.text(final=True).rstrip("\ufffd").strip(), produced, not streamer.stopped


def score_reference(model, tokenizer, ids: list[int], reference: str, params: NlirgParams) -> dict[str, Any]:
    """The reference's tokens (and the end-of-turn token the template puts after an answer) under `model`."""
    answer_ids = tokenizer(reference, add_special_tokens=False)["input_ids"]
    stops = stop_token_ids(tokenizer)
    end = [i for i in stops if i != tokenizer.eos_token_id][:1] or stops[:1]
    target = answer_ids + end
    device = next(model.parameters()).device
    full = torch.tensor([ids + target], device=device)
    logits = model(input_ids=full).logits[0, len(ids) - 1:-1].float()
    losses = torch.nn.functional.cross_entropy(logits, full[0, len(ids):], reduction="none")
    weights, zones = nlirg_weights(losses, params), zone_of(losses, params)
    # Host transfers: one answer's tokens, once per request.
    return {"tokens": token_texts(tokenizer, target), "losses": [round(v, 4) for v in losses.tolist()],
            "weights": [round(v, 4) for v in weights.tolist()], "zones": zones.tolist(),
            "mean_loss": round(float(losses.mean()), 4)}


def answer(model, tokenizer, request: ChatRequest, emit: Emit, *, max_length: int, params: NlirgParams,
           device: torch.device, dtype: torch.dtype, synced_gpus: bool = False) -> list[Answered]:
    """Answer `request` with `model` (and its base, for a LoRA model), streaming through `emit`.

    Leaves the model in the mode it found it in and the global RNG state as it was."""
    ids, max_new_tokens = prompt_ids(tokenizer, request, max_length)
    was_training = model.training
    cuda = [device.index or 0] if device.type == "cuda" else []
    answered: list[Answered] = []
    model.eval()
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad(), \
                torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            for name in ("tuned", "base"):
                if name == "base" and not (request.base and has_adapter(model)):
                    continue
                torch.manual_seed(request.seed)
                with model.disable_adapter() if name == "base" else contextlib.nullcontext():
                    started = time.perf_counter()
                    text, tokens, hit_limit = _generate(
                        model, tokenizer, ids, request, max_new_tokens,
                        lambda piece, name=name: emit({"model": name, "text": piece, "done": False}),
                        synced_gpus)
                    seconds = time.perf_counter() - started
                    done: dict[str, Any] = {"model": name, "text": "", "done": True, "answer": text,
                                            "tokens": tokens, "seconds": round(seconds, 3), "hit_limit": hit_limit}
                    if name == "tuned" and request.reference:
                        done["reference"] = score_reference(model, tokenizer, ids, request.reference, params)
                    emit(done)
                answered.append(Answered(name, text, tokens, seconds, hit_limit))
    finally:
        if was_training:
            model.train()
    return answered
