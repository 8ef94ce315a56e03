"""Measuring a tier's finished `full` runs again, for the scripts that compare what a run could
have clustered (``bench/rounds.py``: which round; ``bench/contrastive.py``: which contrastive
training). Both walk the same runs in the same order, keep what an earlier pass measured of a run
whose summary is unchanged, write after every run, and summarise per group (dev, confirmation)
against the base f(x) at equal KMeans draws, in the figures issue 13's targets are stated in.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..atomic import read_json
from .results import kmeans_acc, repo_root, results_dir, stamp, summary_digest, today, write_results


def read_groups(path: Path | None, script: str) -> dict[str, list[str]] | None:
    """A tier config's ``[groups]`` (e.g. dev, confirmation), or None without ``--groups``."""
    if path is None:
        return None
    try:
        groups = tomllib.loads(path.read_text(encoding="utf-8")).get("groups")
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SystemExit(f"{script}: option --groups: cannot read {path}: {error}") from None
    if not groups:
        raise SystemExit(f"{script}: option --groups: {path} has no [groups] table")
    return groups


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every script built on ``remeasure_runs``: whose runs, which KMeans draws, which groups."""
    parser.add_argument("--tier", default="cpu", help="the bench tier whose `full` runs to measure")
    parser.add_argument("--with-tier", nargs="+", default=[], metavar="TIER", dest="with_tiers",
                        help="other tiers whose runs of the same seeds join these in one file, each row named by its tier")
    parser.add_argument("--runs", type=Path, default=repo_root() / "bench" / "out", help="the bench's --out-dir")
    parser.add_argument("--run-seeds", type=int, nargs="+", default=[0], help="which runs: the seeds in their folder names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="KMeans seeds")
    parser.add_argument("--kmeans-init", type=int, default=10, help="KMeans restarts")
    parser.add_argument("--groups", type=Path, default=None,
                        help="a tier config whose [groups] (e.g. dev, confirmation) the summary is split by")
    parser.add_argument("--only", nargs="+", default=None, metavar="DATASET", help="only these datasets")


def remeasure_runs(script: str, name: str, args: argparse.Namespace, *, settings: dict,
                   measure: Callable[[Path], dict], render: Callable[[dict], str],
                   describe: Callable[[dict], object], context: dict | None = None) -> None:
    """Measure every finished `full` run of ``args.run_seeds`` under ``args.runs/args.tier``
    (``<variant>/<dataset>/full-seed<N>``) with ``measure(run_dir)`` into ``docs/results/<name>-<tier>``
    .json/.md, each stamped with its summary's digest and the commit that measured it.

    A run measured before with the same ``settings`` (and KMeans draws) is not measured again while its
    summary.json is unchanged (``context`` is written beside the results for ``render`` and is no reason to
    measure again); ``--with-tier`` adds the runs of other tiers to the same file (their rows say the tier,
    their ``kmeans`` is their own tier's cell), so one summary can hold choosing runs that ran as different
    tiers; ``--only`` measures some datasets and keeps what the file holds of the others. A run of
    ``args.run_seeds`` whose folder is gone keeps what was measured of it, said on stderr: run folders are not
    kept from one machine to the next, and a second seed must not cost the first its row.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tier, run_seeds, only = args.tier, args.run_seeds, args.only
    tiers = list(dict.fromkeys([tier, *getattr(args, "with_tiers", [])]))
    groups = read_groups(args.groups, script)
    settings = {"seeds": args.seeds, "kmeans_init": args.kmeans_init, **settings}
    out = results_dir() / f"{name}-{tier}"
    for each in tiers:
        if not (args.runs / each).is_dir():
            raise SystemExit(f"{script}: no runs under {args.runs / each}; run `coevo bench bench/configs/{each}.toml` first")
    json_path = out.parent / f"{out.name}.json"  # not with_suffix: a tier's name may hold a dot (llm-1.5b-cpu)
    before = read_json(json_path) if json_path.exists() else {}
    if any(before.get(k) != v for k, v in settings.items()):
        before = {}  # other KMeans draws or columns: nothing can be reused
    provenance = stamp()
    baselines = {each: kmeans_acc(each) for each in tiers}
    results: dict[str, dict] = {}
    for dataset, by_run in before.get("results", {}).items():
        kept = {label: r for label, r in by_run.items()
                if (only and dataset not in only) or r.get("run_seed") in run_seeds}
        if kept:
            results[dataset] = kept
    unseen = {(d, label) for d, by_run in results.items() if not only or d in only for label in by_run}
    order = [d for members in (groups or {}).values() for d in members]

    def rank(dataset: str) -> tuple[int, str]:  # the groups' order, then the others by name
        return (order.index(dataset) if dataset in order else len(order), dataset)

    def save() -> None:
        cells = [r for by_run in results.values() for r in by_run.values()]
        ordered = {d: results[d] for d in sorted(results, key=rank)}
        data = {"tier": tier, "with_tiers": tiers[1:], "commits": sorted({r["commit"] for r in cells}), "date": today(),
                "machine": provenance["machine"], "run_seeds": run_seeds, **settings, **(context or {}),
                "seconds": sum(r["seconds"] for r in cells), "groups": groups, "results": ordered}
        write_results(out.parent, out.name, data, render)

    datasets = sorted({p.parent.name for each in tiers for p in (args.runs / each).glob("*/*/full-seed*") if p.is_dir()},
                      key=rank)
    for dataset in datasets:
        if only and dataset not in only:
            continue
        for each, seed in ((each, seed) for each in tiers for seed in run_seeds):
            for run in sorted((args.runs / each).glob(f"*/{dataset}/full-seed{seed}")):
                if not (run / "summary.json").is_file():
                    continue
                variant = run.parent.parent.name if each == tier else f"{run.parent.parent.name}, tier {each}"
                label = f"full ({variant}), seed {seed}"
                old = before.get("results", {}).get(dataset, {}).get(label)
                digest = summary_digest(run)
                if old is None or old.get("summary_sha256") != digest:
                    old = {"summary_sha256": digest, "commit": provenance["commit"], **measure(run)}
                    print(dataset, label, describe(old), file=sys.stderr, flush=True)
                old["run_seed"], old["kmeans_acc"] = seed, baselines[each].get((dataset, seed))
                results.setdefault(dataset, {})[label] = old
                unseen.discard((dataset, label))
                save()
    for dataset, label in sorted(unseen):
        print(f"{script}: {dataset} {label}: no run folder under {args.runs}; kept as measured at "
              f"{results[dataset][label]['commit']}", file=sys.stderr)
    save()


def acc_at_draws(views: dict[str, np.ndarray], gold: list[str], n_clusters: int, *, seeds: list[int], n_init: int,
                 round_index: int) -> dict:
    """Each view's ACC at the same KMeans draws (the cluster step's seed of ``round_index`` for each of
    ``seeds``), so two views differ by the representation, not by a draw: ``acc`` (the mean) and ``acc_by_seed``."""
    from ..clustering import kmeans
    from ..metrics import evaluate
    from ..steps import step_seed

    by_seed = {name: [evaluate(gold, kmeans(z, n_clusters, seed=step_seed(s, round_index, "cluster"),
                                            n_init=n_init).labels)["acc"] for s in seeds] for name, z in views.items()}
    return {"acc": {name: float(np.mean(accs)) for name, accs in by_seed.items()}, "acc_by_seed": by_seed}


def group_runs(data: dict) -> list[tuple[str, list[tuple[str, dict]]]]:
    """(title, [(dataset, run)]) per group of the file (one group "all" without groups), in the file's order."""
    runs = [(dataset, r) for dataset, by_run in data["results"].items() for r in by_run.values()]
    groups = data.get("groups") or {"all": sorted(data["results"])}
    out = []
    for group, members in groups.items():
        chosen = [(d, r) for d, r in runs if d in members]
        if chosen:
            out.append((f"{group} ({len({d for d, _ in chosen})} datasets, {len(chosen)} runs)", chosen))
    return out


def paired_summary(title: str, runs: list[tuple[str, dict]], columns: list[str], value: Callable[[dict, str], float],
                   references: tuple[str, ...] = ("base",)) -> list[str]:
    """Per dataset (mean over its runs) each column's ACC, then every other column against each of ``references``."""
    datasets = list(dict.fromkeys(d for d, _ in runs))
    means = {d: {c: float(np.mean([value(r, c) for dd, r in runs if dd == d])) for c in columns} for d in datasets}
    lines = [f"### {title}", "", "| dataset | runs | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for d in datasets:
        best = max(means[d].values())
        lines.append(f"| {d} | {sum(dd == d for dd, _ in runs)} | "
                     + " | ".join(f"**{v:.1f}**" if v == best else f"{v:.1f}" for v in means[d].values()) + " |")
    for i, reference in enumerate(references):
        lines += ["", f"Against `{reference}` at the same KMeans draws (dataset means):", ""]
        for c in columns:
            if c in references[: i + 1]:  # an earlier reference against this one is the line above, sign turned
                continue
            diffs = [means[d][c] - means[d][reference] for d in datasets]
            lines.append(f"- `{c}`: mean {np.mean(diffs):+.2f}; above on {sum(x > 0 for x in diffs)} of {len(diffs)}, "
                         f"more than 1.0 below on {sum(x < -1.0 for x in diffs)}, lowest {min(diffs):+.2f}")
    return lines + [""]
