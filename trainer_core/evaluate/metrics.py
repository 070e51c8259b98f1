"""Output-quality metrics of generated answers and of a training run: pure functions on strings and numbers.

Every definition here is the one `docs/evaluate.md` states; change both together. No torch, no I/O.

Text is compared in *units*: after normalisation (NFKC, case folded, punctuation turned into spaces), each CJK
character (Han, kana, CJK punctuation and full-width forms) is one unit and every other run of non-space
characters is one unit (a whitespace word). So English is scored by words and Chinese, which has no spaces, by
characters, and mixed text by both.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence

_CJK = "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0002ebef"
_UNIT = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_FENCE = re.compile(r"```[A-Za-z]*\s*(.*?)\s*```", re.S)

GENERATION_EVENT_KEYS = ("domain_accuracy", "domain_exact_match", "repetition_3gram", "distinct_2", "json_valid_rate",
                         "hit_limit_rate")
"""The scores an `eval` event of kind `generation` carries (eval.generate_every); TensorBoard gets `eval/<key>`."""


def normalise(text: str) -> str:
    """NFKC, case folded, every punctuation character (Unicode category P*) replaced by a space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded)


def units(text: str) -> list[str]:
    """The normalised text as units: one per CJK character, one per whitespace word elsewhere."""
    return _UNIT.findall(normalise(text))


def exact_match(output: str, references: Sequence[str]) -> bool:
    """True when the output's units equal one reference's units (an empty reference never matches)."""
    got = units(output)
    return any(got == want for want in map(units, references) if want)


def contains_match(output: str, references: Sequence[str]) -> bool:
    """True when one reference's units appear as a contiguous run in the output's units.

    Unit boundaries matter: reference `19` is not found in `2019`, `paris` is found in `Paris, France.`
    """
    got = units(output)
    return any(_contains(got, want) for want in map(units, references) if want)


def _contains(seq: list[str], sub: list[str]) -> bool:
    n = len(sub)
    return any(seq[i:i + n] == sub for i in range(len(seq) - n + 1))


def ngrams(seq: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


def repetition_3gram(output: str) -> float | None:
    """1 - unique/total 3-grams of units in one generation; None when it has fewer than 3 units."""
    grams = ngrams(units(output), 3)
    return 1.0 - len(set(grams)) / len(grams) if grams else None


def distinct_2(outputs: Iterable[str]) -> float | None:
    """Unique/total 2-grams of units over all generations together (corpus level); None without any 2-gram."""
    grams = [g for text in outputs for g in ngrams(units(text), 2)]
    return len(set(grams)) / len(grams) if grams else None


def parse_json_answer(text: str) -> object | None:
    """The JSON object or array a text holds, or None.

    The whole text (stripped) must be one JSON object or array, optionally inside one Markdown code fence
    (```json ... ```); text around it makes it invalid, a bare string or number is not a JSON answer.
    """
    body = text.strip()
    fenced = _FENCE.fullmatch(body)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, (dict, list)) else None


def json_valid_rate(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> float | None:
    """Share of outputs that parse as JSON, over the items whose (first) reference is JSON; None if there is none."""
    judged = [parse_json_answer(out) is not None
              for out, refs in zip(outputs, references, strict=True) if refs and parse_json_answer(refs[0]) is not None]
    return sum(judged) / len(judged) if judged else None


def mean_or_none(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def loss_fluctuation(losses: Sequence[float | None]) -> float | None:
    """Sample standard deviation (n - 1) of successive differences of the step loss.

    Missing or non-finite losses (skipped steps) are dropped first; None with fewer than 3 losses left.
    """
    kept = [x for x in losses if x is not None and math.isfinite(x)]
    diffs = [b - a for a, b in zip(kept, kept[1:], strict=False)]
    if len(diffs) < 2:
        return None
    mean = sum(diffs) / len(diffs)
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))


def step_losses(events: Iterable[dict]) -> list[float | None]:
    """The `loss` of every `step` event, in step order (a resumed run's repeated steps keep their last value)."""
    by_step: dict[int, float | None] = {}
    for event in events:
        if event.get("type") == "step" and isinstance(event.get("step"), int):
            by_step[event["step"]] = event.get("loss")
    return [by_step[s] for s in sorted(by_step)]


def match_rates(outputs: Sequence[str], references: Sequence[Sequence[str]],
                labels: Sequence[str] | None = None) -> dict[str, float | None]:
    """Share of answers judged right (`accuracy`), that contain a reference (`contains`) and that equal one
    (`exact_match`); None without answers. `accuracy` is `contains`, except on a label set (`labels`, see
    `metrics.detect_labels`): there an answer is right when it states its reference and no other label."""
    n = len(outputs)
    pairs = list(zip(outputs, references, strict=True))
    contains = sum(contains_match(o, r) for o, r in pairs) / n if n else None
    right = sum(label_match(o, r, labels) for o, r in pairs) / n if n and labels else contains
    return {"accuracy": right, "contains": contains,
            "exact_match": sum(exact_match(o, r) for o, r in pairs) / n if n else None}


def quality_rates(outputs: Sequence[str], references: Sequence[Sequence[str]],
                  hit_limit: Sequence[bool] | None = None) -> dict[str, float | None]:
    """Repetition, diversity, JSON validity and truncation of a set of answers."""
    return {
        "repetition_3gram": mean_or_none(repetition_3gram(o) for o in outputs),
        "distinct_2": distinct_2(outputs),
        "json_valid_rate": json_valid_rate(outputs, references),
        "hit_limit_rate": sum(hit_limit) / len(outputs) if hit_limit is not None and outputs else None,
    }


def generation_metrics(outputs: Sequence[str], references: Sequence[Sequence[str]],
                       hit_limit: Sequence[bool] | None = None,
                       labels: Sequence[str] | None = None) -> dict[str, float | int | None]:
    """The answer and quality metrics of one set of generations with their reference answers (`labels`: the
    set's labels when it is a label set)."""
    return {**match_rates(outputs, references, labels), **quality_rates(outputs, references, hit_limit),
            "items": len(outputs),
            "json_items": sum(1 for r in references if r and parse_json_answer(r[0]) is not None)}


# ------------------------------------------------------------------------------------------ label sets
# Evaluation sets whose answers are a few short labels (`蕴含`, `矛盾`, `中立`; yes/no; a category). "Contains the
# reference" is no test there: `矛盾或中立：蕴含` contains every label it names, and an echo of the question contains
# them all. On a label set an answer is right when it states the reference label and no other label of the set
# (`label_match`). A set is a label set when `eval.labels` declares its labels, or when `detect_labels` finds one.

MIN_ITEMS = 6
"""Fewer items than this are never detected as a label set (too few answers to tell)."""
MAX_LABELS = 12
"""A detected label set has at most this many distinct references..."""
MAX_LABEL_UNITS = 8
"""...each at most this many units long..."""
MAX_SHARE = 0.5
"""...and at most this share of the items as distinct references (every label repeats, on average)."""


def detect_labels(references: Sequence[Sequence[str]]) -> list[str] | None:
    """The labels of a set whose items each have one short reference drawn from a small repeating set, in first
    appearance order; None when the set is not one (free answers, lists of accepted answers, too few items)."""
    if len(references) < MIN_ITEMS or any(len(refs) != 1 for refs in references):
        return None
    labels: dict[tuple[str, ...], str] = {}
    for (ref,) in references:
        key = tuple(units(ref))
        if not key or len(key) > MAX_LABEL_UNITS:
            return None
        labels.setdefault(key, ref)
    if not 2 <= len(labels) <= min(MAX_LABELS, MAX_SHARE * len(references)):
        return None
    return list(labels.values())


def _spans(seq: list[str], sub: list[str]) -> list[tuple[int, int]]:
    n = len(sub)
    return [(i, i + n) for i in range(len(seq) - n + 1) if seq[i:i + n] == sub] if n else []


def label_match(output: str, references: Sequence[str], labels: Sequence[str]) -> bool:
    """True when the output states one of the references and no other label of the set.

    A label found only inside the stated reference does not count (`not entailment` states `not entailment`,
    not also `entailment`)."""
    got = units(output)
    wanted = {tuple(units(r)) for r in references} - {()}
    for ref in wanted:
        own = _spans(got, list(ref))
        if not own:
            continue
        others = (list(lab) for lab in {tuple(units(x)) for x in labels} - wanted - {()})
        if not any(not any(a <= s and e <= b for a, b in own) for other in others for s, e in _spans(got, other)):
            return True
    return False


def label_rule(labels: Sequence[str] | None) -> str:
    """The rule `domain_accuracy` used, in words (report.md and `nlirg eval` print it)."""
    if not labels:
        return "answer contains the reference (normalised units)"
    shown = ", ".join(labels[:MAX_LABELS])
    return f"label set ({shown}): answer states the reference label and no other label"
