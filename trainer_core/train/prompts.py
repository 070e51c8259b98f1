"""A chat prompt as the model sees it, and the tokens that end its answer: shared by everything that makes the
model answer (the generation probe, `nlirg eval`, chat with a training run)."""

from __future__ import annotations

from collections.abc import Sequence

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
"""End-of-turn tokens of common chat templates; those in the vocabulary stop generation besides EOS."""


def stop_token_ids(tokenizer) -> list[int]:
    vocab = tokenizer.get_vocab()
    ids = {tokenizer.eos_token_id, *(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)}
    return sorted(i for i in ids if i is not None)


def encode_prompt(tokenizer, messages: Sequence[dict[str, str]], max_prompt_tokens: int) -> list[int]:
    """The chat template's rendering with the generation prompt; a long prompt keeps its last tokens."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[-max_prompt_tokens:]
