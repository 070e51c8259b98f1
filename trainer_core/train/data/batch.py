"""Samples and batches: the `Sample` a row of tokens becomes, the padded `Batch` the loss step takes, and
`build_samples` for small in-memory sets (training runs go through `prepare`: cached and memory-mapped).

Labels are -100 everywhere except assistant content and its end-of-turn token (every assistant turn
of a multi-turn conversation is a target). Packed CPT rows keep documents apart with a block-diagonal
causal mask and position ids that restart at every segment; padding attends to nothing but itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from trainer_core.data.records import DataError, Record
from trainer_core.train.data.tokenize import IGNORE


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


def encode_chat(tokenizer, messages: list[dict[str, str]], max_length: int, where: str) -> tuple[list, list]:
    """Token ids and labels for one conversation, training every assistant turn (see `tokenize`)."""
    from trainer_core.train.data.tokenize import Renderer, encode_chats, labels_from_spans

    ids, spans = encode_chats(tokenizer, Renderer(tokenizer), [messages], [where])[0]
    labels = labels_from_spans(ids, spans)
    return ids[:max_length], labels[:max_length]


def build_samples(tokenizer, records: list[Record], kind: str, max_length: int, pack_length: int = 0,
                  ) -> tuple[list[Sample], int]:
    """Tokenise a small list of records in memory; return (samples, SFT samples truncated at max_length).

    Training runs use `prepare.prepare_data` (cached, memory-mapped); this is the same encoding for tools and
    tests that hold a few records. CPT documents are never cut short (see `packing`).
    """
    from trainer_core.train.data.packing import cut_rows
    from trainer_core.train.data.tokenize import Renderer, encode_chats, encode_texts, labels_from_spans

    if kind == "sft":
        for rec in records:
            if rec.messages is None:
                raise DataError(f"{rec.where}: a plain-text record in SFT data; use training.type cpt")
        encoded = encode_chats(tokenizer, Renderer(tokenizer), [r.messages for r in records],
                               [r.where for r in records]) if records else []
        samples, truncated = [], 0
        for i, (ids, spans) in enumerate(encoded):
            labels = labels_from_spans(ids, spans)
            truncated += len(ids) > max_length
            sample = Sample(ids[:max_length], labels[:max_length], i)
            if sample.target_count:  # an answer truncated away leaves nothing to train
                samples.append(sample)
        return samples, truncated
    for rec in records:
        if rec.text is None:
            raise DataError(f"{rec.where}: a chat record in CPT data; CPT trains on `text` records")
    docs = list(enumerate(encode_texts(tokenizer, [r.text for r in records]))) if records else []
    if pack_length:
        return pack_documents(docs, pack_length), 0
    return [Sample(row.input_ids, labels_from_spans(row.input_ids, row.spans), row.record)
            for row in cut_rows(docs, max_length, pack=False)], 0


def pack_documents(docs: list[tuple[int, list[int]]], pack_length: int) -> list[Sample]:
    """Documents packed into rows of `pack_length` tokens, every token kept (see `packing.cut_rows`)."""
    from trainer_core.train.data.packing import cut_rows
    from trainer_core.train.data.tokenize import labels_from_spans

    out = []
    for row in cut_rows(docs, pack_length):
        segments = [0] * len(row.input_ids)
        for number, start in enumerate(row.seg_starts):
            segments[start:] = [number] * (len(row.input_ids) - start)
        out.append(Sample(row.input_ids, labels_from_spans(row.input_ids, row.spans), row.record, segments))
    return out


@dataclass
class Batch:
    """A padded micro-batch on the host; `to(device)` moves the tensors."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    """2-D padding mask (B, T), or a 4-D boolean block-diagonal causal mask (B, 1, T, T) for packed rows."""
    position_ids: torch.Tensor
    sample_ids: list[int]
    filler: bool = False
    """A zero-weight batch: run so that every rank runs the same forwards and backwards, trains nothing."""
    input_tokens: int = 0
    """Real (unpadded) tokens in the batch."""
    attention_pairs: int = 0
    """Query-key pairs the causal mask lets attend, summed over every document (MFU counts them)."""
    host_labels: torch.Tensor | None = None
    """The labels' host copy once the batch is on a device: the loss step plans its target positions from it
    (a `nonzero` on a GPU tensor would wait for the GPU)."""

    def to(self, device: torch.device) -> Batch:
        on_host = self.labels.device.type == "cpu"
        return Batch(
            self.input_ids.to(device, non_blocking=True),
            self.labels.to(device, non_blocking=True),
            self.attention_mask.to(device, non_blocking=True),
            self.position_ids.to(device, non_blocking=True),
            self.sample_ids,
            self.filler,
            self.input_tokens,
            self.attention_pairs,
            host_labels=self.labels if on_host else self.host_labels,
        )


def collate(samples: list[Sample], pad_id: int, pad_to_multiple_of: int = 1) -> Batch:
    """Right-pad a list of samples into one batch, its width rounded up to a multiple of `pad_to_multiple_of`."""
    longest = max(len(s.input_ids) for s in samples)
    width = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
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
    ids = [s.sample_id for s in samples]
    tokens = sum(len(s.input_ids) for s in samples)
    pairs = causal_pairs(document_lengths(s) for s in samples)
    if not packed:
        return Batch(input_ids, labels, pad_mask, position_ids, ids, input_tokens=tokens, attention_pairs=pairs)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same_doc = segments[:, :, None] == segments[:, None, :]
    real = (segments >= 0)[:, :, None] & (segments >= 0)[:, None, :]
    mask = causal & same_doc & real
    mask |= torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves only: no NaN softmax
    return Batch(input_ids, labels, mask[:, None], position_ids, ids, input_tokens=tokens, attention_pairs=pairs)


def document_lengths(sample: Sample) -> list[int]:
    """The lengths of the documents in a sample's row (one, unless packed)."""
    if sample.segments is None:
        return [len(sample.input_ids)]
    return [len(list(run)) for _, run in itertools.groupby(sample.segments)]


def causal_pairs(rows: Iterable[list[int]]) -> int:
    """Query-key pairs of causal attention within each document: L(L+1)/2 per document of L tokens."""
    return sum(n * (n + 1) // 2 for lengths in rows for n in lengths)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The sample order of one epoch: a fixed function of (seed, epoch), so resume can find its place."""
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
