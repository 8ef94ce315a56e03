"""Is the gate fooled where the text alone is strong, and would a ceiling on the text's stability fix it
without a rule chosen on the sets that confirm it? Read from the files `bench/represent.py` wrote (no run
is clustered again), in two groups kept apart: the runs a rule may be chosen on (design and dev) and the
runs that only confirm it.

The rule under test (issue 13, lever 7, written down in ``bench/configs/strong-text-1.5b-cpu.toml`` before
its design runs): ``gate``, but the text alone whenever the text's stability (the gate's own measure, mean
ARI of KMeans on subsample pairs) is at least tau, whatever the join's lead. A run where the gate kept the
join and the join was below the text is one the gate was *fooled* on; a run where the join was above the
text by more than ``LIFT`` is one a ceiling must leave alone. Tau exists only where at least
``MIN_FOOLED`` fooled runs of the choosing group lie above the most stable run the join lifted; it is then
the midpoint between that run's stability and the lowest of those fooled runs'. Only an adopted tau is
applied to the confirmation group. ACC is each represent file's: equal KMeans draws for every column.

    python bench/gate_rules.py --choose represent-design-cpu represent-dev-s23-cpu represent-strong-text-1.5b-cpu \\
        represent-anchor-cpu --confirm represent-confirmation-cpu represent-llm-1.5b-confirm-cpu     # -> docs/results/gate-rules.*
"""

from __future__ import annotations

import argparse

import numpy as np

from coevo.atomic import read_json
from coevo.bench.results import results_dir, stamp, today, write_results
from coevo.config import CoEvoConfig

LIFT = 0.5  # ACC points by which a join must beat the text for a ceiling to have to leave the run alone
MIN_FOOLED = 2  # fooled runs of the choosing group a tau must correct before it is adopted
TEXT = "0.0"  # the text alone (w = 0) ...
JOIN = str(CoEvoConfig.__dataclass_fields__["interp_weight"].default)  # ... and the join at the default w: the gate's two


def gate_runs(name: str, data: dict) -> list[dict]:
    """One row per run of a represent file that carries the gate's test."""
    rows = []
    for dataset, by_run in data["results"].items():
        for run, r in by_run.items():
            gate = r["weights"].get("gate", {})
            if "text_stability" not in gate:
                continue  # measured before the gate recorded its test
            rows.append({"file": name, "dataset": dataset, "run": run, "text_stability": gate["text_stability"],
                         "lead": gate["lead"], "lead_se": gate["lead_se"], "gate_w": gate["w"], "gate": gate["acc"],
                         "text": r["weights"][TEXT]["acc"], "join": r["weights"][JOIN]["acc"]})
    return rows


def choose_ceiling(rows: list[dict]) -> dict:
    """Tau from the choosing group's runs (see the module's docstring), or why there is none."""
    lifted = [r["text_stability"] for r in rows if r["join"] - r["text"] > LIFT]
    floor = max(lifted, default=0.0)
    fooled = sorted(r["text_stability"] for r in rows
                    if r["gate_w"] > 0 and r["join"] < r["text"] and r["text_stability"] > floor)
    out = {"lifted_max_stability": floor, "fooled_above": fooled}
    if len(fooled) < MIN_FOOLED:
        return {**out, "tau": None}
    return {**out, "tau": (floor + fooled[0]) / 2}


def apply(rows: list[dict], tau: float | None) -> dict:
    """ACC of the text, the join, the gate and (with a tau) the ceiling over ``rows``, and the runs it changes."""
    out = {"runs": len(rows), "text": float(np.mean([r["text"] for r in rows])),
           "join": float(np.mean([r["join"] for r in rows])), "gate": float(np.mean([r["gate"] for r in rows])),
           "oracle": float(np.mean([max(r["text"], r["join"]) for r in rows]))}
    if tau is not None:
        out["ceiling"] = float(np.mean([r["text"] if r["text_stability"] >= tau else r["gate"] for r in rows]))
        out["changed"] = [f"{r['dataset']} · {r['run']}" for r in rows if r["gate_w"] > 0 and r["text_stability"] >= tau]
    return out


def render(data: dict) -> str:
    tau = data["ceiling"]["tau"]
    lines = ["# The gate where the text is strong: a ceiling on the text's stability (issue 13, lever 7)", "",
             "Written by `bench/gate_rules.py` from the files `bench/represent.py` wrote; do not edit by hand.", "",
             f"- read {data['date']} at commit `{data['commit']}`; choosing group: "
             + ", ".join(f"`{f}`" for f in data["choose"]) + "; confirmation group: "
             + (", ".join(f"`{f}`" for f in data["confirm"]) or "none"),
             f"- text = w 0, join = w {JOIN}, ACC in % at each file's equal KMeans draws; `gate` = the join where "
             "the run's gate kept it; fooled = the gate kept the join and the join was below the text; lifted = "
             f"the join above the text by more than {LIFT}",
             f"- the rule: the text alone where text stability >= tau; tau only where at least {MIN_FOOLED} fooled "
             "runs of the choosing group lie above the most stable lifted run (the midpoint of the two); "
             "the confirmation group sees only an adopted tau", "",
             "## Runs", "",
             "| group | file | dataset | run | text stability | lead / SE | gate w | text | join | join − text |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for group in ("choose", "confirm"):
        for r in sorted(data["rows"][group], key=lambda r: -r["text_stability"]):
            lines.append(f"| {group} | {r['file']} | {r['dataset']} | {r['run']} | {r['text_stability']:.3f} | "
                         f"{r['lead'] / r['lead_se']:+.1f} | {r['gate_w']:g} | {r['text']:.1f} | {r['join']:.1f} | "
                         f"{r['join'] - r['text']:+.1f} |")
    c = data["ceiling"]
    lines += ["", "## The ceiling", "",
              f"- most stable lifted run of the choosing group: text stability {c['lifted_max_stability']:.3f}",
              f"- fooled runs above it: {len(c['fooled_above'])}"
              + (" (" + ", ".join(f"{s:.3f}" for s in c["fooled_above"]) + ")" if c["fooled_above"] else ""),
              f"- **tau = {tau:.3f}: adopted**" if tau is not None else
              f"- **no tau: fewer than {MIN_FOOLED} fooled runs to choose it on; the rule is dropped**", "",
              "| group | runs | text | join | gate | " + ("ceiling | " if tau is not None else "") + "oracle |",
              "|---|---:|---:|---:|---:|" + ("---:|" if tau is not None else "") + "---:|"]
    for group, s in data["summary"].items():
        lines.append(f"| {group} | {s['runs']} | {s['text']:.2f} | {s['join']:.2f} | {s['gate']:.2f} | "
                     + (f"{s['ceiling']:.2f} | " if tau is not None else "") + f"{s['oracle']:.2f} |")
    if tau is not None:
        for group, s in data["summary"].items():
            lines.append(f"- {group}: the ceiling changes {len(s['changed'])} run(s)"
                         + (": " + "; ".join(s["changed"]) if s["changed"] else ""))
    lines.append("- `oracle` takes the better of text and join per run: it reads the labels; a bound, not a method")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--choose", nargs="+", required=True, metavar="FILE",
                        help="represent result files (names under docs/results, no suffix) a rule may be chosen on")
    parser.add_argument("--confirm", nargs="*", default=[], metavar="FILE",
                        help="represent result files that only confirm an adopted rule")
    parser.add_argument("--name", default="gate-rules", help="results file name (default: gate-rules)")
    args = parser.parse_args()
    rows = {}
    for group, names in (("choose", args.choose), ("confirm", args.confirm)):
        rows[group] = []
        for name in names:
            path = results_dir() / f"{name}.json"
            if not path.is_file():
                raise SystemExit(f"bench/gate_rules.py: {path} not found; run bench/represent.py for it first")
            rows[group] += gate_runs(name, read_json(path))
    ceiling = choose_ceiling(rows["choose"])
    summary = {group: apply(r, ceiling["tau"]) for group, r in rows.items() if r}
    provenance = stamp()
    data = {"commit": provenance["commit"], "date": today(), "choose": args.choose, "confirm": args.confirm,
            "lift": LIFT, "min_fooled": MIN_FOOLED, "ceiling": ceiling, "summary": summary, "rows": rows}
    for path in write_results(results_dir(), args.name, data, render):
        print(path)


if __name__ == "__main__":
    main()
