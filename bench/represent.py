"""How much of the interpretation mean should the final clustering read, and can a rule
that never sees labels pick it? Each finished run of a bench tier, clustered again on

    z_w = normalise(f(x) + w * mean f(y))      for w in WEIGHTS (w = 0: the text alone)

with the run's final embedder and interpretations, the same KMeans seeds, nothing
retrained. Beside the ACC of every w, each label-free criterion's value is recorded, and
the table says which w each criterion picks and what that pick scores against the best
w in hindsight (the oracle, which reads the labels and is no method).

    python bench/represent.py --tier levers        # -> docs/results/represent-levers.{json,md}

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


from coevo.atomic import read_json
from coevo.bench.results import repo_root, results_dir, stamp, today, write_results

WEIGHTS = (0.0, 0.25, 0.5, 1.0)
METHODS = ("expand", "contrastive-only", "random-select", "no-dpo", "full")
CRITERIA = ("stability", "silhouette", "consensus")


def summary_digest(run_dir: Path) -> str:
    return hashlib.sha256((run_dir / "summary.json").read_bytes()).hexdigest()


def measure(run_dir: Path, seeds: list[int], commit: str, digest: str, n_init: int | None) -> dict:
    from coevo import CoEvolution
    from coevo.clustering import interp_weight_criteria, kmeans, mean_by_owner, represent
    from coevo.metrics import evaluate
    from coevo.pipeline import step_seed

    started = time.perf_counter()
    model = CoEvolution.load(run_dir)
    cfg, last = model.config, model.config.effective_rounds
    interpretations = model.folder_.interpretations(last)
    text_vec, interp_vec, owner = model.context_.embed_all(model.context_.embedder(last), interpretations)
    interp_mean, counts = mean_by_owner(interp_vec, owner, len(model.texts_))
    # The unnormalised mean of unit vectors is as long as the text's M answers agree: joined
    # as it is, it weights each text's interpretations by their own consistency.
    agree_mean = np.zeros_like(text_vec)
    np.add.at(agree_mean, owner, interp_vec)
    agree_mean /= np.maximum(counts, 1)[:, None]
    rows = {}
    for w in (*WEIGHTS, "agree"):
        z = represent(text_vec, agree_mean, counts) if w == "agree" else represent(text_vec, interp_mean, counts, weight=w)
        accs, nmis = [], []
        for seed in seeds:
            labels = kmeans(z, cfg.n_clusters, seed=step_seed(seed, last, "cluster"), n_init=n_init or cfg.kmeans_init).labels
            m = evaluate(model.gold_, labels)
            accs.append(m["acc"])
            nmis.append(m["nmi"])
        rows[str(w)] = {"acc": float(np.mean(accs)), "acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                        "nmi": float(np.mean(nmis))}
    criteria = interp_weight_criteria(text_vec, interp_mean, counts, cfg.n_clusters, WEIGHTS, seed=cfg.seed)
    for w, values in zip(WEIGHTS, criteria):
        rows[str(w)].update(values)
    return {"summary_sha256": digest, "commit": commit, "weights": rows, "seconds": time.perf_counter() - started}


def picks(weights: dict) -> dict:
    """For each criterion (and the oracle): the w it picks and the ACC at that w."""
    weights = {w: v for w, v in weights.items() if w != "agree"}
    out = {"oracle": max(weights, key=lambda w: weights[w]["acc"])}
    for c in CRITERIA:
        if all(c in v for v in weights.values()):
            out[c] = max(weights, key=lambda w: (weights[w][c], -float(w)))
    return {name: {"w": float(w), "acc": weights[w]["acc"]} for name, w in out.items()}


def render(data: dict) -> str:
    lines = [f"# How much interpretation the clustering should read: the `{data['tier']}` tier's runs", "",
             "Written by `bench/represent.py`; do not edit by hand.", "",
             f"- commits {', '.join(f'`{c}`' for c in data['commits'])}, last run {data['date']}, machine: "
             f"{data['machine']}; {data['seconds']:.0f} s of measuring in all",
             f"- each finished seed-0 run (its final interpretations and embedder) clustered on "
             f"z_w = normalise(f(x) + w · mean f(y)) for w in {list(WEIGHTS)} (w = 1 is `text+interp`, "
             f"w = 0 is `text`); ACC in %, mean over KMeans seeds {data['seeds']}, each KMeans the best of "
             f"{data['kmeans_init'] or 'the run' + chr(39) + 's own number of'} restarts",
             "- criteria, none reads labels: `stability` = mean ARI between KMeans runs on two 80% subsamples "
             "(on the texts both hold); `silhouette` = cosine silhouette of the clustering in z_w; `consensus` = "
             "mean NMI of the clustering with the text-only and the interpretation-only clusterings",
             "- `oracle` = the w with the best ACC (reads labels; a bound, not a method)",
             "- `agree`: the unnormalised mean of the unit f(y), so each text's interpretations count as much "
             "as its M answers agree (a per-text weight, no criterion needed)", "",
             "## ACC by weight", "",
             "| dataset | run | " + " | ".join(f"w={w}" for w in WEIGHTS) + " | agree |",
             "|---|---|" + "---:|" * (len(WEIGHTS) + 1)]
    for dataset, by_run in data["results"].items():
        for run, r in by_run.items():
            best = max(v["acc"] for v in r["weights"].values())
            cells = [f"**{v['acc']:.1f}**" if v["acc"] == best else f"{v['acc']:.1f}" for v in r["weights"].values()]
            lines.append(f"| {dataset} | {run} | " + " | ".join(cells) + " |")
    names = ("oracle", *CRITERIA)
    lines += ["", "## What each criterion picks (w, then ACC at that w)", "",
              "| dataset | run | w=1 (today) | " + " | ".join(names) + " |", "|---|---|---:|" + "---:|" * len(names)]
    gains: dict[str, list[float]] = {n: [] for n in names}
    for dataset, by_run in data["results"].items():
        for run, r in by_run.items():
            p, today = picks(r["weights"]), r["weights"]["1.0"]["acc"]
            cells = []
            for n in names:
                if n in p:
                    cells.append(f"{p[n]['w']:g} · {p[n]['acc']:.1f}")
                    gains[n].append(p[n]["acc"] - today)
                else:
                    cells.append("-")
            lines.append(f"| {dataset} | {run} | {today:.1f} | " + " | ".join(cells) + " |")
    agree = [r["weights"]["agree"]["acc"] - r["weights"]["1.0"]["acc"] for by_run in data["results"].values()
             for r in by_run.values() if "agree" in r["weights"]]
    gains["agree"] = agree
    for w in WEIGHTS[:-1]:  # a fixed weight is a rule too, the simplest
        gains[f"fixed w={w:g}"] = [r["weights"][str(w)]["acc"] - r["weights"]["1.0"]["acc"]
                                   for by_run in data["results"].values() for r in by_run.values()]
    lines += ["", "Mean ACC change against w = 1 over the runs above:", ""]
    lines += [f"- `{n}`: {np.mean(g):+.2f} over {len(g)} runs; better on {sum(x > 0.05 for x in g)}, "
              f"worse on {sum(x < -0.05 for x in g)}" for n, g in gains.items() if g]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="levers")
    parser.add_argument("--runs", type=Path, default=repo_root() / "bench" / "out", help="the bench's --out-dir")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--kmeans-init", type=int, default=None, help="KMeans restarts (default: each run's own)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = args.runs / args.tier
    if not root.is_dir():
        raise SystemExit(f"bench/represent.py: no runs under {root}; run `coevo bench bench/configs/{args.tier}.toml` first")
    out = results_dir() / f"represent-{args.tier}"
    before = read_json(out.with_suffix(".json")) if out.with_suffix(".json").exists() else {}
    if (before.get("seeds"), before.get("weights"), before.get("kmeans_init")) != (args.seeds, list(WEIGHTS), args.kmeans_init):
        before = {}  # other KMeans seeds or weights: nothing can be reused
    provenance = stamp()
    commit, where = provenance["commit"], provenance["machine"]
    results: dict[str, dict] = {}

    def save() -> None:
        """Written after every measured run, so an interrupted pass keeps what it measured."""
        cells = [r for by_run in results.values() for r in by_run.values()]
        data = {"tier": args.tier, "commits": sorted({r["commit"] for r in cells}),
                "date": today(), "machine": where, "seeds": args.seeds,
                "weights": list(WEIGHTS), "kmeans_init": args.kmeans_init, "seconds": sum(r["seconds"] for r in cells), "results": results}
        write_results(out.parent, out.name, data, render)

    for variant_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for dataset_dir in sorted(p for p in variant_dir.iterdir() if p.is_dir()):
            for method in METHODS:
                run = dataset_dir / f"{method}-seed0"
                if not (run / "summary.json").is_file():
                    continue
                name = f"{method} ({variant_dir.name})"
                old = before.get("results", {}).get(dataset_dir.name, {}).get(name)
                digest = summary_digest(run)
                if old is not None and old.get("summary_sha256") == digest:
                    results.setdefault(dataset_dir.name, {})[name] = old
                    continue
                results.setdefault(dataset_dir.name, {})[name] = measure(run, args.seeds, commit, digest, args.kmeans_init)
                r = results[dataset_dir.name][name]
                print(dataset_dir.name, name, {w: round(v["acc"], 1) for w, v in r["weights"].items()},
                      picks(r["weights"]), file=sys.stderr)
                save()
    save()


if __name__ == "__main__":
    main()
