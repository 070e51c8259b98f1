"""Known GPUs by name, with their memory as the driver reports it (what `--gpu NAME` and the Config pane use)."""

from __future__ import annotations

import re

GB = 1000**3
GIB = 1 << 30

KNOWN_GPUS: dict[str, float] = {
    "H200": 141, "H100": 80, "H100-80GB": 80, "H100-94GB": 94, "H20": 96, "GH200": 96, "B200": 180,
    "A100": 80, "A100-80GB": 80, "A100-40GB": 40, "L40S": 48, "L40": 48, "L4": 24, "A40": 48, "A6000": 48,
    "RTX6000ADA": 48, "A10": 24, "A10G": 24, "A5000": 24, "A4000": 16, "V100": 32, "V100-16GB": 16, "T4": 16,
    "5090": 32, "4090": 24, "4080": 16, "3090": 24, "3080": 10, "3060": 12,
}
"""GPU memory in GB (10^9 bytes, as sold); an A100 or H100 without a size is the larger one."""


def gpu_memory_bytes(name: str) -> int:
    """Bytes of a GPU given by name (`H100`, `a100-40gb`, `RTX 4090`, `A100 40GB`); ValueError names the known."""
    key = re.sub(r"[\s_]+", "-", name.strip().upper()).removeprefix("RTX-").removeprefix("NVIDIA-")
    key = key.replace("-GB", "GB")
    if key in KNOWN_GPUS:
        return int(KNOWN_GPUS[key] * GB)
    squashed = key.replace("-", "")
    for known, size in KNOWN_GPUS.items():
        if known.replace("-", "") == squashed:
            return int(size * GB)
    raise ValueError(f"unknown GPU '{name}'; known: {', '.join(KNOWN_GPUS)}; or give --gpu-mem (e.g. 24GB)")


def parse_memory(text: str) -> int:
    """`24GB`, `24 GiB`, `80G`, `16000MB`, or a plain number of GB, in bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B?)\s*", text.upper())
    if not m:
        raise ValueError(f"'{text}' is not a memory size; write e.g. 24GB, 24GiB or 80")
    value, unit, binary = float(m.group(1)), m.group(2) or "G", m.group(3).startswith("I")
    scale = {"K": 1, "M": 2, "G": 3, "T": 4}[unit]
    return int(value * (1024 if binary else 1000) ** scale)
