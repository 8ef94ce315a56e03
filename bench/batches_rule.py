"""Rule 1b' of issue 13 (one-per-cluster contrastive batches only where K is at least the batch size),
tested as ``bench/configs/batches-confirm-cpu.toml`` stated it before any of its cells ran.

The rule acts on the confirmation sets of at least 32 classes and leaves the others as they were, so its
evidence is those sets' `full` cells in the ``batches-confirm-cpu`` tier (one-per-cluster batches) set
beside the ``cpu`` tier's `full` cells of the same set and seed (the old batches; the same 600-text draw).
It is confirmed if, over those sets, the new `full` minus the old has a mean of at least +0.5 ACC and is
above on at least 3 of the 5, and no set is more than 1.0 below `kmeans` unless it already was. Each set's
figures are means over the seeds both tiers have; the verdict waits until every set has all its seeds.

    python bench/batches_rule.py
"""

from __future__ import annotations

import argparse
import statistics

from coevo.bench.results import cell_acc, results_dir, stamp, write_results

SETS = ("clinc_intent", "massive_intent", "fewnerd", "arxiv_s2s", "reddit")  # the confirmation half's K >= 32
SEEDS = (2, 3, 4)
MIN_MEAN, MIN_ABOVE, FLOOR = 0.5, 3, -1.0


def _mean(acc: dict[tuple[str, str, int], float], method: str, dataset: str, seeds: list[int]) -> float:
    return statistics.fmean(acc[(method, dataset, seed)] for seed in seeds)


def measure(tier: str, against: str) -> dict:
    new, old = cell_acc(tier), cell_acc(against)
    rows = []
    for dataset in SETS:
        seeds = [s for s in SEEDS if ("full", dataset, s) in new and ("full", dataset, s) in old
                 and ("kmeans", dataset, s) in old]
        if not seeds:
            rows.append({"dataset": dataset, "seeds": []})
            continue
        rows.append({"dataset": dataset, "seeds": seeds, "new": _mean(new, "full", dataset, seeds),
                     "old": _mean(old, "full", dataset, seeds), "kmeans": _mean(old, "kmeans", dataset, seeds)})
    done = [r for r in rows if r["seeds"]]
    test = None
    if done:
        diffs = [r["new"] - r["old"] for r in done]
        floor_ok = all(r["new"] - r["kmeans"] >= FLOOR or r["old"] - r["kmeans"] < FLOOR for r in done)
        complete = all(len(r["seeds"]) == len(SEEDS) for r in rows)
        clauses = {f"mean at least {MIN_MEAN:+.1f}": statistics.fmean(diffs) >= MIN_MEAN,
                   f"above on at least {MIN_ABOVE} of {len(SETS)}": sum(d > 0 for d in diffs) >= MIN_ABOVE,
                   f"no new set more than {-FLOOR:.1f} below kmeans": floor_ok}
        test = {"mean": statistics.fmean(diffs), "above": sum(d > 0 for d in diffs), "sets": len(done),
                "complete": complete, "clauses": clauses, "confirmed": complete and all(clauses.values())}
    return {**stamp(), "tier": tier, "against": against, "rows": rows, "test": test}


def render(data: dict) -> str:
    lines = ["# Rule 1b': one-per-cluster batches where K is at least the batch size (issue 13)", "",
             f"`full` of the `{data['tier']}` tier (one-per-cluster batches) against `full` of the `{data['against']}` "
             "tier (no-duplicates batches) on the confirmation sets of at least 32 classes, the sets the rule acts on; "
             "the same 600-text draw and seed on both sides; `kmeans` is the "
             f"`{data['against']}` tier's own cell. Each figure is the mean over the seeds listed (ACC %). The test was "
             "written into bench/configs/batches-confirm-cpu.toml before any of these cells ran.", "",
             f"- Commit {data['commit']}; {data['machine']}; {data['date']}. The cells keep their own commits and "
             "times in the two tiers' files.", "",
             "| dataset | seeds | kmeans | full, old batches | full, rule 1b' | rule minus old | rule minus kmeans |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        if not r["seeds"]:
            lines.append(f"| {r['dataset']} | - | - | - | - | - | - |")
            continue
        lines.append(f"| {r['dataset']} | {', '.join(map(str, r['seeds']))} | {r['kmeans']:.1f} | {r['old']:.1f} | "
                     f"{r['new']:.1f} | {r['new'] - r['old']:+.1f} | {r['new'] - r['kmeans']:+.1f} |")
    test = data["test"]
    if test:
        lines += ["", f"- Over {test['sets']} of {len(data['rows'])} sets: rule minus old batches {test['mean']:+.2f} on "
                  f"the mean, above on {test['above']}.",
                  ("- Clauses: " if test["complete"] else "- Clauses on the cells so far: ") + "; ".join(f"{name}: {'holds' if ok else 'fails'}" for name, ok in test["clauses"].items()) + ".",
                  "- Verdict: " + ("**confirmed**." if test["confirmed"] else
                                   "**not confirmed**." if test["complete"] else
                                   "none yet: some cells have not run.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="batches-confirm-cpu", help="the tier with one-per-cluster batches")
    parser.add_argument("--against", default="cpu", help="the tier with the old batches and the kmeans cells")
    args = parser.parse_args()
    for tier in (args.tier, args.against):
        if not (results_dir() / f"{tier}.json").is_file():
            raise SystemExit(f"bench/batches_rule.py: no results for tier {tier!r} in {results_dir()}; run its bench first")
    json_path, md_path = write_results(results_dir(), "batches-rule-cpu", measure(args.tier, args.against), render)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
