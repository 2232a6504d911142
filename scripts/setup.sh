#!/usr/bin/env bash
# Create .venv with the tested stack and install sracl_lite in editable mode.
# Usage: bash scripts/setup.sh            (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -d .venv ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned, unless one is installed (Colab's, or your own build). On Linux x86-64 the
# plain package index gives the CUDA build (several GB; it runs on a CPU too). For the CPU-only
# build (about 200 MB) set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu.
python -c "import torch" 2>/dev/null ||
    python -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
python -m pip install -q -r requirements.txt -r requirements-dev.txt
python -m pip install -q --no-deps -r requirements-offline.txt
python -m pip install -q --no-deps -e .
python -m ipykernel install --sys-prefix --name python3 >/dev/null
python - <<'PY'
import torch, transformers, sentence_transformers as st
build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
print(f"set up: torch {torch.__version__} ({build}), transformers {transformers.__version__}, "
      f"sentence-transformers {st.__version__}")
PY
