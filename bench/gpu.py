"""One `full` round on every Bank77 text, per LLM, on the GPU this runs on -> docs/results/gpu.{json,md}.

    python bench/gpu.py                          # Qwen2.5-Coder 0.5B and 1.5B, all 3,080 texts, default pairs
    python bench/gpu.py --texts 200 --llms smollm2-135m-instruct --out /tmp/gpu-check   # a quick check

Each LLM runs in its own process (`bench/speed.py`'s rounds part), with an empty
generation cache and the default settings of `coevo run` (no pair cap): the
generation back end is whatever `auto` picks there (vLLM when installed).
Figures are the pipeline's own step timings; peak GPU memory is torch's
allocator (vLLM's own pool is not in it).
"""

from __future__ import annotations

import argparse
from pathlib import Path


from speed import BANK77_TEXTS, part_rounds  # bench/ is the script's folder, first on sys.path

from coevo.bench.results import results_dir, stamp, write_results

STAGES = ("generate", "select", "dpo", "contrastive", "cluster")


def render(data: dict) -> str:
    lines = ["# One `full` round on a GPU", "", "Written by `bench/gpu.py`; do not edit by hand.", "",
             f"- commit `{data['commit']}`, {data['date']}, machine: {data['machine']}",
             f"- data: {data['texts']:,} Bank77 texts, M = 4, default pairs (half the texts, no cap), empty generation cache", "",
             "| LLM | device | generation back end | DPO pairs | " + " | ".join(STAGES) + " | total | peak RAM | peak GPU (torch) |",
             "|---|---|---|---|" + "---|" * len(STAGES) + "---|---|---|"]
    for r in data["records"]:
        if "skipped" in r:
            lines.append(f"| {r['llm']} | not run: {r['skipped']} |" + " |" * (len(STAGES) + 6))
            continue
        gpu = "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb'] / 1024:.1f} GB"
        lines.append(f"| {r['llm']} | {r['device']} | {r['generation_backend']} | {r['pairs']} | " +
                     " | ".join(f"{r['seconds'].get(s, 0.0):.0f} s" for s in STAGES) +
                     f" | {r['total_s'] / 60:.1f} min | {r['peak_rss_mb'] / 1024:.1f} GB | {gpu} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llms", nargs="+", default=["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"])
    parser.add_argument("--embedder", default="all-MiniLM-L6-v2")
    parser.add_argument("--texts", type=int, default=BANK77_TEXTS)
    parser.add_argument("--out", type=Path, default=results_dir(), help="folder for gpu.json and gpu.md")
    args = parser.parse_args()
    records = []
    for llm in args.llms:
        records += part_rounds([args.texts], llm, args.embedder, texts_per_pair=0)  # 0: the default pairs, no cap
        write_results(args.out, "gpu", {"records": records, **stamp(), "texts": args.texts}, render)


if __name__ == "__main__":
    main()
