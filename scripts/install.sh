#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the pinned stack.
#
# Three steps because of two packages that do not install cleanly on a current stack:
# - davisinteractive 1.0.4 imports numpy in its setup.py and pins an old scikit-learn, so it is built
#   without build isolation and without its declared dependencies (we provide working versions);
# - vos-benchmark and davisinteractive both ask for opencv-python, which would sit beside the
#   headless build and fight over cv2; we install them with --no-deps and keep the headless one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check --quiet"
$PIP install -c constraints.txt numpy cython setuptools wheel
$PIP install -c constraints.txt --no-build-isolation --no-deps davisinteractive vos-benchmark
$PIP install -c constraints.txt -r requirements.txt
$PIP install -c constraints.txt --no-build-isolation --no-deps -e .
.venv/bin/python -c "import stm, davisinteractive, vos_benchmark, cv2, torch; print('stm installed:', torch.__version__)"
