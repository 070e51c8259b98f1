"""An Ollama Modelfile beside the GGUF: its chat template in Ollama's Go template syntax, the system prompt,
and the stop tokens. The template is read off the tokenizer's own chat template by rendering it: a ChatML
layout (`<|im_start|>role\\n...<|im_end|>\\n`, Qwen and SmolLM2) is written out; for any other layout the
Modelfile leaves TEMPLATE out and Ollama uses the chat template stored in the GGUF's metadata."""

from __future__ import annotations

MARK = "\x00NLIRG\x00"
CHATML_TEMPLATE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n"
)


def modelfile(gguf_name: str, tokenizer, system_prompt: str | None) -> str:
    chatml = is_chatml(tokenizer)
    system = system_prompt or (default_system(tokenizer) if chatml else None)
    lines = [f"FROM ./{gguf_name}", ""]
    if chatml:
        lines += [f'TEMPLATE """{CHATML_TEMPLATE}"""', ""]
    else:
        lines += ["# TEMPLATE: the chat template in the GGUF's metadata (not a ChatML layout)", ""]
    if system:
        lines += [f'SYSTEM """{system}"""', ""]
    for stop in stop_tokens(tokenizer, chatml):
        lines.append(f'PARAMETER stop "{stop}"')
    return "\n".join(lines) + "\n"


def _render(tokenizer, messages: list[dict[str, str]], generation: bool = False) -> str | None:
    if not tokenizer.chat_template:
        return None
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    except Exception:  # noqa: BLE001 - a template that cannot render a plain conversation is not ChatML
        return None


def is_chatml(tokenizer) -> bool:
    text = _render(tokenizer, [{"role": "system", "content": "S" + MARK}, {"role": "user", "content": "U" + MARK}],
                   generation=True)
    return text == (f"<|im_start|>system\nS{MARK}<|im_end|>\n<|im_start|>user\nU{MARK}<|im_end|>\n"
                    "<|im_start|>assistant\n")


def default_system(tokenizer) -> str | None:
    """The system prompt a ChatML template puts in by itself (SmolLM2's) when the conversation has none."""
    text = _render(tokenizer, [{"role": "user", "content": MARK}]) or ""
    head = "<|im_start|>system\n"
    if text.startswith(head):
        return text[len(head):].split("<|im_end|>", 1)[0]
    return None


def stop_tokens(tokenizer, chatml: bool) -> list[str]:
    stops = ["<|im_end|>", "<|im_start|>"] if chatml else []
    if tokenizer.eos_token and tokenizer.eos_token not in stops:
        stops.append(tokenizer.eos_token)
    return stops
