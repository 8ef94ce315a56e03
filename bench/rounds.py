"""Which round should a run's final clustering read? Each finished `full` run of a bench tier
(T = 2 or more rounds), clustered again on every candidate below at the same KMeans seeds, so that
two columns differ by the representation and not by the draw of one KMeans:

- ``base``: the base embedder's f(x) alone, what plain embed + KMeans clusters;
- ``round1`` ... ``roundT``: round r's representation (its embedder, its interpretations, the weight
  its gate took). Round r is what a run with ``rounds = r`` clusters: no step of a round reads the
  adapter that the round's own DPO step trains, so a run of T rounds holds its shorter twins; the
  last is what the run clusters (the default);
- ``round1+round2``: the first two side by side (each a unit row, the pair normalised again);
- ``round2+base``: round 2's beside the base f(x), the text as the untrained embedder reads it.

Two label-free rules choose between the rounds:

- ``round-gate``: the last round, unless the round before it clusters more reproducibly by more
  than ``GATE_MARGIN`` standard errors (the resampling stability ``represent gate`` uses: both
  rounds clustered on the same subsample pairs);
- ``no-round-after-back-off``: the round before the last where the last round's LLM was backed
  off to the base model (the last round then trains the embedder again on answers already used).

Where the runs made three rounds or more, the report ends with the test that
``bench/configs/rounds3-cpu.toml`` wrote before its runs: the last round against the one before.

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

SIDE_BY_SIDE = ("round1+round2", "round2+base")
RULES = ("round-gate", "no-round-after-back-off")


def candidates(rounds: int) -> tuple[str, ...]:
    """The columns of a run of ``rounds`` rounds: the base, each round, the side-by-side views."""
    return ("base", *(f"round{r}" for r in range(1, rounds + 1)), *SIDE_BY_SIDE)


def rounds_of(run: dict) -> int:
    return run.get("rounds", 2)  # results measured before runs of three rounds were read hold two


def side_by_side(*views: np.ndarray) -> np.ndarray:
    return normalize(np.concatenate([normalize(v) for v in views], axis=1))


def round_gate(previous: np.ndarray, last: np.ndarray, rounds: int = 2) -> tuple[str, dict]:
    """The last round, unless the one before's stability leads by more than ``GATE_MARGIN`` standard errors
    of the pair-by-pair differences (ARI per subsample pair, the same pairs for both rounds): the gate's test."""
    earlier, later = f"round{rounds - 1}", f"round{rounds}"
    previous_earns, lead = clearly_leads(previous, last)
    return (earlier if previous_earns else later), {earlier: float(previous.mean()), later: float(last.mean()), **lead}


def measure(run_dir: Path, seeds: list[int], n_init: int) -> dict:
    from coevo import CoEvolution
    from coevo.clustering import embed, gate_subsamples, stability_aris
    from coevo.pipeline import step_seed

    started = time.perf_counter()
    model = CoEvolution.load(run_dir)
    cfg, ctx, k = model.config, model.context_, model.n_clusters_
    rounds = cfg.effective_rounds
    if rounds < 2:
        raise SystemExit(f"bench/rounds.py: {run_dir} ran one round; this script compares rounds")
    views = {"base": embed(ctx.embedder(0), model.texts_, progress=False),
             **{f"round{r}": ctx.representation(r).z for r in range(1, rounds + 1)}}
    views["round1+round2"] = side_by_side(views["round1"], views["round2"])
    views["round2+base"] = side_by_side(views["round2"], views["base"])
    earlier, last = f"round{rounds - 1}", f"round{rounds}"
    test_seed = step_seed(cfg.seed, rounds, "cluster")
    pool, subsets = gate_subsamples(len(model.texts_), seed=test_seed)
    gate_pick, gate_test = round_gate(*(stability_aris(views[r][pool], k, subsets, seed=test_seed, n_init=5)
                                        for r in (earlier, last)), rounds=rounds)
    backed_off = model.history_[rounds - 1].get("backed_off") is not None
    steps = model.folder_.state().get("seconds", {})
    twin_lacks = {f"{earlier}/dpo", *(k for k in steps if k.startswith(f"{last}/"))}  # what a run one round shorter skips
    # every tier is clustered at round 2's draws, so runs of two and of three rounds meet at the same draws
    return {"seconds": time.perf_counter() - started, "rounds": rounds,
            "backed_off": backed_off, "run_acc": {f"round{r['round']}": r["metrics"]["acc"] for r in model.history_},
            **acc_at_draws(views, model.gold_, k, seeds=seeds, n_init=n_init, round_index=2),
            "stability": gate_test,
            "step_seconds": {"run": sum(steps.values()), "shorter_twin": sum(v for k, v in steps.items() if k not in twin_lacks)},
            "picks": {"round-gate": gate_pick, "no-round-after-back-off": earlier if backed_off else last}}


def column(run: dict, name: str) -> float:
    """A run's ACC under a candidate, or under the candidate a rule picked."""
    return run["acc"][run["picks"][name] if name in RULES else name]


def render(data: dict) -> str:
    runs = [(dataset, name, r) for dataset, by_run in data["results"].items() for name, r in by_run.items()]
    shortest = min((rounds_of(r) for _, _, r in runs), default=2)
    columns = candidates(max((rounds_of(r) for _, _, r in runs), default=2))
    lines = [f"# Which round the final clustering should read: the `full` runs of tier `{data['tier']}`", "",
             "Written by `bench/rounds.py`; do not edit by hand.", "",
             f"- commits {', '.join(f'`{c}`' for c in data['commits'])}, last run {data['date']}, machine: "
             f"{data['machine']}; {data['seconds']:.0f} s of measuring in all",
             f"- each finished `full` run of seeds {data['run_seeds']} clustered again on every candidate at KMeans "
             f"seeds {data['seeds']}, {data['kmeans_init']} restarts each; ACC in %, the mean over those seeds, so "
             "two columns of a row differ by the representation, not by the draw of one KMeans",
             "- `base`: the base embedder's f(x) alone (what `kmeans` clusters); `round1`, `round2`, ...: round r's "
             "representation, what a run with rounds = r clusters; the last round is what the run clusters (the "
             "default); `round1+round2` and `round2+base`: the two side by side, each a unit row",
             f"- `round-gate`: the last round unless the round before clusters more reproducibly (mean ARI over "
             f"{GATE_PAIRS} pairs of 80% subsamples, both rounds on the same pairs) by more than {GATE_MARGIN:g} "
             "standard error of the paired differences; `no-round-after-back-off`: the round before the last where "
             "the last round's LLM was backed off. Neither reads labels",
             "- `run by round`: the run's own ACC per round, one KMeans each, as the tier's table has it; `kmeans`: "
             "the tier's `kmeans` cell of the same dataset and seed; `stability`: the last two rounds'", "",
             "## Every run", "",
             "| dataset | run | back-off | run by round | kmeans | " + " | ".join(columns)
             + " | stability | round-gate | no-round-after-back-off |",
             "|---|---|---|---|---:|" + "---:|" * len(columns) + "---|---|---|"]
    for dataset, name, r in runs:
        base, s, last = r.get("kmeans_acc"), r["stability"], rounds_of(r)
        lines.append(f"| {dataset} | {name} | {'yes' if r['backed_off'] else '-'} | "
                     + " → ".join(f"{r['run_acc'][f'round{i}']:.1f}" for i in range(1, last + 1))
                     + f" | {'-' if base is None else f'{base:.1f}'} | "
                     + " | ".join(f"{r['acc'][c]:.1f}" if c in r["acc"] else "-" for c in columns)
                     + f" | {s[f'round{last - 1}']:.3f} / {s[f'round{last}']:.3f} | {r['picks']['round-gate']} | "
                     f"{r['picks']['no-round-after-back-off']} |")
    lines += ["", "## By dataset and group", ""]
    for title, runs_of_group in group_runs(data):
        lines += paired_summary(title, runs_of_group, [*candidates(shortest), *RULES], column)
    if shortest >= 3:
        lines += render_last_round_test([r for _, _, r in runs], shortest)
    if data.get("beside"):
        lines += render_beside(data)
    return "\n".join(lines).rstrip() + "\n"


def last_round_test(runs: list[dict], rounds: int) -> dict:
    """The adoption test of ``bench/configs/rounds3-cpu.toml``, written before its runs: round ``rounds``
    against the round before, per run at the same KMeans draws."""
    later, earlier = f"round{rounds}", f"round{rounds - 1}"
    gains = [r["acc"][later] - r["acc"][earlier] for r in runs]
    lowest = {c: min(r["acc"][c] - r["acc"]["base"] for r in runs) for c in (earlier, later)}
    checks = {"mean gain at least +0.5": float(np.mean(gains)) >= 0.5,
              "above on more than half of the runs": sum(g > 0 for g in gains) > len(gains) / 2,
              "lowest against base within 0.5 of the round before's": lowest[later] >= lowest[earlier] - 0.5}
    timed = [r["step_seconds"] for r in runs if "step_seconds" in r]
    cost = {"run_minutes": sum(t["run"] for t in timed) / 60, "twin_minutes": sum(t["shorter_twin"] for t in timed) / 60,
            "runs": len(timed)}
    return {"mean_gain": float(np.mean(gains)), "above": sum(g > 0 for g in gains), "runs": len(gains),
            "lowest": lowest, "checks": checks, "adopted": all(checks.values()), "cost": cost}


def render_last_round_test(runs: list[dict], rounds: int) -> list[str]:
    test = last_round_test(runs, rounds)
    later, earlier = f"round{rounds}", f"round{rounds - 1}"
    lines = [f"## `{later}` against `{earlier}`: the test written before the runs", "",
             f"Over the {test['runs']} runs, at the same KMeans draws: `{later}` − `{earlier}` is "
             f"{test['mean_gain']:+.2f} on the mean, above on {test['above']} of {test['runs']}; the lowest difference "
             f"to `base` is {test['lowest'][later]:+.2f} for `{later}` and {test['lowest'][earlier]:+.2f} for `{earlier}`.", ""]
    lines += [f"- {name}: {'yes' if ok else 'no'}" for name, ok in test["checks"].items()]
    cost = test["cost"]
    if cost["runs"] and cost["twin_minutes"]:
        lines += ["", f"Cost (the runs' own step timings, {cost['runs']} runs): {cost['run_minutes']:.1f} minutes in all; "
                      f"the steps a run of {rounds - 1} rounds makes took {cost['twin_minutes']:.1f} of them, so the last "
                      f"round and the DPO step before it cost {cost['run_minutes'] / cost['twin_minutes']:.2f} times "
                      "the shorter run's time"]
    verdict = (f"**adopted**: the tier moves to T = {rounds}" if test["adopted"]
               else f"**not adopted**: the tier stays at T = {rounds - 1}")
    return lines + ["", verdict, ""]


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
                   settings={"rules": list(RULES), "gate_margin": GATE_MARGIN},
                   context={"beside": beside},
                   measure=lambda run: measure(run, args.seeds, args.kmeans_init), render=render,
                   describe=lambda r: ({c: round(v, 1) for c, v in r["acc"].items()}, r["picks"]))


if __name__ == "__main__":
    main()
