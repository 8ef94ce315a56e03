"""How much of the interpretation mean should the final clustering read, and can a rule
that never sees labels pick it? Each finished run of a bench tier, clustered again on

    z_w = normalise(f(x) + w * mean f(y))      for w in WEIGHTS (w = 0: the text alone)

on the per-text rule ``represent agreement`` (each text's w in proportion to how much its M
answers agree, averaging the default weight), and on ``represent gate`` (the default weight where the join's
clusters are clearly more reproducible than the text's, else the text alone: the label-free "lean on
the text" of issue 13), with the run's final embedder and interpretations,
the same KMeans seeds, nothing retrained. The cluster step is the only step that reads the
representation, so a column is what a run with that setting would have clustered. Beside the
ACC of every w, each label-free criterion's value is recorded, and the table says which w each
criterion picks and what that pick scores against the best w in hindsight (the oracle, which
reads the labels and is no method). Where the tier has a `kmeans` cell for the same dataset and
seed, its ACC stands beside, so the table says where each rule beats the baseline.

``base`` clusters the base embedder's f(x) alone (plain embed + KMeans) at the same KMeans seeds.
``--anchor`` (issue 13, lever 8; bench/configs/anchor-cpu.toml) adds two ways of keeping the base embedder in
the final clustering: ``anchor``, the gate's representation beside the base f(x), each a unit vector; and
``wise``, the gate on an embedder whose weights are the mean of the run's final embedder's and the base's.

    python bench/represent.py --tier levers        # -> docs/results/represent-levers.{json,md}
    python bench/represent.py --tier levers-cpu --run-seeds 0 1 --seeds 0 1 2 --criteria
    python bench/represent.py --tier cpu --run-seeds 0 1 --base --criteria stability --only bank77 goemo
    python bench/represent.py --tier echo-cpu reply-cpu --name represent-dev-cpu --criteria
    python bench/represent.py --tier anchor-cpu --base --anchor --criteria stability --run-seeds 5 --kmeans-init 10

A run measured before is not measured again while its `summary.json` is unchanged, so the
script can follow a tier that is still running.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


from coevo.atomic import read_json
from coevo.bench.results import kmeans_acc, repo_root, results_dir, stamp, summary_digest, today, write_results
from coevo.clustering import GATE_MARGIN
from coevo.config import CoEvoConfig

WEIGHTS = (0.0, 0.25, 0.5, 1.0)
RULES = ("agreement", "gate")  # rules beside the fixed weights
ANCHORS = ("anchor", "wise")  # lever 8: representations that keep the base embedder (--anchor)
NAMED = (*RULES, "base", *ANCHORS)  # columns with a name rather than a weight
METHODS = ("expand", "contrastive-only", "random-select", "no-dpo", "full")
CRITERIA = ("stability", "silhouette", "consensus")
DEFAULT = str(CoEvoConfig.__dataclass_fields__["interp_weight"].default)  # the column every rule is compared with


def averaged_embedder(base, tuned, share: float = 0.5):
    """``base`` with every floating-point weight replaced by (1 - share) * base + share * tuned: the two
    models share an architecture and a starting point, so their mean is a model of its own (WiSE-FT)."""
    tuned_state = tuned.state_dict()
    mixed = {name: (1 - share) * value + share * tuned_state[name] if value.is_floating_point() else value
             for name, value in base.state_dict().items()}
    base.load_state_dict(mixed)
    return base


def measure(run_dir: Path, seeds: list[int], commit: str, digest: str, n_init: int | None, criteria,
            base: bool = False, anchor: bool = False) -> dict:
    from coevo import CoEvolution, models
    from coevo.clustering import (agreement_weights, embed, gate_interp_weight, interp_weight_criteria, kmeans,
                                  mean_by_owner, represent)
    from coevo.metrics import evaluate
    from coevo.pipeline import step_seed

    started = time.perf_counter()
    model = CoEvolution.load(run_dir)
    cfg, last = model.config, model.config.effective_rounds
    interpretations = model.folder_.interpretations(last)
    final_embedder = model.context_.embedder(last)
    text_vec, interp_vec, owner = model.context_.embed_all(final_embedder, interpretations)
    interp_mean, counts = mean_by_owner(interp_vec, owner, len(model.texts_))
    agreeing, mean_agreement = agreement_weights(interp_vec, owner, len(model.texts_), float(DEFAULT))
    rows = {}
    gate_w, gate_test = gate_interp_weight(text_vec, interp_mean, counts, cfg.n_clusters, float(DEFAULT),
                                           seed=step_seed(cfg.seed, last, "cluster"))
    representations = {str(w): represent(text_vec, interp_mean, counts, weight=agreeing if w == "agreement" else w)
                       for w in (*WEIGHTS, "agreement")}
    if base:
        base_embedder = models.load_embedder(cfg.embedder, cache_dir=cfg.cache_dir)
        base_text = embed(base_embedder, model.texts_, progress=False)
        representations["base"] = represent(base_text, None)
    if anchor:
        gate_z = representations[str(gate_w)]  # the gate takes one of the fixed weights
        representations["anchor"] = np.hstack([gate_z, representations["base"]]) / np.sqrt(2.0)
        wise_embedder = averaged_embedder(base_embedder, final_embedder)
        wise_text, wise_interp, _ = model.context_.embed_all(wise_embedder, interpretations)
        wise_mean, _ = mean_by_owner(wise_interp, owner, len(model.texts_))
        wise_w, wise_test = gate_interp_weight(wise_text, wise_mean, counts, cfg.n_clusters, float(DEFAULT),
                                               seed=step_seed(cfg.seed, last, "cluster"))
        representations["wise"] = represent(wise_text, wise_mean, counts, weight=wise_w)
    for w, z in representations.items():
        accs, nmis = [], []
        for seed in seeds:
            labels = kmeans(z, cfg.n_clusters, seed=step_seed(seed, last, "cluster"), n_init=n_init or cfg.kmeans_init).labels
            m = evaluate(model.gold_, labels)
            accs.append(m["acc"])
            nmis.append(m["nmi"])
        rows[w] = {"acc": float(np.mean(accs)), "acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                   "nmi": float(np.mean(nmis))}
    rows["gate"] = {**rows[str(gate_w)], **gate_test, "w": gate_w}  # one of the fixed weights: not clustered again
    if anchor:
        rows["wise"].update({**wise_test, "w": wise_w})
    if criteria:
        for w, values in zip(WEIGHTS, interp_weight_criteria(text_vec, interp_mean, counts, cfg.n_clusters, WEIGHTS,
                                                             seed=cfg.seed, criteria=tuple(criteria))):
            rows[str(w)].update(values)
        if base and "stability" in criteria:  # weight 0 on the base f(x): the stability of the baseline's clusters
            rows["base"].update(interp_weight_criteria(base_text, interp_mean, counts, cfg.n_clusters, [0.0],
                                                       seed=cfg.seed, criteria=("stability",))[0])
    return {"summary_sha256": digest, "commit": commit, "weights": rows, "seconds": time.perf_counter() - started,
            "mean_agreement": mean_agreement}


def picks(weights: dict) -> dict:
    """For each criterion (and the oracle): the w it picks and the ACC at that w."""
    weights = {w: v for w, v in weights.items() if w not in NAMED}
    out = {"oracle": max(weights, key=lambda w: weights[w]["acc"])}
    for c in CRITERIA:
        if all(c in v for v in weights.values()):
            out[c] = max(weights, key=lambda w: (weights[w][c], -float(w)))
    return {name: {"w": float(w), "acc": weights[w]["acc"]} for name, w in out.items()}


def _vs(gains: list[float]) -> str:
    return (f"{np.mean(gains):+.2f} over {len(gains)} runs; better on {sum(x > 0.05 for x in gains)}, "
            f"worse on {sum(x < -0.05 for x in gains)}")


def _against_kmeans(label: str, diffs: list[float]) -> str:
    return (f"- {label}: mean {np.mean(diffs):+.2f} over {len(diffs)} runs; above on {sum(d > 0 for d in diffs)}, "
            f"more than 1.0 below on {sum(d < -1.0 for d in diffs)}, lowest {min(diffs):+.1f}")


def _label(column: str) -> str:
    return f"`{column}`" if column in NAMED else f"w = {column}"


def anchor_test(cells: list) -> list[str]:
    """Lever 8's adoption test, as bench/configs/anchor-cpu.toml wrote it before its runs: against `base` at the
    same draws, a candidate's lowest difference must be at least 1.0 above the gate's lowest, its mean at least
    +2.0, and it must be above `base` on at least as many runs as the gate."""
    diffs = {c: [r["weights"][c]["acc"] - r["weights"]["base"]["acc"] for *_, r in cells] for c in ("gate", *ANCHORS)}
    summary = {c: {"mean": float(np.mean(d)), "above": sum(x > 0 for x in d), "lowest": min(d)} for c, d in diffs.items()}
    gate = summary["gate"]
    lines = ["", "## Lever 8's adoption test: against `base` at the same KMeans draws (ACC points)", "",
             "| column | mean | above `base` | lowest | adopted? |", "|---|---:|---:|---:|---|"]
    passed = {}
    for c, s in summary.items():
        if c == "gate":
            verdict = "(today's default)"
        else:
            failed = [why for ok, why in ((s["lowest"] >= gate["lowest"] + 1.0, "lowest not 1.0 above the gate's"),
                                          (s["mean"] >= 2.0, "mean below +2.0"),
                                          (s["above"] >= gate["above"], "above `base` on fewer runs than the gate"))
                      if not ok]
            verdict = "passes" if not failed else "no: " + "; ".join(failed)
            if not failed:
                passed[c] = s["mean"]
        lines.append(f"| `{c}` | {s['mean']:+.2f} | {s['above']} of {len(cells)} | {s['lowest']:+.1f} | {verdict} |")
    choice = max(passed, key=passed.get) if passed else None
    lines += ["", f"Adopted: `{choice}`." if choice else "Adopted: neither."]
    return lines


def render(data: dict) -> str:
    cells = [(dataset, run, r) for dataset, by_run in data["results"].items() for run, r in by_run.items()]
    columns = ([str(w) for w in WEIGHTS] + list(RULES) + (["base"] if data.get("base") else [])
               + (list(ANCHORS) if data.get("anchor") else []))
    tiers = data["tier"] if isinstance(data["tier"], list) else [data["tier"]]
    lines = [f"# How much interpretation the clustering should read: the runs of tier{'s' if len(tiers) > 1 else ''} "
             + ", ".join(f"`{t}`" for t in tiers), "",
             "Written by `bench/represent.py`; do not edit by hand.", "",
             f"- commits {', '.join(f'`{c}`' for c in data['commits'])}, last run {data['date']}, machine: "
             f"{data['machine']}; {data['seconds']:.0f} s of measuring in all",
             f"- each finished run of seeds {data['run_seeds']} (its final interpretations and embedder) clustered on "
             f"z_w = normalise(f(x) + w · mean f(y)) for w in {list(WEIGHTS)} (w = 0 is `represent text`; "
             f"w = {DEFAULT} is the default); ACC in %, mean over KMeans seeds {data['seeds']}, each KMeans the best of "
             f"{data['kmeans_init'] or 'the run' + chr(39) + 's own number of'} restarts",
             f"- `agreement` (`represent agreement`): each text's w is {DEFAULT} × its answers' agreement / the mean "
             "agreement, where a text's agreement is the mean cosine between its M interpretations, two by two "
             "(no labels, no criterion)",
             f"- `gate` (`represent gate`): w = {DEFAULT} where the join's clusters are more reproducible than the "
             "text's (mean ARI over ten pairs of 80% subsamples, both clustered on the same pairs) by more than one "
             "standard error of the paired differences, else w = 0, the text alone; the runs where it took the text "
             "alone are listed below the table",
             "- `kmeans`: the tier's own `kmeans` cell of the same dataset and seed (base embedder, text alone), "
             "as the bench measured it", ""]
    if data.get("base"):
        lines[-1:-1] = ["- `base`: the base embedder's f(x) alone (what `kmeans` clusters) at the same KMeans seeds "
                        "and restarts as the other columns"]
    if data.get("anchor"):
        lines[-1:-1] = ["- `anchor` (issue 13, lever 8): [z_gate, normalise(f_base(x))] / √2, the gate's representation "
                        "beside the base f(x), so KMeans reads the sum of the two squared distances",
                        "- `wise` (lever 8): the run's final embedder and the base embedder averaged weight by weight "
                        "(one half each), then the gate on that embedder's f(x) and mean f(y)"]
    if any(c in r["weights"][str(WEIGHTS[0])] for *_, r in cells for c in CRITERIA):
        lines[-1:-1] = ["- criteria, none reads labels: `stability` = mean ARI between KMeans runs on two 80% "
                        "subsamples (on the texts both hold); `silhouette` = cosine silhouette of the clustering in "
                        "z_w; `consensus` = mean NMI of the clustering with the text-only and the "
                        "interpretation-only clusterings",
                        "- `oracle` = the w with the best ACC (reads labels; a bound, not a method)"]
    lines += ["## ACC by weight", "",
              "| dataset | run | kmeans | " + " | ".join(c if c in NAMED else f"w={c}" for c in columns) + " |",
              "|---|---|---:|" + "---:|" * len(columns)]
    for dataset, run, r in cells:
        best = max(r["weights"][c]["acc"] for c in columns)
        shown_cells = [f"**{r['weights'][c]['acc']:.1f}**" if r["weights"][c]["acc"] == best
                       else f"{r['weights'][c]['acc']:.1f}" for c in columns]
        base = r.get("kmeans_acc")
        lines.append(f"| {dataset} | {run} | {'-' if base is None else f'{base:.1f}'} | " + " | ".join(shown_cells) + " |")
    fired = [f"{dataset} · {run}" for dataset, run, r in cells if r["weights"]["gate"]["w"] == 0]
    lines += ["", f"`gate` took the text alone on {len(fired)} of {len(cells)} runs" + (": " + "; ".join(fired) if fired else "."),
              "", "## The gate's test (resampling stability, mean ARI; lead = joined − text ± its standard error)", "",
              "| dataset | run | text | joined | lead | w taken | ACC w=0 − w=" + DEFAULT + " |", "|---|---|---:|---:|---:|---:|---:|"]
    for dataset, run, r in cells:
        g = r["weights"]["gate"]
        lines.append(f"| {dataset} | {run} | {g['text_stability']:.3f} | {g['joined_stability']:.3f} | "
                     f"{g['lead']:+.3f} ± {g['lead_se']:.3f} | {g['w']:g} | "
                     f"{r['weights']['0.0']['acc'] - r['weights'][DEFAULT]['acc']:+.1f} |")
    gains: dict[str, list[float]] = {}
    picked = [(dataset, run, r, picks(r["weights"])) for dataset, run, r in cells]
    names = ["oracle", *CRITERIA]
    if any(len(p) > 1 for *_, p in picked):
        lines += ["", "## What each criterion picks (w, then ACC at that w)", "",
                  f"| dataset | run | w={DEFAULT} (default) | " + " | ".join(names) + " |",
                  "|---|---|---:|" + "---:|" * len(names)]
        for dataset, run, r, p in picked:
            reference = r["weights"][DEFAULT]["acc"]
            row = []
            for n in names:
                if n in p:
                    row.append(f"{p[n]['w'] if isinstance(p[n]['w'], str) else format(p[n]['w'], 'g')} · "
                               f"{p[n]['acc']:.1f}")
                    gains.setdefault(n, []).append(p[n]["acc"] - reference)
                else:
                    row.append("-")
            lines.append(f"| {dataset} | {run} | {reference:.1f} | " + " | ".join(row) + " |")
    for c in columns:
        if c != DEFAULT:
            gains[c if c in NAMED else f"fixed w={c}"] = [r["weights"][c]["acc"] - r["weights"][DEFAULT]["acc"]
                                                         for *_, r in cells]
    lines += ["", f"Mean ACC change against the default w = {DEFAULT}, over the runs above:", ""]
    lines += [f"- `{n}`: {_vs(g)}" for n, g in gains.items() if g]
    if data.get("anchor"):
        lines += anchor_test(cells)
    with_base = [(r, r["kmeans_acc"]) for *_, r in cells if r.get("kmeans_acc") is not None]
    if with_base:
        lines += ["", "Against the tier's `kmeans` cell of the same dataset and seed (ACC points):", ""]
        for c in columns:
            lines.append(_against_kmeans(_label(c), [r["weights"][c]["acc"] - base for r, base in with_base]))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", nargs="+", default=["levers"],
                        help="the bench tiers whose runs to measure; with several, --name too")
    parser.add_argument("--runs", type=Path, nargs="+", default=[repo_root() / "bench" / "out"],
                        help="the bench's --out-dir; several when the tier's cells were run into more than one")
    parser.add_argument("--name", default=None, help="results file name (default: represent-<tier>)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="KMeans seeds")
    parser.add_argument("--run-seeds", type=int, nargs="+", default=[0], help="which runs: the seeds in their folder names")
    parser.add_argument("--kmeans-init", type=int, default=None, help="KMeans restarts (default: each run's own)")
    parser.add_argument("--criteria", nargs="*", choices=CRITERIA, default=list(CRITERIA),
                        help="label-free criteria to score each w by (none: --criteria alone)")
    parser.add_argument("--base", action="store_true",
                        help="also cluster the base embedder's f(x) alone (plain embed + KMeans)")
    parser.add_argument("--anchor", action="store_true",
                        help="with --base: also cluster `anchor` and `wise`, lever 8's ways of keeping the base embedder")
    parser.add_argument("--only", nargs="+", default=None, metavar="DATASET", help="only these datasets")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.anchor and not args.base:
        raise SystemExit("bench/represent.py: --anchor compares with the base embedder; add --base")
    if len(args.tier) > 1 and not args.name:
        raise SystemExit("bench/represent.py: several --tier need --name, the results file name")
    roots = [(tier, runs / tier) for tier in args.tier for runs in args.runs]
    missing = [root for _, root in roots if not root.is_dir()]
    if missing:
        raise SystemExit(f"bench/represent.py: no runs under {missing[0]}; run `coevo bench bench/configs/{missing[0].name}.toml` first")
    out = results_dir() / (args.name or f"represent-{args.tier[0]}")
    before = read_json(out.with_suffix(".json")) if out.with_suffix(".json").exists() else {}
    settings = {"seeds": args.seeds, "weights": list(WEIGHTS), "rules": list(RULES), "gate_margin": GATE_MARGIN,
                "kmeans_init": args.kmeans_init,
                "criteria": args.criteria, **({"base": True} if args.base else {}),
                **({"anchor": True} if args.anchor else {})}
    if any(before.get(k) != v for k, v in settings.items()):
        before = {}  # other KMeans seeds, weights or rules: nothing can be reused
    provenance = stamp()
    commit, where = provenance["commit"], provenance["machine"]
    baselines = {tier: kmeans_acc(tier) for tier in args.tier}
    # --only measures some datasets; the file keeps what it holds of the others
    results: dict[str, dict] = {d: v for d, v in before.get("results", {}).items() if args.only and d not in args.only}

    def save() -> None:
        """Written after every measured run, so an interrupted pass keeps what it measured."""
        cells = [r for by_run in results.values() for r in by_run.values()]
        data = {"tier": args.tier if len(args.tier) > 1 else args.tier[0], "commits": sorted({r["commit"] for r in cells}), "date": today(), "machine": where,
                "run_seeds": args.run_seeds, **settings, "seconds": sum(r["seconds"] for r in cells), "results": results}
        write_results(out.parent, out.name, data, render)

    for tier, variant_dir in sorted((tier, p) for tier, root in roots for p in root.iterdir() if p.is_dir()):
        for dataset_dir in sorted(p for p in variant_dir.iterdir() if p.is_dir()
                                  and (args.only is None or p.name in args.only)):
            for method in METHODS:
                for run_seed in args.run_seeds:
                    run = dataset_dir / f"{method}-seed{run_seed}"
                    if not (run / "summary.json").is_file():
                        continue
                    variant = f"{tier}/{variant_dir.name}" if len(args.tier) > 1 else variant_dir.name
                    name = f"{method} ({variant}), seed {run_seed}"
                    old = before.get("results", {}).get(dataset_dir.name, {}).get(name)
                    digest = summary_digest(run)
                    if old is None or old.get("summary_sha256") != digest:
                        old = measure(run, args.seeds, commit, digest, args.kmeans_init, args.criteria, args.base, args.anchor)
                        print(dataset_dir.name, name, {w: round(v["acc"], 1) for w, v in old["weights"].items()},
                              file=sys.stderr, flush=True)
                    old["kmeans_acc"] = baselines[tier].get((dataset_dir.name, run_seed))
                    results.setdefault(dataset_dir.name, {})[name] = old
                    save()
    save()


if __name__ == "__main__":
    main()
