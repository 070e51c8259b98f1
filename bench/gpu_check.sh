#!/usr/bin/env bash
# The one check to run whenever a CUDA GPU is at hand; prints one JSON line last.
#
#   bench/gpu_check.sh          # about 5-8 minutes on one H100/H200 once .venv exists
#
# It creates or reuses .venv the README way (./run; the first time that downloads torch and the rest, which needs
# the package index and takes a few minutes more), checks that torch there sees a CUDA device, then runs, each
# with its own time limit (a step that fails or times out is reported and the next one still runs):
#   1. pytest -m gpu tests/test_gpu.py  bf16 LoRA, fused-AdamW skip, fused CE vs plain (and its memory), no host
#                                        sync, GPU memory and MFU in step events, DeepSpeed over NCCL, demo --headless
#   2. python -m bench.train_speed      SmolLM2-135M LoRA: tokens/s, MFU, ours vs the HF Trainer
#   3. python -m bench.memory           Qwen2 shape (151,936 vocabulary), one 2,048-token row: the fused head's
#                                        peak memory and speed against the plain path and against HF
# Logs go to $GPU_CHECK_OUT (default: a new temp folder, named in the JSON).
# NOT YET RUN ON A GPU: written on a CPU-only machine; expect to fix small things the first time.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${GPU_CHECK_OUT:-$(mktemp -d -t nlirg-gpu-check-XXXX)}
mkdir -p "$OUT"
PY=.venv/bin/python
START=$(date +%s)

fail() {  # one JSON line saying what is wrong, then exit 2
  printf '{"ok": false, "error": "%s", "logs": "%s"}\n' "$1" "$OUT"
  exit 2
}

echo "gpu_check: logs in $OUT" >&2
nvidia-smi -L > "$OUT/nvidia-smi.txt" 2>&1 || echo "gpu_check: nvidia-smi not available; asking torch" >&2

# The venv the README way: ./run creates or reuses it (it reinstalls only when pyproject.toml or run changed).
if ! ./run test --version > "$OUT/venv.log" 2>&1; then
  fail "could not create or update .venv with ./run (see venv.log); without package access, build .venv elsewhere"
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" > "$OUT/cuda.log" 2>&1; then
  fail "torch in .venv sees no CUDA device (torch.version.cuda=$("$PY" -c 'import torch; print(torch.version.cuda)' \
2>/dev/null)); install a CUDA build of torch into .venv, or check the driver (nvidia-smi)"
fi

step() {  # step NAME SECONDS COMMAND...: run one part with a time limit; its output goes to NAME.log
  local name=$1 limit=$2
  shift 2
  echo "gpu_check: $name (limit ${limit}s)" >&2
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo $? > "$OUT/$name.rc"
}

step gpu_tests 240 "$PY" -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml"
step train_speed 150 "$PY" -m bench.train_speed --steps 20
step memory 150 "$PY" -m bench.memory --repeats 2 --device cuda

"$PY" - "$OUT" "$START" <<'EOF'
"""Assemble the one JSON line from the three parts' logs."""
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

out, start = Path(sys.argv[1]), float(sys.argv[2])


def rc(name):
    return int((out / f"{name}.rc").read_text().strip())


def last_json(name):
    for line in reversed((out / f"{name}.log").read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


tests = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "rc": rc("gpu_tests")}
junit = out / "gpu_tests.xml"
if junit.is_file():
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        key = "failed" if outcome in ("failure", "error") else outcome
        tests[key] += 1
        if key == "failed":
            tests["failures"].append(case.get("name"))
speed, memory = last_json("train_speed"), last_json("memory")
parts_ok = tests["rc"] == 0 and tests["failed"] == 0 and rc("train_speed") == 0 and rc("memory") == 0
result = {
    "ok": parts_ok and speed is not None and memory is not None,
    "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
    "tests": tests,
    "tokens_per_s": (speed or {}).get("tokens_per_s"), "mfu": (speed or {}).get("mfu"),
    "model_tflops": (speed or {}).get("model_tflops"), "peak_memory_bytes": (speed or {}).get("peak_memory_bytes"),
    "ours_vs_hf_trainer": (speed or {}).get("ours_nlirg_vs_hf_trainer"),
    "nlirg_vs_plain": (speed or {}).get("nlirg_vs_plain"),
    "memory_peak_ratio_vs_hf": (memory or {}).get("peak_ratio_vs_hf"),
    "memory_speed_ratio_vs_hf": (memory or {}).get("speed_ratio_vs_hf"),
    "memory_peak_ratio_vs_plain": (memory or {}).get("peak_ratio_vs_plain"),
    "memory_speed_ratio_vs_plain": (memory or {}).get("speed_ratio_vs_plain"),
    "memory_max_loss_diff": (memory or {}).get("max_loss_diff"),
    "memory_max_grad_diff": (memory or {}).get("max_grad_diff"),
    "rc": {"train_speed": rc("train_speed"), "memory": rc("memory")},
    "train_speed": speed, "memory": memory, "seconds": round(time.time() - start), "logs": str(out),
}
print(json.dumps(result))
EOF
