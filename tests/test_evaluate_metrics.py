"""Output-quality metrics on hand-made generations whose answers are known (docs/evaluate.md)."""

from __future__ import annotations

import math

import pytest

from trainer_core.evaluate import metrics as m


def test_units_split_words_and_cjk_characters():
    assert m.units("Hello,  World!") == ["hello", "world"]
    assert m.units("退货期限是 30 天。") == ["退", "货", "期", "限", "是", "30", "天"]
    assert m.units("The Smart Plug P1 只支持 2.4 GHz") == ["the", "smart", "plug", "p1", "只", "支", "持", "2", "4",
                                                            "ghz"]
    assert m.units("ＡＢＣ１２") == ["abc12"]  # full-width letters fold to ASCII (NFKC)


def test_exact_match_normalises_case_space_and_punctuation():
    assert m.exact_match("  Paris. ", ["paris"])
    assert m.exact_match("北京。", ["北京"])
    assert not m.exact_match("Paris, France", ["Paris"])
    assert m.exact_match("Paris, France", ["Lyon", "paris france"])  # any accepted reference
    assert not m.exact_match("", [""])  # an empty reference never matches


def test_contains_match_respects_unit_boundaries():
    assert m.contains_match("The answer is 19.", ["19"])
    assert not m.contains_match("It happened in 2019.", ["19"])
    assert m.contains_match("Basic keeps clips for 7 days.", ["7 days", "seven days"])
    assert not m.contains_match("Basic keeps clips for 7 weeks.", ["7 days"])
    assert m.contains_match("基础版会保存7天的片段", ["7 天"])  # the same units with or without the space
    assert not m.contains_match("保存七十天", ["七天"])


def test_repetition_3gram_counts_repeated_trigrams():
    assert m.repetition_3gram("a b c d e") == 0.0
    # "a b a b a b": trigrams aba, bab, aba, bab -> 2 unique of 4
    assert m.repetition_3gram("a b a b a b") == pytest.approx(0.5)
    # Chinese by characters: 好好好好好 -> trigrams 好好好 x3, 1 unique of 3
    assert m.repetition_3gram("好好好好好") == pytest.approx(2 / 3)
    assert m.repetition_3gram("too short") is None


def test_distinct_2_is_corpus_level():
    # "a b c" -> ab, bc; "a b d" -> ab, bd: 3 distinct of 4
    assert m.distinct_2(["a b c", "a b d"]) == pytest.approx(0.75)
    assert m.distinct_2(["x", ""]) is None


def test_json_answers():
    assert m.parse_json_answer('{"a": 1}') == {"a": 1}
    assert m.parse_json_answer('```json\n[1, 2]\n```') == [1, 2]
    assert m.parse_json_answer('Sure: {"a": 1}') is None  # text around the JSON
    assert m.parse_json_answer("42") is None  # a bare number is not a JSON answer
    refs = [['{"k": 1}'], ["plain answer"], ["[1]"]]
    outs = ['{"k": 2}', "not json", "oops [1"]
    assert m.json_valid_rate(outs, refs) == pytest.approx(0.5)  # judged on the 2 JSON items only
    assert m.json_valid_rate(["x"], [["y"]]) is None


def test_loss_fluctuation_is_the_sample_std_of_successive_differences():
    losses = [3.0, 2.0, 2.5, 1.5, None, 1.0]  # None: a skipped step, dropped
    diffs = [-1.0, 0.5, -1.0, -0.5]
    mean = sum(diffs) / 4
    expected = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
    assert m.loss_fluctuation(losses) == pytest.approx(expected)
    assert m.loss_fluctuation([1.0, 2.0]) is None
    assert m.loss_fluctuation([1.0, 2.0, 3.0]) == 0.0  # a steady descent does not fluctuate


def test_step_losses_keep_the_last_value_of_a_repeated_step():
    events = [{"type": "step", "step": 1, "loss": 3.0}, {"type": "eval", "step": 1, "eval_loss": 9.0},
              {"type": "step", "step": 2, "loss": 2.0}, {"type": "step", "step": 2, "loss": 2.5},
              {"type": "step", "step": 3, "loss": 1.0}]
    assert m.step_losses(events) == [3.0, 2.5, 1.0]


def test_generation_metrics_of_a_small_set():
    outputs = ["The answer is 4.", "北京", "yes yes yes yes yes", '{"city": "Tokyo"}']
    refs = [["4"], ["北京"], ["no"], ['{"city": "Tokyo", "country": "Japan"}']]
    got = m.generation_metrics(outputs, refs, [False, False, True, False])
    assert got["accuracy"] == pytest.approx(0.5)  # 4 and 北京; the JSON answer lacks the country
    assert got["exact_match"] == pytest.approx(0.25)  # only 北京
    assert got["json_valid_rate"] == 1.0 and got["json_items"] == 1
    assert got["hit_limit_rate"] == 0.25
    # repetition: "the answer is 4" 0; 北京 too short; yes x5 -> 2/3; {"city": "Tokyo"} -> city tokyo: too short
    assert got["repetition_3gram"] == pytest.approx((0 + 2 / 3) / 2)


def test_a_label_set_counts_an_answer_right_only_when_it_names_the_reference_alone():
    """Y-Trainer-style NLI labels. Answers that name every label (or echo the question) contain the reference:
    containment says 0.75 though no answer is right; the label rule says 0."""
    from trainer_core.evaluate.metrics import detect_labels

    refs = [["蕴含"], ["矛盾"], ["中立"], ["蕴含"], ["矛盾"], ["中立"], ["蕴含"], ["矛盾"]]
    outputs = ["矛盾或中立：蕴含"] * 4 + ["前提与假设：是蕴含、矛盾还是中立？"] * 2 + ["不知道", "无法判断"]
    labels = detect_labels(refs)
    assert labels == ["蕴含", "矛盾", "中立"]
    rates = m.match_rates(outputs, refs, labels)
    assert rates["contains"] == 0.75 and rates["accuracy"] == 0.0 and rates["exact_match"] == 0.0
    right = m.match_rates(["答案：蕴含。", "矛盾", "蕴含"] + outputs[3:], refs, labels)
    assert right["accuracy"] == 2 / 8 and right["exact_match"] == 1 / 8  # the third names the wrong label
    assert m.match_rates(outputs, refs)["accuracy"] == 0.75  # without labels: containment, as before


def test_label_detection_and_nested_labels():
    from trainer_core.evaluate.metrics import detect_labels, label_match

    assert detect_labels([["Paris"], ["Berlin"], ["Rome"], ["Madrid"], ["Oslo"], ["Bern"]]) is None  # no repeats
    assert detect_labels([["yes"], ["no"]] * 2) is None  # too few items to tell
    assert detect_labels([["yes", "y"], ["no"]] * 4) is None  # accepted-answer lists: not a label set
    labels = ["entailment", "not entailment"]
    assert label_match("Not entailment.", ["not entailment"], labels)
    assert not label_match("entailment", ["not entailment"], labels)
    assert label_match("It is entailment", ["entailment"], labels)
