"""The Config pane's memory verdict: the planner's one line for the edited config, on this machine's GPU.

The GPU size comes from `NLIRG_GPU_MEM` (a size like 24GB, or a known GPU name like A100-40GB), else from
`nvidia-smi` (asked once), else the article's 24 GB single card, said as assumed.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from trainer_core.config import RunConfig
from trainer_core.plan import ShapeError, gpu_memory_bytes, parse_memory, plan_config

ASSUMED_GPU_MEM = 24 * 1000**3


@functools.lru_cache(maxsize=1)
def local_gpu_memory() -> tuple[int, str]:
    """(bytes of one GPU, where that number came from)."""
    wanted = os.environ.get("NLIRG_GPU_MEM", "").strip()
    if wanted:
        try:
            return parse_memory(wanted), "NLIRG_GPU_MEM"
        except ValueError:
            try:
                return gpu_memory_bytes(wanted), "NLIRG_GPU_MEM"
            except ValueError:
                pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=3).stdout.split()
            if out:
                return int(float(out[0]) * (1 << 20)), "nvidia-smi"
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return ASSUMED_GPU_MEM, "assumed; set NLIRG_GPU_MEM"


def memory_verdict(cfg: RunConfig) -> tuple[str, bool]:
    """(one line, fits) for `cfg`: `fits in 24.0 GB: 17.2 GB predicted`, or what to change."""
    limit, source = local_gpu_memory()
    try:
        result = plan_config(cfg, limit)
    except (ShapeError, ValueError, OSError) as exc:
        return f"memory: not predicted ({exc})", True
    note = f" ({source})" if source != "nvidia-smi" and source != "NLIRG_GPU_MEM" else ""
    return f"memory: {result.verdict()}{note}", result.fits
