"""One .gguf file from a merged model, written with the `gguf` package (no llama.cpp build).

Per architecture the `gguf` package's tensor-name map renames the weights; Llama (and Mistral, which llama.cpp
writes as `llama`) store q/k rows interleaved per head, as llama.cpp's rotary embedding reads them, so those two
are permuted here (transformers undoes it on load). Qwen2/Qwen3 use the rotate-half layout as they are.
Gemma (norms stored +1) and sentencepiece tokenizers are refused in one line: llama.cpp's converter does them.

The tokenizer goes into the metadata as llama.cpp reads it: byte-level BPE (`gpt2`) with its pre-tokenizer's
llama.cpp name, every token id up to the embedding's rows (unused rows as `[PAD<i>]`), added tokens as
CONTROL (special) or USER_DEFINED, the merges, the special ids and the chat template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer_core.export.plan import ExportError

QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
               r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
LLAMA3_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
"""The split patterns of the two pre-tokenizers llama.cpp names `qwen2` and `llama-bpe`."""


@dataclass(frozen=True)
class Arch:
    gguf_name: str
    """`general.architecture`, as llama.cpp names it."""
    permute_qk: bool


ARCHS = {"qwen2": Arch("qwen2", False), "qwen3": Arch("qwen3", False), "llama": Arch("llama", True),
         "mistral": Arch("llama", True)}
"""The model types written here (transformers' `config.model_type`)."""

QUANT_TYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q5_1": "Q5_1", "q5_0": "Q5_0",
               "q4_1": "Q4_1", "q4_0": "Q4_0"}
FILE_TYPES = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0",
              "q5_1": "MOSTLY_Q5_1", "q5_0": "MOSTLY_Q5_0", "q4_1": "MOSTLY_Q4_1", "q4_0": "MOSTLY_Q4_0"}


def arch_of(config) -> Arch:
    kind = getattr(config, "model_type", None)
    if kind not in ARCHS:
        raise ExportError(f"architecture {kind!r}: the GGUF writer knows {', '.join(sorted(ARCHS))}; export "
                          "--to hf and convert that folder with llama.cpp's convert_hf_to_gguf.py")
    if getattr(config, "rope_scaling", None) and (config.rope_scaling or {}).get("rope_type", "default") != "default":
        raise ExportError(f"{kind} with rope scaling {config.rope_scaling.get('rope_type')!r}: not written here; "
                          "export --to hf and convert it with llama.cpp's convert_hf_to_gguf.py")
    return ARCHS[kind]


def write_gguf(path: Path, model, tokenizer, dtype: str, name: str) -> None:
    """Write `model` (float32, merged, on the CPU) and `tokenizer` to `path` as one GGUF file."""
    import gguf

    config = model.config
    arch = arch_of(config)
    tokens = tokenizer_metadata(tokenizer, config.vocab_size)  # refuses an unknown tokenizer before any write
    writer = gguf.GGUFWriter(str(path), arch.gguf_name)
    _add_model_metadata(writer, config, dtype, name)
    _add_tokenizer(writer, tokens, tokenizer)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.gguf_name.upper()], config.num_hidden_layers)
    qtype = gguf.GGMLQuantizationType[QUANT_TYPES[dtype]]
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight" and config.tie_word_embeddings:
            continue
        new = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ExportError(f"tensor {key}: no GGUF name for it in {arch.gguf_name}; export --to hf and convert "
                              "it with llama.cpp's convert_hf_to_gguf.py")
        data = tensor.detach().float().cpu().numpy()
        if arch.permute_qk and key.endswith("self_attn.q_proj.weight"):
            data = interleave_rotary(data, heads)
        elif arch.permute_qk and key.endswith("self_attn.k_proj.weight"):
            data = interleave_rotary(data, kv_heads)
        _add_tensor(writer, new, data, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def interleave_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of each head from rotate-half order (first half, second half) to llama.cpp's pairs (0, d/2, 1, ...)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _add_tensor(writer, name: str, data: np.ndarray, qtype) -> None:
    """2-D weights in the chosen type; norms and biases (1-D) stay float32, as llama.cpp keeps them. A row that is
    not a whole number of quantization blocks falls back to f16."""
    import gguf

    kind = gguf.GGMLQuantizationType
    if data.ndim < 2 or qtype == kind.F32:
        writer.add_tensor(name, data.astype(np.float32))
        return
    if qtype == kind.F16 or data.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
        writer.add_tensor(name, data.astype(np.float16))
        return
    writer.add_tensor(name, gguf.quants.quantize(data.astype(np.float32), qtype), raw_dtype=qtype)


def _add_model_metadata(writer, config, dtype: str, name: str) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope_theta(config)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_file_type(gguf.LlamaFileType[FILE_TYPES[dtype]])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def rope_theta(config) -> float:
    """transformers 5 keeps it in `rope_parameters`; older releases as `rope_theta`."""
    params = getattr(config, "rope_parameters", None) or {}
    return params.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0


@dataclass(frozen=True)
class TokenizerMetadata:
    pre: str
    tokens: list[str]
    types: list[int]
    merges: list[str]


def tokenizer_metadata(tokenizer, vocab_rows: int) -> TokenizerMetadata:
    """The tokenizer as llama.cpp's `gpt2` (byte-level BPE) vocabulary; anything else is refused in one line."""
    import gguf

    state = json.loads(tokenizer.backend_tokenizer.to_str())
    model = state.get("model") or {}
    pre = pre_tokenizer_name(state.get("pre_tokenizer"))
    if model.get("type") != "BPE" or pre is None:
        raise ExportError("tokenizer: only byte-level BPE tokenizers (Qwen, Llama 3, SmolLM2, GPT-2 style) are "
                          "written to GGUF here; export --to hf and convert it with llama.cpp's convert_hf_to_gguf.py")
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_rows:
        raise ExportError(f"tokenizer: {len(vocab)} tokens but the model embeds only {vocab_rows}; resize the "
                          "embeddings before exporting")
    by_id = {i: t for t, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    kind = gguf.TokenType
    tokens, types = [], []
    for i in range(vocab_rows):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(kind.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(kind.NORMAL if i not in added else kind.CONTROL if added[i].special else kind.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return TokenizerMetadata(pre, tokens, [int(t) for t in types], merges)


def pre_tokenizer_name(pre: dict | None) -> str | None:
    """llama.cpp's name for a byte-level pre-tokenizer (`tokenizer.ggml.pre`), or None when it is not one."""
    if not pre:
        return None
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        pattern = (parts[0].get("pattern") or {}).get("Regex")
        return {QWEN2_SPLIT: "qwen2", LLAMA3_SPLIT: "llama-bpe"}.get(pattern)
    return None


def _add_tokenizer(writer, meta: TokenizerMetadata, tokenizer) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(meta.pre)
    writer.add_token_list(meta.tokens)
    writer.add_token_types(meta.types)
    writer.add_token_merges(meta.merges)
    for token_id, add in ((tokenizer.bos_token_id, writer.add_bos_token_id),
                          (tokenizer.eos_token_id, writer.add_eos_token_id),
                          (tokenizer.pad_token_id, writer.add_pad_token_id)):
        if token_id is not None:
            add(int(token_id))
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)) and tokenizer.bos_token_id is not None)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
