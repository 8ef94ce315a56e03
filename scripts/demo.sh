#!/usr/bin/env bash
# The README's first command: install, then cluster the bundled demo data with
# the full co-evolution method and the CPU default models, and print the clusters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/coevo run demo -k 10 --task intent --rounds 2 --max-pairs 16 -o "coevo-runs/demo-$(date +%Y%m%d-%H%M%S)" "$@"
