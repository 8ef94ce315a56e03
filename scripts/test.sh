#!/usr/bin/env bash
# The README's test command (and what CI runs): install, then the whole suite, offline.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
status=$?
if [ "$status" -eq 5 ]; then
    echo "no tests were collected: that is a failure" >&2
    exit 1
fi
exit "$status"
