"""``python -m coevo.bench.recluster RUN_DIR SEED...``: the recluster seeds of a tier, in a subprocess."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from ..errors import CoevoError

def main(argv: Sequence[str]) -> int:
    """``python -m coevo.bench.recluster RUN_DIR SEED...``: the metrics of a finished run reclustered with other
    KMeans seeds, as one JSON line on stdout.

    A subprocess, like the runs: it loads the run's embedder and embeds every
    text and interpretation, so its memory and any crash stay out of the bench.
    """
    if len(argv) < 2:
        print("usage: python -m coevo.bench.recluster RUN_DIR SEED...", file=sys.stderr)
        return 2
    from ..pipeline import CoEvolution
    from ..provenance import peak_rss_mb

    try:
        model = CoEvolution.load(argv[0])
        metrics = {str(r["seed"]): r.get("metrics") for r in model.recluster([int(seed) for seed in argv[1:]])}
    except CoevoError as exc:
        print(f"coevo: error: {exc}", file=sys.stderr)
        return 2
    if any(m is None for m in metrics.values()):
        print(f"coevo: error: {argv[0]}: the run's data has no gold labels to score against", file=sys.stderr)
        return 2
    print(json.dumps({"metrics": metrics, "peak_rss_mb": peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
