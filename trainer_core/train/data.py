"""Tokenised datasets: chat-template SFT samples with assistant-only labels, CPT documents, packing,
and the collate functions that build padded batches.

Labels are -100 everywhere except assistant content and its end-of-turn token (every assistant turn
of a multi-turn conversation is a target). CPT packing keeps documents apart with a block-diagonal
causal mask and position ids that restart at every document; padding attends to nothing but itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from trainer_core.train.records import DataError, Record

IGNORE = -100


@dataclass
class Sample:
    """One tokenised row: a chat sample, one CPT document, or a pack of documents."""

    input_ids: list[int]
    labels: list[int]
    sample_id: int
    """Index of the (first) record this row came from."""
    segments: list[int] | None = None
    """Packed rows: document number per token (block-diagonal attention); None for unpacked rows."""

    @property
    def target_count(self) -> int:
        return sum(1 for x in self.labels[1:] if x != IGNORE)


def _render(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _end_of_turn(tokenizer) -> str:
    return tokenizer.eos_token or "<|im_end|>"


def encode_chat(tokenizer, messages: list[dict[str, str]], max_length: int, where: str) -> tuple[list, list]:
    """Token ids and labels for a conversation, training every assistant turn.

    The text is rendered with the tokenizer's own chat template; each assistant turn is found by
    rendering the conversation up to it (with the generation prompt) and up to its end, so the
    template decides what the prompt and the answer look like.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{where}: the tokenizer has no chat template; use a chat model or training.type cpt")
    eot = _end_of_turn(tokenizer)
    pieces: list[tuple[str, bool]] = []  # (text, is_target)
    done = ""
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], add_generation_prompt=True)
        full = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise DataError(f"{where}: the chat template does not render turns as a prefix; cannot mask labels")
        answer = full[len(prompt):]
        cut = answer.find(eot)
        target, rest = (answer[: cut + len(eot)], answer[cut + len(eot):]) if cut >= 0 else (answer, "")
        pieces += [(prompt[len(done):], False), (target, True), (rest, False)]
        done = full
    tail = _render(tokenizer, messages, add_generation_prompt=False)[len(done):]
    pieces.append((tail, False))
    ids: list[int] = []
    labels: list[int] = []
    for text, is_target in pieces:
        if not text:
            continue
        tok = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += tok
        labels += tok if is_target else [IGNORE] * len(tok)
    return ids[:max_length], labels[:max_length]


def encode_text(tokenizer, text: str) -> list[int]:
    """CPT document tokens, ended with EOS so the model learns where documents stop."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False):
        ids = [tokenizer.bos_token_id] + ids
    if tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    return ids


def build_samples(tokenizer, records: list[Record], kind: str, max_length: int, pack_length: int = 0,
                  ) -> tuple[list[Sample], int]:
    """Tokenise records into samples; return (samples, number truncated)."""
    samples: list[Sample] = []
    truncated = 0
    if kind == "sft":
        for i, rec in enumerate(records):
            if rec.messages is None:
                raise DataError(f"{rec.where}: a plain-text record in SFT data; use training.type cpt")
            ids, labels = encode_chat(tokenizer, rec.messages, 10**9, rec.where)
            if len(ids) > max_length:
                truncated += 1
                ids, labels = ids[:max_length], labels[:max_length]
            sample = Sample(ids, labels, i)
            if sample.target_count == 0:
                continue  # the answer was truncated away: nothing to train
            samples.append(sample)
        return samples, truncated
    docs: list[tuple[int, list[int]]] = []
    for i, rec in enumerate(records):
        if rec.text is None:
            raise DataError(f"{rec.where}: a chat record in CPT data; CPT trains on `text` records")
        ids = encode_text(tokenizer, rec.text)
        limit = pack_length or max_length
        if len(ids) > limit:
            truncated += 1
            ids = ids[:limit]
        docs.append((i, ids))
    if not pack_length:
        return [Sample(ids, list(ids), i) for i, ids in docs if len(ids) > 1], truncated
    return pack_documents(docs, pack_length), truncated


def pack_documents(docs: list[tuple[int, list[int]]], pack_length: int) -> list[Sample]:
    """Greedy first-fit packing in order; a document never spans two rows."""
    rows: list[Sample] = []
    ids: list[int] = []
    segs: list[int] = []
    first = 0
    for doc_no, (i, doc) in enumerate(docs):
        if ids and len(ids) + len(doc) > pack_length:
            rows.append(Sample(ids, list(ids), first, segs))
            ids, segs = [], []
        if not ids:
            first = i
        ids += doc
        segs += [doc_no] * len(doc)
    if ids:
        rows.append(Sample(ids, list(ids), first, segs))
    # A label never crosses a document boundary: the first token of a document is not predicted
    # from the previous document's last token.
    for row in rows:
        assert row.segments is not None
        for t in range(1, len(row.labels)):
            if row.segments[t] != row.segments[t - 1]:
                row.labels[t] = IGNORE
    return rows


@dataclass
class Batch:
    """A padded micro-batch on the host; `to(device)` moves the tensors."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    """2-D padding mask (B, T), or a 4-D boolean block-diagonal causal mask (B, 1, T, T) for packed rows."""
    position_ids: torch.Tensor
    sample_ids: list[int]

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.input_ids.to(device, non_blocking=True),
            self.labels.to(device, non_blocking=True),
            self.attention_mask.to(device, non_blocking=True),
            self.position_ids.to(device, non_blocking=True),
            self.sample_ids,
        )


def collate(samples: list[Sample], pad_id: int) -> Batch:
    """Right-pad a list of samples into one batch."""
    width = max(len(s.input_ids) for s in samples)
    n = len(samples)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    packed = any(s.segments is not None for s in samples)
    segments = torch.full((n, width), -1, dtype=torch.long)
    pad_mask = torch.zeros((n, width), dtype=torch.long)
    for r, s in enumerate(samples):
        length = len(s.input_ids)
        input_ids[r, :length] = torch.tensor(s.input_ids)
        labels[r, :length] = torch.tensor(s.labels)
        pad_mask[r, :length] = 1
        if s.segments is not None:
            seg = torch.tensor(s.segments)
            segments[r, :length] = seg
            starts = torch.ones(length, dtype=torch.bool)
            starts[1:] = seg[1:] != seg[:-1]
            begin = torch.cummax(torch.where(starts, torch.arange(length), torch.zeros(length, dtype=torch.long)),
                                 dim=0).values
            position_ids[r, :length] = torch.arange(length) - begin
        else:
            segments[r, :length] = 0
            position_ids[r, :length] = torch.arange(length)
    if not packed:
        return Batch(input_ids, labels, pad_mask, position_ids, [s.sample_id for s in samples])
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same_doc = segments[:, :, None] == segments[:, None, :]
    real = (segments >= 0)[:, :, None] & (segments >= 0)[:, None, :]
    mask = causal & same_doc & real
    mask |= torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves only: no NaN softmax
    return Batch(input_ids, labels, mask[:, None], position_ids, [s.sample_id for s in samples])


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The sample order of one epoch: a fixed function of (seed, epoch), so resume can find its place."""
    order = list(range(n))
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def split_eval(records: list[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Hold out a deterministic share of the records for evaluation."""
    if fraction <= 0 or len(records) < 2:
        return records, []
    idx = list(range(len(records)))
    random.Random(seed).shuffle(idx)
    n_eval = max(1, int(round(len(records) * fraction)))
    held = set(idx[:n_eval])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]
