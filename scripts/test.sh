#!/usr/bin/env bash
# The README's test command (and what CI runs): install, then the whole suite, offline.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 1
# tests/test_report.py opens report.html in a headless Chromium (and skips without one): install it
# with its driver where this script may (root with apt), as on CI: the browser comes from the system packages.
if ! command -v chromedriver >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-liberation; } >/dev/null 2>&1 \
        || echo "could not install Chromium; the browser test will be skipped" >&2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
status=$?
if [ "$status" -eq 5 ]; then
    echo "no tests were collected: that is a failure" >&2
    exit 1
fi
exit "$status"
