"""What the interpretations add to the final clustering: each finished run of a bench tier,
clustered again on f(x) alone and on f(x) joined with mean f(y), same final models, same
KMeans seeds. Nothing is retrained; the runs are read, not changed.

    python bench/represent.py                 # the cpu tier -> docs/results/represent-cpu.{json,md}
    python bench/represent.py --tier bank77

A row of `text+interp` reproduces the tier's own numbers (the runs were clustered that
way); the `text` row of the same run shows what the joined interpretation mean changed.
A run measured before is not measured again while its `summary.json` is unchanged, so the
script can follow a tier that is still running.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from coevo.atomic import atomic_write_json, atomic_write_text, read_json  # noqa: E402
from coevo.provenance import git_commit, machine  # noqa: E402

KINDS = ("text", "text+interp")
METHODS = ("expand", "contrastive-only", "random-select", "no-dpo", "full")


def summary_digest(run_dir: Path) -> str:
    return hashlib.sha256((run_dir / "summary.json").read_bytes()).hexdigest()


def measure(run_dir: Path, seeds: list[int], commit: str, digest: str) -> dict:
    from coevo import CoEvolution

    model = CoEvolution.load(run_dir)
    out = {"summary_sha256": digest, "commit": commit, "seconds": 0.0}
    started = time.perf_counter()
    for kind in KINDS:
        accs = [r["metrics"]["acc"] for r in model.recluster(seeds, represent=kind)]
        out[kind] = {"acc": accs, "mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0}
    out["seconds"] = time.perf_counter() - started
    return out


def render(data: dict) -> str:
    lines = [f"# Text alone or text + interpretations: the `{data['tier']}` tier's runs, clustered both ways", "",
             "Written by `bench/represent.py`; do not edit by hand.", "",
             f"- commits {', '.join(f'`{c}`' for c in data['commits'])}, last run {data['date']}, machine: {data['machine']}; "
             f"{data['seconds']:.0f} s of measuring in all",
             f"- each finished run of seed 0 (its final LLM interpretations and embedder), KMeans seeds {data['seeds']}; "
             "ACC in %, mean ± std over the KMeans seeds",
             "- `text`: z = f(x); `text+interp`: z = normalise(f(x) + mean f(y)), the default the runs used", "",
             "| dataset | " + " | ".join(f"{m} ({k})" for m in data["methods"] for k in KINDS) + " |",
             "|---|" + "---:|" * (len(data["methods"]) * len(KINDS))]
    gains = {m: [] for m in data["methods"]}
    for dataset, by_method in data["results"].items():
        cells = []
        for m in data["methods"]:
            for k in KINDS:
                r = by_method.get(m, {}).get(k)
                cells.append("-" if r is None else f"{r['mean']:.1f} ± {r['std']:.1f}")
            if m in by_method:
                gains[m].append(by_method[m]["text+interp"]["mean"] - by_method[m]["text"]["mean"])
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    lines += ["", "Change from joining the interpretations (text+interp minus text), ACC points:", ""]
    for m, g in gains.items():
        if g:
            lines.append(f"- `{m}`: mean {np.mean(g):+.1f} over {len(g)} datasets; higher on {sum(x > 0 for x in g)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="cpu")
    parser.add_argument("--runs", type=Path, default=ROOT / "bench" / "out", help="the bench's --out-dir")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = args.runs / args.tier / "default"
    if not root.is_dir():
        raise SystemExit(f"bench/represent.py: no runs under {root}; run `coevo bench bench/configs/{args.tier}.toml` first")
    out = ROOT / "docs" / "results" / f"represent-{args.tier}"
    before = read_json(out.with_suffix(".json")) if out.with_suffix(".json").exists() else {}
    if before.get("seeds") != args.seeds:
        before = {}  # other KMeans seeds: nothing can be reused
    commit, where = git_commit(ROOT), machine()
    tier_json = ROOT / "docs" / "results" / f"{args.tier}.json"
    order = list(dict.fromkeys(r["dataset"] for r in read_json(tier_json))) if tier_json.exists() else []
    results: dict[str, dict] = {}

    def save() -> None:
        """Written after every measured run, so an interrupted pass keeps what it measured."""
        ordered = {d: results[d] for d in sorted(results, key=lambda d: order.index(d) if d in order else len(order))}
        cells = [r for by_method in ordered.values() for r in by_method.values()]
        data = {"tier": args.tier, "commits": sorted({r["commit"] for r in cells}),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": where, "seeds": args.seeds, "seconds": sum(r["seconds"] for r in cells),
                "methods": [m for m in METHODS if any(m in r for r in ordered.values())], "results": ordered}
        atomic_write_json(out.with_suffix(".json"), data)
        atomic_write_text(out.with_suffix(".md"), render(data))

    for dataset_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for method in METHODS:
            run = dataset_dir / f"{method}-seed0"
            if not (run / "summary.json").is_file():
                continue
            old = before.get("results", {}).get(dataset_dir.name, {}).get(method)
            digest = summary_digest(run)
            if old is not None and old.get("summary_sha256") == digest:
                results.setdefault(dataset_dir.name, {})[method] = old
                continue
            results.setdefault(dataset_dir.name, {})[method] = measure(run, args.seeds, commit, digest)
            print(dataset_dir.name, method, {k: round(results[dataset_dir.name][method][k]["mean"], 1) for k in KINDS},
                  file=sys.stderr)
            save()
    save()

if __name__ == "__main__":
    main()
