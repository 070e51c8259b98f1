"""Inspector token texts: byte-level pieces of one character are decoded together, never shown as U+FFFD."""

from trainer_core.train.data.token_text import token_texts


def test_split_characters_appear_once_on_the_completing_token(tiny_tokenizer):
    text = "<|im_start|>user\n保修期是两年吗？🙂 Yes, 2 years.<|im_end|>\n"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    texts = token_texts(tiny_tokenizer, ids)
    assert len(texts) == len(ids)
    assert "".join(texts) == tiny_tokenizer.decode(ids) == text
    assert "\ufffd" not in "".join(texts)
    assert any(t == "" for t in texts)  # this tokenizer does split some of these characters over tokens
    assert texts[0] == "<|im_start|>" and texts[-2:] == ["<|im_end|>", "\n"]


def test_a_truncated_character_is_replaced_not_lost(tiny_tokenizer):
    ids = tiny_tokenizer("🙂", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1
    texts = token_texts(tiny_tokenizer, ids[:-1])  # the sample was cut inside the emoji
    assert len(texts) == len(ids) - 1 and "".join(texts) == "\ufffd"
