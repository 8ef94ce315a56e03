"""Which round should a run's final clustering read? Each finished `full` run of a bench tier
(T = 2), clustered again on every candidate below at the same KMeans seeds, so that two
columns differ by the representation and not by the draw of one KMeans:

- ``base``: the base embedder's f(x) alone, what plain embed + KMeans clusters;
- ``round1``: round 1's representation (its embedder, its interpretations, the weight its gate
  took). It is what a run with ``rounds = 1`` clusters: no step of round 1 reads the adapter
  that round 1's DPO step trains;
- ``round2``: round 2's, what the run clusters (the default);
- ``round1+round2``: both side by side (each a unit row, the pair normalised again);
- ``round2+base``: round 2's beside the base f(x), the text as the untrained embedder reads it.

Two label-free rules choose between the rounds:

- ``round-gate``: round 2, unless round 1's clusters are more reproducible than round 2's by
  more than ``GATE_MARGIN`` standard errors (the resampling stability ``represent gate`` uses:
  both rounds clustered on the same subsample pairs);
- ``no-round-after-back-off``: round 1 where round 2's LLM was backed off to the base model
  (round 2 then trains the embedder again on answers round 1 already used).

Beside them stand the run's own ACC per round (one KMeans each, as the tier's table has it) and
the tier's `kmeans` cell. With ``--groups`` (a tier config's ``[groups]``) the summary is given
per group, so a rule chosen on the dev half is read there before the confirmation half.

    python bench/rounds.py --tier cpu --run-seeds 2 3 4 --groups bench/configs/cpu.toml

With ``--beside TIER`` each run also meets the run of the same dataset and seed in another tier
(its ``rounds-<TIER>.json``, measured at the same KMeans draws): two LLMs or two settings compared
on the same sample of texts and the same draws, where the tiers' own tables differ by one KMeans.

A run measured before is not measured again while its `summary.json` is unchanged.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from coevo.atomic import read_json
from coevo.bench.remeasure import acc_at_draws, add_run_arguments, group_runs, paired_summary, remeasure_runs
from coevo.bench.results import results_dir
from coevo.clustering import GATE_MARGIN, GATE_PAIRS, clearly_leads, normalize

CANDIDATES = ("base", "round1", "round2", "round1+round2", "round2+base")
RULES = ("round-gate", "no-round-after-back-off")


def side_by_side(*views: np.ndarray) -> np.ndarray:
    return normalize(np.concatenate([normalize(v) for v in views], axis=1))


def round_gate(round1: np.ndarray, round2: np.ndarray) -> tuple[str, dict]:
    """Round 2, unless round 1's stability leads by more than ``GATE_MARGIN`` standard errors of the
    pair-by-pair differences (ARI per subsample pair, the same pairs for both rounds): the gate's test."""
    round1_earns, lead = clearly_leads(round1, round2)
    return ("round1" if round1_earns else "round2"), {"round1": float(round1.mean()), "round2": float(round2.mean()),
                                                        **lead}


def measure(run_dir: Path, seeds: list[int], n_init: int) -> dict:
    from coevo import CoEvolution
    from coevo.clustering import embed, gate_subsamples, stability_aris
    from coevo.pipeline import step_seed

    started = time.perf_counter()
    model = CoEvolution.load(run_dir)
    cfg, ctx, k = model.config, model.context_, model.n_clusters_
    if cfg.effective_rounds != 2:
        raise SystemExit(f"bench/rounds.py: {run_dir} ran {cfg.effective_rounds} rounds; this script compares two")
    views = {"base": embed(ctx.embedder(0), model.texts_, progress=False),
             "round1": ctx.representation(1).z, "round2": ctx.representation(2).z}
    views["round1+round2"] = side_by_side(views["round1"], views["round2"])
    views["round2+base"] = side_by_side(views["round2"], views["base"])
    test_seed = step_seed(cfg.seed, 2, "cluster")
    pool, subsets = gate_subsamples(len(model.texts_), seed=test_seed)
    gate_pick, gate_test = round_gate(*(stability_aris(views[r][pool], k, subsets, seed=test_seed, n_init=5)
                                        for r in ("round1", "round2")))
    backed_off = model.history_[1].get("backed_off") is not None
    return {"seconds": time.perf_counter() - started,
            "backed_off": backed_off, "run_acc": {f"round{r['round']}": r["metrics"]["acc"] for r in model.history_},
            **acc_at_draws(views, model.gold_, k, seeds=seeds, n_init=n_init, round_index=2),
            "stability": gate_test,
            "picks": {"round-gate": gate_pick, "no-round-after-back-off": "round1" if backed_off else "round2"}}


def column(run: dict, name: str) -> float:
    """A run's ACC under a candidate, or under the candidate a rule picked."""
    return run["acc"][run["picks"][name] if name in RULES else name]


def render(data: dict) -> str:
    runs = [(dataset, name, r) for dataset, by_run in data["results"].items() for name, r in by_run.items()]
    lines = [f"# Which round the final clustering should read: the `full` runs of tier `{data['tier']}`", "",
             "Written by `bench/rounds.py`; do not edit by hand.", "",
             f"- commits {', '.join(f'`{c}`' for c in data['commits'])}, last run {data['date']}, machine: "
             f"{data['machine']}; {data['seconds']:.0f} s of measuring in all",
             f"- each finished `full` run of seeds {data['run_seeds']} clustered again on every candidate at KMeans "
             f"seeds {data['seeds']}, {data['kmeans_init']} restarts each; ACC in %, the mean over those seeds, so "
             "two columns of a row differ by the representation, not by the draw of one KMeans",
             "- `base`: the base embedder's f(x) alone (what `kmeans` clusters); `round1`: round 1's representation, "
             "what a run with rounds = 1 clusters; `round2`: what the run clusters (the default); `round1+round2` and "
             "`round2+base`: the two side by side, each a unit row",
             f"- `round-gate`: round 2 unless round 1's clusters are more reproducible (mean ARI over {GATE_PAIRS} "
             f"pairs of 80% subsamples, both rounds on the same pairs) by more than {GATE_MARGIN:g} standard error "
             "of the paired differences; `no-round-after-back-off`: round 1 where round 2's LLM was backed off. "
             "Neither reads labels",
             "- `run r1 → r2`: the run's own ACC per round, one KMeans each, as the tier's table has it; `kmeans`: "
             "the tier's `kmeans` cell of the same dataset and seed", "",
             "## Every run", "",
             "| dataset | run | back-off | run r1 → r2 | kmeans | " + " | ".join(CANDIDATES)
             + " | stability r1 / r2 | round-gate | no-round-after-back-off |",
             "|---|---|---|---|---:|" + "---:|" * len(CANDIDATES) + "---|---|---|"]
    for dataset, name, r in runs:
        base = r.get("kmeans_acc")
        s = r["stability"]
        lines.append(f"| {dataset} | {name} | {'yes' if r['backed_off'] else '-'} | "
                     f"{r['run_acc']['round1']:.1f} → {r['run_acc']['round2']:.1f} | "
                     f"{'-' if base is None else f'{base:.1f}'} | "
                     + " | ".join(f"{r['acc'][c]:.1f}" for c in CANDIDATES)
                     + f" | {s['round1']:.3f} / {s['round2']:.3f} | {r['picks']['round-gate']} | "
                     f"{r['picks']['no-round-after-back-off']} |")
    lines += ["", "## By dataset and group", ""]
    for title, runs_of_group in group_runs(data):
        lines += paired_summary(title, runs_of_group, [*CANDIDATES, *RULES], column)
    if data.get("beside"):
        lines += render_beside(data)
    return "\n".join(lines).rstrip() + "\n"


def render_beside(data: dict) -> list[str]:
    """This tier's round 2 against the other tier's round 2 on the same dataset, seed and KMeans draws."""
    other, by_seed = data["beside"]["tier"], data["beside"]["runs"]
    theirs = f"round2 ({other})"
    lines = [f"## Beside tier `{other}`", "",
             f"`{theirs}`: what the run of tier `{other}` with the same dataset and seed clusters, at the same KMeans "
             "draws. The two runs share the sample of texts and the base embedder, so their `base` must agree: a "
             "run whose `base` differs is left out, and so is one without a partner.", ""]
    for title, runs_of_group in group_runs(data):
        paired = []
        for dataset, r in runs_of_group:
            partner = by_seed.get(dataset, {}).get(str(r.get("run_seed")))
            if partner is not None and abs(partner["base"] - r["acc"]["base"]) < 1e-6:
                paired.append((dataset, {"base": r["acc"]["base"], theirs: partner["round2"], "round2": r["acc"]["round2"]}))
        if paired:
            lines += paired_summary(title, paired, ["base", theirs, "round2"], lambda run, c: run[c],
                                    references=("base", theirs))
    return lines


def beside_runs(tier: str, seeds: list[int], n_init: int) -> dict:
    """Each run's ``base`` and ``round2`` ACC in another tier's rounds results, by dataset and seed."""
    path = results_dir() / f"rounds-{tier}.json"
    if not path.is_file():
        raise SystemExit(f"bench/rounds.py: option --beside: no {path}; run `bench/rounds.py --tier {tier}` first")
    data = read_json(path)
    if data["seeds"] != seeds or data["kmeans_init"] != n_init:
        raise SystemExit(f"bench/rounds.py: option --beside: {path} was measured at other KMeans draws "
                         f"(seeds {data['seeds']}, {data['kmeans_init']} restarts); give the same --seeds and --kmeans-init")
    runs: dict[str, dict[str, dict]] = {}
    for dataset, by_run in data["results"].items():
        for r in by_run.values():
            if "run_seed" not in r:
                raise SystemExit(f"bench/rounds.py: option --beside: {path} predates runs keeping their seed; run "
                                 f"`bench/rounds.py --tier {tier}` again with its --run-seeds (nothing is measured again)")
            seed = str(r["run_seed"])
            if seed in runs.get(dataset, {}):
                raise SystemExit(f"bench/rounds.py: option --beside: {path} holds two runs of {dataset} seed {seed}")
            runs.setdefault(dataset, {})[seed] = {"base": r["acc"]["base"], "round2": r["acc"]["round2"]}
    return {"tier": tier, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--beside", default=None, metavar="TIER",
                        help="set each run beside the run of the same dataset and seed in this tier's rounds results")
    args = parser.parse_args()
    beside = beside_runs(args.beside, args.seeds, args.kmeans_init) if args.beside else None
    remeasure_runs("bench/rounds.py", "rounds", args,
                   settings={"candidates": list(CANDIDATES), "rules": list(RULES), "gate_margin": GATE_MARGIN},
                   context={"beside": beside},
                   measure=lambda run: measure(run, args.seeds, args.kmeans_init), render=render,
                   describe=lambda r: ({c: round(v, 1) for c, v in r["acc"].items()}, r["picks"]))


if __name__ == "__main__":
    main()
