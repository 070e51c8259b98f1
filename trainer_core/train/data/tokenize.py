"""Turning normalised records into token ids and target spans, a batch of records at a time.

SFT: the conversation is rendered with the tokenizer's own chat template; each assistant turn is found by
rendering the conversation up to it (with the generation prompt) and up to its end, so the template decides
what the prompt and the answer look like. Every piece (prompt, answer up to its end-of-turn token, the rest) of
every record in the batch goes through the tokenizer's Rust batch encoder in one call, and the labels are the
answer pieces' ids: -100 everywhere else.

CPT: the text, with BOS where the tokenizer adds one and EOS at the end, every token a target.

The template is rendered directly by its compiled Jinja form (what `apply_chat_template` does after converting
its inputs); `Renderer` checks that shortcut against `apply_chat_template` on the first conversation it sees and
falls back to `apply_chat_template` if they ever differ.
"""

from __future__ import annotations

from typing import Any

from trainer_core.data.records import DataError
from trainer_core.train.data.text_bound import cut_messages, text_bound

IGNORE = -100


class Renderer:
    """Renders conversations with a tokenizer's chat template as text."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.checked = False
        self.compiled = None
        try:
            from transformers.utils.chat_template_utils import _compile_jinja_template

            self.compiled = _compile_jinja_template(tokenizer.chat_template)
        except Exception:  # noqa: BLE001 - a template the shortcut cannot compile: apply_chat_template decides
            self.compiled = None
        self.kwargs = dict(tokenizer.special_tokens_map)

    def __call__(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        slow = None
        if self.compiled is None or not self.checked:
            slow = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=add_generation_prompt)
            if self.compiled is None:
                return slow
        fast = self.compiled.render(messages=messages, tools=None, documents=None,
                                    add_generation_prompt=add_generation_prompt, **self.kwargs)
        if not self.checked:
            self.checked = True
            if fast != slow:
                self.compiled = None
                return slow
        return fast


def chat_pieces(render: Renderer, messages: list[dict[str, str]], eot: str, where: str) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, is_target) pieces, in order."""
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        prompt = render(messages[:i], add_generation_prompt=True)
        full = render(messages[: i + 1], add_generation_prompt=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise DataError(f"{where}: the chat template does not render turns as a prefix; cannot mask labels")
        answer = full[len(prompt):]
        cut = answer.find(eot)
        target, rest = (answer[: cut + len(eot)], answer[cut + len(eot):]) if cut >= 0 else (answer, "")
        pieces += [(prompt[len(done):], False), (target, True), (rest, False)]
        done = full
    if messages[-1]["role"] != "assistant":  # turns after the last answer (rare): the template's tail
        pieces.append((render(messages, add_generation_prompt=False)[len(done):], False))
    return [p for p in pieces if p[0]]


def encode_chats(tokenizer, render: Renderer, conversations: list[list[dict[str, str]]], wheres: list[str],
                 ) -> list[tuple[list[int], list[int]]]:
    """(ids, target spans [start, end, start, end, ...]) of every conversation, tokenized in one batch call."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{wheres[0]}: the tokenizer has no chat template; use a chat model or training.type cpt")
    eot = tokenizer.eos_token or "<|im_end|>"
    texts: list[str] = []
    layout: list[list[bool]] = []
    for messages, where in zip(conversations, wheres, strict=True):
        pieces = chat_pieces(render, messages, eot, where)
        texts += [text for text, _ in pieces]
        layout.append([is_target for _, is_target in pieces])
    encoded = _encode_batch(tokenizer, texts)
    out = []
    k = 0
    for flags in layout:
        ids: list[int] = []
        spans: list[int] = []
        for is_target in flags:
            piece = encoded[k]
            k += 1
            if is_target and piece:
                spans += [len(ids), len(ids) + len(piece)]
            ids += piece
        out.append((ids, spans))
    return out


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """CPT document tokens, ended with EOS so the model learns where documents stop."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None and getattr(
        tokenizer, "add_bos_token", False) else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return [bos + ids + eos for ids in _encode_batch(tokenizer, texts)]


def _encode_batch(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of many texts in one call: the Rust encoder directly where the tokenizer has one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def labels_from_spans(ids: list[int], spans: list[int]) -> list[int]:
    labels = [IGNORE] * len(ids)
    for start, end in zip(spans[::2], spans[1::2], strict=True):
        labels[start:end] = ids[start:end]
    return labels


def spans_from_labels(labels: list[int]) -> list[int]:
    spans: list[int] = []
    for t, label in enumerate(labels):
        if label != IGNORE and (t == 0 or labels[t - 1] == IGNORE):
            spans.append(t)
        if label != IGNORE and (t + 1 == len(labels) or labels[t + 1] == IGNORE):
            spans.append(t + 1)
    return spans


def truncate_spans(spans: list[int], length: int) -> list[int]:
    """The spans of a row cut to its first `length` tokens."""
    out: list[int] = []
    for start, end in zip(spans[::2], spans[1::2], strict=True):
        if start < length:
            out += [start, min(end, length)]
    return out


def target_count(spans: list[int]) -> int:
    """Trained tokens of a row: labelled positions t >= 1 (nothing predicts position 0)."""
    return sum(end - max(start, 1) for start, end in zip(spans[::2], spans[1::2], strict=True) if end > 1)


def tokenize_batch(batch: dict[str, list[Any]], indices: list[int], *, tokenizer, kind: str, max_length: int,
                   source: int, file_names: list[str], offset: int = 0) -> dict[str, list[Any]]:
    """`Dataset.map(batched=True)` function: normalised records -> token rows (SFT truncated at max_length)."""
    wheres = [f"{file_names[f]}:{line}" for f, line in zip(batch["file"], batch["line"], strict=True)]
    if kind == "sft":
        for text, where in zip(batch["text"], wheres, strict=True):
            if text is not None:
                raise DataError(f"{where}: a plain-text record in SFT data; use training.type cpt")
        bound = text_bound(tokenizer, max_length)  # a huge answer is cut to what max_length tokens can hold first
        conversations = [cut_messages(messages, bound) for messages in batch["messages"]]
        encoded = encode_chats(tokenizer, _renderer(tokenizer), conversations, wheres)
    else:
        for text, where in zip(batch["text"], wheres, strict=True):
            if text is None:
                raise DataError(f"{where}: a chat record in CPT data; CPT trains on `text` records")
        encoded = [(ids, [0, len(ids)]) for ids in encode_texts(tokenizer, batch["text"])]
    out: dict[str, list[Any]] = {"input_ids": [], "spans": [], "read_tokens": [], "read_targets": [],
                                 "targets": [], "record": [], "source": []}
    for (ids, spans), index in zip(encoded, indices, strict=True):
        out["read_tokens"].append(len(ids))
        out["read_targets"].append(target_count(spans))
        if kind == "sft" and len(ids) > max_length:
            ids, spans = ids[:max_length], truncate_spans(spans, max_length)
        out["input_ids"].append(ids)
        out["spans"].append(spans)
        out["targets"].append(target_count(spans))
        out["record"].append(index + offset)
        out["source"].append(source)
    return out


_RENDERERS: dict[tuple[int, str], Renderer] = {}


def _renderer(tokenizer) -> Renderer:
    """One Renderer per tokenizer per process (map workers each build their own once). The Renderer holds the
    tokenizer, so the id in the key cannot be reused by another tokenizer while the entry lives."""
    key = (id(tokenizer), tokenizer.chat_template or "")
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(tokenizer)
    return _RENDERERS[key]
