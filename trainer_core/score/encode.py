"""Records to scoring items: the training encoding (chat template, assistant-only labels; `tokenize`, one batch
call to the tokenizer), cut to --max-length, plus, for `ifd`, the same answers after an empty prompt."""

from __future__ import annotations

from dataclasses import dataclass

from trainer_core.data.records import DataError, Record
from trainer_core.train.data.batch import Sample
from trainer_core.train.data.tokenize import IGNORE, Renderer, encode_chats, encode_texts, labels_from_spans


@dataclass
class ScoreItem:
    """One record, tokenised the way the trainer would see it."""

    index: int
    """Position of the record in read order: scores are paired with records by this, never by list order."""
    record: Record
    input_ids: list[int]
    labels: list[int]
    truncated: bool
    """The sample was longer than --max-length; the tokens past it are neither seen nor scored."""
    empty_answer: bool
    """Every answer of the record is blank (only end-of-turn tokens are targets)."""
    bare: Sample | None = None
    """ifd: the answers after an empty user turn (no system prompt, no question)."""

    @property
    def answer_tokens(self) -> int:
        return sum(1 for x in self.labels[1:] if x != IGNORE)

    def sample(self) -> Sample:
        return Sample(self.input_ids, self.labels, self.index)


def _bare_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Every assistant turn, each after an empty user turn: the answers with no prompt to lean on."""
    out: list[dict[str, str]] = []
    for msg in messages:
        if msg["role"] == "assistant":
            out += [{"role": "user", "content": ""}, msg]
    return out


def _cut(ids: list[int], labels: list[int], max_length: int) -> tuple[list[int], list[int], bool]:
    return ids[:max_length], labels[:max_length], len(ids) > max_length


def _empty(record: Record) -> bool:
    if record.messages is None:
        return not (record.text or "").strip()
    return not any(m["role"] == "assistant" and m["content"].strip() for m in record.messages)


def _encode_chats(tokenizer, render: Renderer, records: list[Record], bare: bool) -> list[tuple[list, list]]:
    if not records:
        return []
    conversations = [_bare_messages(r.messages) if bare else r.messages for r in records]
    return [(ids, labels_from_spans(ids, spans)) for ids, spans in
            encode_chats(tokenizer, render, conversations, [r.where for r in records])]


def plain_text_error(where: str) -> str:
    """ifd compares the answer with and without its prompt: plain text has none."""
    return (f"{where}: mode ifd needs prompt/answer records; this one is plain text (score plain text with --mode "
            "auto, divergence, similarity_rank or filtered_rank)")


def encode_records(tokenizer, records: list[Record], max_length: int, with_bare: bool, start: int = 0,
                   ) -> list[ScoreItem]:
    """Every record as an item, in read order, indexed from `start`; chats and texts each go to the tokenizer in
    one batch."""
    chats = [r for r in records if r.messages is not None]
    texts = [r for r in records if r.messages is None]
    if with_bare and texts:
        raise DataError(plain_text_error(texts[0].where))
    render = Renderer(tokenizer)
    encoded = iter(_encode_chats(tokenizer, render, chats, bare=False))
    bares = iter(_encode_chats(tokenizer, render, chats, bare=True) if with_bare else [])
    documents = iter(encode_texts(tokenizer, [r.text or "" for r in texts]) if texts else [])
    items = []
    for index, record in enumerate(records, start):
        if record.messages is None:
            ids = next(documents)
            ids, labels, truncated = _cut(ids, list(ids), max_length)
        else:
            ids, labels, truncated = _cut(*next(encoded), max_length)
        item = ScoreItem(index, record, ids, labels, truncated, _empty(record))
        if with_bare:
            bare_ids, bare_labels, _ = _cut(*next(bares), max_length)
            item.bare = Sample(bare_ids, bare_labels, index)
        items.append(item)
    return items
