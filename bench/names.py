"""Name quality, measured: does a cluster's name say what its gold label says?

    python bench/names.py                                     # the cpu tier's `full` cells under bench/out/cpu
    python bench/names.py --runs-root /work/benchwt/bench/out/cpu
    python bench/names.py --fallback-root bench/out/levers-cpu   # datasets the cpu tier lacks, from another tier
    python bench/names.py RUN_DIR [RUN_DIR ...] --results /tmp/names   # given run folders only

For every finished run folder with cluster names and gold labels: each cluster's
name, its majority gold label and that label's share of the cluster, and whether
the name matches the label, exactly after normalising or by the cosine similarity
of their embeddings (the default base embedder, loaded through coevo.models) at or
above --threshold (``coevo.name_quality``). Per dataset: the rates, and ten random
clusters (seeded) so a person can judge the names themselves. Written to
docs/results/names.{json,md}, with the 14 ClusterLLM datasets listed whether or not
they have run yet, and for each the run folder, settings and commit the names came from.

A dataset that the previous names.json scored, but whose run folder is not under the runs root
any more (run folders live in a bench worktree that a later session may not have), is kept as
it was scored, marked with that file's commit, so the table grows as cells finish.

The threshold is chosen on hand-made pairs (``CALIBRATION``, shown in the report
with their similarities), and the rates are given at several thresholds so the
choice is visible.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from coevo.atomic import read_json
from coevo.bench.results import repo_root, results_dir, stamp, write_results
from coevo.errors import CoevoError
from coevo.name_quality import label_text, normalise, score_names, summarise

DATASETS = ("bank77", "mtop_intent", "fewrel", "fewevent", "stackexchange", "goemo", "clinc_domain",
            "clinc_intent", "massive_intent", "fewnerd", "arxiv_s2s", "reddit", "mtop_domain", "massive_domain")
"""The 14 ClusterLLM datasets, in the order of bench/configs/cpu.toml."""

EXCLUDED = {
    "arxiv_s2s": "its gold labels are arXiv category codes (`cs.IT`, `math.CO`, `cond-mat.supr-con`), not names: "
                 "neither an exact match nor an embedding compares a name with a code, and the 93 codes were not "
                 "mapped to names here. Its examples are listed for reading; it is not scored",
}
"""Datasets whose labels cannot be compared with a name (/work/shared/data/README.md: the rest carry class names)."""

THRESHOLD = 0.5
THRESHOLDS = (0.4, 0.5, 0.6, 0.7)
EXAMPLES = 10

CALIBRATION = (
    # same meaning, other words: a name a person would accept for the label
    ("same meaning", "lost card", "card lost or stolen"),
    ("same meaning", "refund not received", "refund not showing"),
    ("same meaning", "card delivery time", "card delivery estimate"),
    ("same meaning", "set an alarm", "alarm set"),
    ("same meaning", "weather forecast", "weather"),
    ("same meaning", "cooking recipes", "recipes"),
    ("same meaning", "movie director", "director"),
    ("same meaning", "marriage", "Marry"),
    ("same meaning", "thankful", "gratitude"),
    ("same meaning", "happiness", "joy"),
    ("same meaning", "space exploration", "space.stackexchange.com"),
    ("same meaning", "password reset", "passcode forgotten"),
    # a neighbouring label of the same dataset: the name is about the topic, but the wrong class
    ("sibling label", "set an alarm", "alarm remove"),
    ("sibling label", "card arrival", "card delivery estimate"),
    ("sibling label", "pending top up", "top up failed"),
    ("sibling label", "play music", "music settings"),
    ("sibling label", "exchange rate", "exchange charge"),
    ("sibling label", "card payment declined", "card payment wrong exchange rate"),
    ("sibling label", "joy", "sadness"),
    # unrelated
    ("unrelated", "music", "alarm"),
    ("unrelated", "physics", "german.stackexchange.com"),
    ("unrelated", "lost card", "recipes"),
    ("unrelated", "chess", "cooking recipe"),
    ("unrelated", "sadness", "transfer"),
    ("unrelated", "set an alarm", "get weather"),
    ("unrelated", "card arrival", "weather"),
)
"""Hand-made (kind, name, label) pairs the threshold was chosen on; their similarities are printed in the report."""


def fail(message: str) -> SystemExit:
    print(f"bench/names.py: error: {message}", file=sys.stderr)
    return SystemExit(2)


# ------------------------------------------------------------------ finding and reading runs


def find_runs(runs_root: Path, method: str) -> tuple[dict[str, Path], dict[str, str]]:
    """Per dataset, the finished ``method`` run folder to score, and why the others have none.

    The bench lays its cells out as ``<runs_root>/<variant>/<dataset>/<method>-seed<n>``;
    the ``default`` variant and the lowest seed come first. A folder without
    summary.json is a run still going (or stopped): it is reported, not scored.
    """
    found: dict[str, list[Path]] = {}
    for folder in runs_root.glob(f"*/*/{method}-seed*"):
        if folder.is_dir():
            found.setdefault(folder.parent.name, []).append(folder)
    chosen, status = {}, {}
    for dataset, folders in found.items():
        def order(path: Path) -> tuple:
            seed = path.name.rsplit("seed", 1)[1]
            return (path.parent.parent.name != "default", int(seed) if seed.isdigit() else 1 << 30, str(path))

        finished = sorted((f for f in folders if (f / "summary.json").is_file()), key=order)
        if finished:
            chosen[dataset] = finished[0]
        else:
            status[dataset] = "not finished yet"
    return chosen, status


def recorded_without_folder(runs_root: Path, method: str) -> dict[str, str]:
    """Datasets whose ``method`` cell the bench recorded, with the tier's current settings, though its
    run folder is not under ``runs_root`` (``<tree>/bench/out/<tier>``): what to say instead of "not run yet".

    A record of an earlier version of the tier (other settings, the bench report's
    stale cells) does not count: that cell is still to run.
    """
    from coevo.bench import ReportMeta, load_bench_config, read_records
    from coevo.bench.report import is_stale

    runs_root = runs_root.resolve()
    if len(runs_root.parents) < 3 or runs_root.parents[0].name != "out" or runs_root.parents[1].name != "bench":
        return {}
    tree, tier = runs_root.parents[2], runs_root.name
    try:
        meta = ReportMeta.of(load_bench_config(tree / "bench" / "configs" / f"{tier}.toml"))
        records = read_records(tree / "docs" / "results" / f"{tier}.json")
    except (OSError, ValueError, CoevoError):
        return {}
    return {r.dataset: f"no run folder (the bench recorded this cell, commit {r.commit}, {r.date[:10]}, but its "
                       "folder is not under the runs root)"
            for r in records if r.method == method and r.source == "run" and r.status == "ok" and not is_stale(r, meta)}


def bench_record(run_dir: Path, finished: float) -> dict:
    """The bench's record of the cell that made ``run_dir`` (its commit and date), when there is one.

    A cell under ``<tree>/bench/out/<tier>/`` is recorded in ``<tree>/docs/results/<tier>.json``;
    one that ``coevo bench --out-dir DIR`` made, under ``DIR/<tier>/``, in ``DIR/<tier>.json``.
    A record dated before the run folder's summary.json was written belongs to an
    earlier run in the same folder (a re-run tier), so its commit is not this run's.
    """
    run_dir = run_dir.resolve()
    parents = run_dir.parents  # <out>/<tier>/<variant>/<dataset>/<cell>
    if len(parents) < 5:
        return {"commit": None, "note": "not a bench cell (no bench results file to read its commit from)"}
    out, tier = parents[3], parents[2].name
    # the bench records a cell by its path inside the checkout that ran it, else by its absolute path
    tree = next((p.parent for p in parents[3:] if p.name == "bench" and (p.parent / "pyproject.toml").is_file()), None)
    default_out = tree is not None and out == tree / "bench" / "out"
    results = tree / "docs" / "results" / f"{tier}.json" if default_out else out / f"{tier}.json"
    if not default_out and not results.is_file():
        return {"commit": None, "note": "not a bench cell (no bench results file to read its commit from)"}
    cell = run_dir.relative_to(tree).as_posix() if tree is not None else str(run_dir)
    try:
        records = read_json(results, list)
    except (OSError, ValueError, CoevoError):
        return {"commit": None, "cell": cell, "note": f"no readable bench results file {results}"}
    for record in records:
        if isinstance(record, dict) and record.get("run_dir") in (cell, str(run_dir)) and record.get("source") == "run":
            date = record.get("date") or ""
            try:
                stamp = datetime.fromisoformat(date).timestamp()
            except ValueError:
                stamp = None
            if stamp is not None and stamp < finished - 60:
                return {"commit": None, "cell": cell, "results": str(results),
                        "note": f"the bench's record ({record.get('commit')}, {date}) predates this run's summary.json"}
            return {"commit": record.get("commit"), "date": date, "cell": cell, "results": str(results)}
    return {"commit": None, "cell": cell, "results": str(results), "note": "the bench has not recorded this cell yet"}


def read_run(run_dir: Path) -> dict:
    """What scoring needs from a finished run folder; a CoevoError (one line) when it is not one with names and labels."""
    from coevo import CoEvolution

    if run_dir.is_dir() and not (run_dir / "config.json").is_file():
        raise CoevoError(f"{run_dir}: not a run folder (no config.json); give a folder `coevo run` wrote (its -o)")
    model = CoEvolution.load(run_dir)
    if model.gold_ is None:
        raise CoevoError(f"{run_dir}: its data.jsonl has no gold labels, and name quality is measured against them")
    names = {int(entry["cluster"]): entry["name"] for entry in model.clusters_ if entry.get("name")}
    keywords = {int(entry["cluster"]): list(entry.get("keywords") or []) for entry in model.clusters_}
    if len(names) != len(model.clusters_):
        raise CoevoError(f"{run_dir}: its summary.json has no cluster names (a run finished before names were "
                         f"written); `coevo run --resume {run_dir}` does not rename a finished run, so run it again")
    last = model.summary_["rounds"][-1]["round"] if model.summary_["rounds"] else 1
    names_file = run_dir / f"round{last}" / "names.json"
    sources: dict[int, str] = {}
    named_by = {}
    if names_file.is_file():
        record = read_json(names_file, dict)
        sources = {int(e["cluster"]): e.get("source") for e in record.get("clusters", [])}
        named_by = {"llm": record.get("llm"), "adapter": record.get("adapter")}
    config = model.summary_.get("config", {})
    return {
        "run_dir": run_dir, "names": names, "keywords": keywords, "sources": sources, "clusters": model.labels_.tolist(), "gold": model.gold_,
        "config": {key: config.get(key) for key in ("method", "llm", "embedder", "seed", "rounds", "samples",
                                                    "n_clusters", "task", "interp_weight", "kmeans_init")},
        "named_by": named_by, "n_texts": len(model.texts_), "rounds_run": len(model.summary_["rounds"]),
        "metrics": model.summary_.get("metrics"),
        "finished": (run_dir / "summary.json").stat().st_mtime,
    }


def dataset_of(run_dir: Path) -> str:
    """The dataset a run folder holds: its parent's name in the bench layout, else the folder's own name."""
    parent = run_dir.resolve().parent.name
    return parent if parent in DATASETS else run_dir.resolve().name


# ------------------------------------------------------------------ scoring


def score_run(run: dict, dataset: str, similarity, *, threshold: float, seed: int) -> dict:
    """One dataset's rows, rates and ``EXAMPLES`` random clusters (seeded; shown by similarity, highest first).

    ``keyword_names`` scores the same clusters named by their three strongest
    keywords (what a run without an LLM is named by): the reference the LLM's
    names have to beat, on clusters of the same purity.
    """
    from coevo.naming import keyword_name

    rows = score_names(run["names"], run["clusters"], run["gold"], similarity, threshold=threshold)
    for row in rows:
        row["source"] = run["sources"].get(row["cluster"])
    examples = random.Random(seed).sample(rows, min(EXAMPLES, len(rows)))
    examples.sort(key=lambda r: (-r["similarity"], r["cluster"]))
    scored = dataset not in EXCLUDED
    sources: dict[str, int] = {}
    for row in rows:
        sources[row["source"] or "unknown"] = sources.get(row["source"] or "unknown", 0) + 1
    result = {"dataset": dataset, "scored": scored, "excluded": EXCLUDED.get(dataset),
              "summary": {"clusters": len(rows)}, "sources": sources, "examples": [r["cluster"] for r in examples],
              "rows": rows}
    if scored:
        by_keywords = {c: keyword_name(words) or f"cluster {c}" for c, words in run["keywords"].items()}
        result["summary"] = summarise(rows, THRESHOLDS)
        result["keyword_names"] = summarise(score_names(by_keywords, run["clusters"], run["gold"], similarity,
                                                        threshold=threshold), THRESHOLDS)
    return result


def calibration(similarity) -> list[dict]:
    names = [normalise(name) for _, name, _ in CALIBRATION]
    labels = [normalise(label_text(label)) for _, _, label in CALIBRATION]
    sims = similarity(names, labels)
    return [{"kind": kind, "name": name, "label": label, "similarity": float(sims[i, i])}
            for i, (kind, name, label) in enumerate(CALIBRATION)]


# ------------------------------------------------------------------ the report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(report: dict) -> str:
    s = report["settings"]
    t = s["threshold"]
    lines = ["# Cluster names against the gold labels", "",
             "Written by `bench/names.py`; do not edit by hand.", "",
             f"- commit `{report['commit']}`, {report['date']}, machine: {report['machine']}; {report['seconds']:.0f} s",
             f"- similarity: embedder `{s['embedder']}` ({s['embedder_fingerprint']}, through `coevo.models`), cosine "
             f"of the normalised name and label; **match = exact after normalising, or similarity >= {t:g}**; "
             f"examples drawn with seed {s['seed']}",
             f"- runs: {s['runs']}", ""]
    lines += ["## How a name is judged", "",
              "Each cluster's name is compared with its *majority gold label* (the label most of its texts carry; "
              "`share` is that label's share of the cluster, so a name can only be as right as the cluster is pure). "
              "Both are normalised (lower case, `_` and `-` as spaces, punctuation removed). Labels written as "
              "identifiers are read as words first: StackExchange site addresses lose `.stackexchange.com` "
              "(`english.stackexchange.com` is `english`), CamelCase subreddits are split (`AskReddit` is `ask reddit`); "
              "run-together subreddits (`classicalmusic`) stay as they are. A name that the run made distinct by a suffix "
              "(`card lost (stolen)`, `card lost 2`: naming's de-duplication) is judged without it.", "",
              "- **exact**: the same words after normalising.",
              f"- **match@x**: exact, or cosine similarity >= x. The headline threshold is {t:g}.",
              "- **nearest = majority**: among all the dataset's gold labels (of the 600 texts), the one nearest the "
              "name is the cluster's majority label. It needs no threshold and fails when the name fits a sibling "
              "label better.",
              f"- **wrong labels >= {t:g}**: the mean share of the dataset's *other* labels that are at least {t:g} "
              "from the name: how lenient the threshold is on that dataset (on fine-grained label sets the "
              "siblings of a label are close to it).", ""]
    cal = report["calibration"]
    by_kind = {}
    for row in cal:
        by_kind.setdefault(row["kind"], []).append(row["similarity"])
    lines += ["## The threshold, from hand-made pairs", "",
              f"Similarities of the hand-made pairs in `bench/names.py` (`CALIBRATION`). Same-meaning pairs range "
              f"{min(by_kind['same meaning']):.2f} to {max(by_kind['same meaning']):.2f}, unrelated pairs "
              f"{min(by_kind['unrelated']):.2f} to {max(by_kind['unrelated']):.2f}, and a neighbouring label of the same "
              f"dataset {min(by_kind['sibling label']):.2f} to {max(by_kind['sibling label']):.2f}. At {t:g}, "
              + ", ".join(f"{sum(x >= t for x in by_kind[k])} of {len(by_kind[k])} {k} pairs"
                          for k in ("same meaning", "sibling label", "unrelated"))
              + f" count as a match. {THRESHOLD:g}, the default, was chosen as the round number between the highest "
              "unrelated and the lowest same-meaning pair. No threshold separates a right label from a sibling (their "
              "ranges overlap), so match@x is lenient on fine-grained datasets: read it with *nearest = majority* and "
              "*wrong labels*, and the examples.", "",
              "| kind | name | label | similarity |", "|---|---|---|---:|"]
    for row in cal:
        lines.append(f"| {row['kind']} | {_cell(row['name'])} | {_cell(row['label'])} | {row['similarity']:.2f} |")
    heads = " | ".join(f"match@{x:g}" for x in s["thresholds"])
    lines += ["", "## Per dataset", "",
              "Rates are shares of the run's clusters. `named by` counts names the LLM wrote / fell back to a central "
              "interpretation / to keywords. The last column scores the same clusters named by their three strongest "
              "keywords instead (how a run without an LLM is named): the reference for the names, on clusters "
              "of the same purity.", "",
              f"| dataset | clusters | exact | {heads} | mean similarity | nearest = majority | wrong labels >= {t:g} "
              f"| labels named | mean share | named by (llm/interp/kw) | keyword names: match@{t:g} / nearest |",
              "|---|---:|---:|" + "---:|" * len(s["thresholds"]) + "---:|---:|---:|---:|---:|---|---:|"]
    results = {r["dataset"]: r for r in report["datasets"]}
    empty = " | ".join("" for _ in s["thresholds"])
    for dataset in [*DATASETS, *sorted(set(results) - set(DATASETS))]:
        if dataset not in results:
            why = report["missing"].get(dataset, "not run yet")
            lines.append(f"| {dataset} | {why} | | {empty} | | | | | | | |")
            continue
        r = results[dataset]
        src = r["sources"]
        named = f"{src.get('llm', 0)}/{src.get('interpretation', 0)}/{src.get('keywords', 0)}"
        if not r["scored"]:
            lines.append(f"| {dataset} | {r['summary']['clusters']}, excluded (labels are codes) | | {empty} | | | | | | "
                         f"{named} | |")
            continue
        m = r["summary"]
        at = " | ".join(_pct(m["match_at"][f"{x:g}"]) for x in s["thresholds"])
        lines.append(f"| {dataset} | {m['clusters']} | {_pct(m['exact'])} | {at} | {m['mean_similarity']:.2f} | "
                     f"{_pct(m['nearest_is_majority'])} | {_pct(m['near_others'])} | "
                     f"{m['labels_named']} of {m['majority_labels']} | {_pct(m['mean_share'])} | {named} | "
                     f"{_pct(r['keyword_names']['match'])} / {_pct(r['keyword_names']['nearest_is_majority'])} |")
    scored = [results[d] for d in results if results[d]["scored"]]
    covered = [d for d in DATASETS if d in results]
    lines += ["", f"Coverage: {len(covered)} of the {len(DATASETS)} ClusterLLM datasets have a finished run here"
              + (f" ({', '.join(covered)})" if covered else "") + "; "
              + f"{len([d for d in covered if d not in EXCLUDED])} scored."]
    if scored:
        pooled = [row for r in scored for row in r["rows"]]
        lines.append(f"Over the {len(scored)} scored runs: match@{t:g} {_pct(sum(x['match'] for x in pooled) / len(pooled))} "
                     f"of {len(pooled)} clusters pooled, {_pct(sum(r['summary']['match'] for r in scored) / len(scored))} "
                     "the mean of the per-run rates; exact "
                     f"{_pct(sum(x['exact'] for x in pooled) / len(pooled))}; nearest = majority "
                     f"{_pct(sum(x['nearest_label'] == x['label'] for x in pooled) / len(pooled))} pooled. The same "
                     f"clusters named by their keywords: match@{t:g} "
                     f"{_pct(sum(r['keyword_names']['match'] * r['keyword_names']['clusters'] for r in scored) / len(pooled))}"
                     " pooled.")
    for dataset, why in EXCLUDED.items():
        lines.append(f"- {dataset} is excluded: {why}.")
    lines += ["", "## Where the names came from", "",
              "| dataset | run folder | method | LLM (named by) | embedder | seed | rounds | K | texts | ACC / NMI | "
              "commit | run recorded |", "|---|---|---|---|---|---:|---:|---:|---:|---|---|---|"]
    for r in report["datasets"]:
        run, c = r["run"], r["run"]["config"]
        metrics = run.get("metrics") or {}
        scores = f"{metrics['acc']:.1f} / {metrics['nmi']:.1f}" if metrics.get("acc") is not None else "-"
        bench = run["bench"]
        commit = f"`{bench['commit']}`" if bench.get("commit") else f"not recorded: {bench.get('note')}"
        named_by = (run.get("named_by") or {}).get("llm") or "keywords"
        kept = r.get("kept")
        recorded = (bench.get("date") or "-")[:16] + (
            f" (scored by names.json at `{kept['names_json_commit']}`; its folder is gone)" if kept else "")
        lines.append(f"| {r['dataset']} | `{bench.get('cell') or run['run_dir']}` | {c['method']} | {named_by} | "
                     f"{c['embedder']} | {c['seed']} | {run['rounds_run']} | {c['n_clusters']} | {run['n_texts']} | {scores} | "
                     f"{commit} | {recorded} |")
    lines += ["", f"## {EXAMPLES} random clusters per dataset", "",
              f"Drawn with `random.Random({s['seed']})` from each run's clusters, shown by similarity (highest first). "
              "`nearest label` is given where it is not the majority label.", ""]
    for r in report["datasets"]:
        rows = {row["cluster"]: row for row in r["rows"]}
        lines += [f"### {r['dataset']}", "", "| name | majority label | share | similarity | match | nearest label | "
                  "named by |", "|---|---|---:|---:|---|---|---|"]
        for cluster in r["examples"]:
            row = rows[cluster]
            if r["scored"]:
                verdict = "exact" if row["exact"] else "yes" if row["match"] else "no"
                sim = f"{row['similarity']:.2f}"
                nearest = "" if row["nearest_label"] == row["label"] else _cell(row["nearest_label"] or "")
            else:
                verdict, sim, nearest = "-", "-", ""
            lines.append(f"| {_cell(row['name'])} | {_cell(row['label'])} | {_pct(row['share'])} | {sim} | {verdict} | "
                         f"{nearest} | {row['source'] or '?'} |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------ main


def _previous_scores(path: Path, embedder: str, args) -> dict:
    """The previous names.json when it scored the way this call scores (embedder, threshold, seed,
    method); else empty: its rows cannot stand beside this call's."""
    if not path.is_file():
        return {}
    try:
        before = read_json(path, dict)
    except CoevoError:
        return {}
    same = before.get("settings", {})
    if (same.get("embedder"), same.get("threshold"), same.get("seed"), same.get("method")) != \
            (embedder, args.threshold, args.seed, args.method):
        return {}
    return before


def _same_folder(found: Path, recorded: str) -> bool:
    """Whether ``found`` is the folder a names.json recorded: as an absolute path, or as a path
    relative to the checkout that scored it (the same cell seen from another working folder)."""
    if not recorded:
        return False
    if Path(recorded).is_absolute():
        return found.resolve() == Path(recorded).resolve()
    return found.resolve().as_posix().endswith("/" + Path(recorded).as_posix())


def kept_from_before(path: Path, runs: dict, embedder: str, args, missing: dict) -> list[dict]:
    """Datasets the previous names.json scored whose run folders are gone now (a run folder lives in
    a worktree that a later session may not have): kept as they were scored, marked with the commit
    of that file, so that re-running the script on new cells extends the table instead of shrinking it.
    Kept only when they were scored the same way (embedder, threshold, seed, method)."""
    before = _previous_scores(path, embedder, args)
    kept = []
    for result in before.get("datasets", []):
        if result.get("dataset") in runs:
            continue
        result.setdefault("kept", {"names_json_commit": before.get("commit"), "names_json_date": before.get("date")})
        missing.pop(result["dataset"], None)
        kept.append(result)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR", help="finished run folders (default: the "
                        "cells found under --runs-root)")
    parser.add_argument("--runs-root", type=Path, default=repo_root() / "bench" / "out" / "cpu",
                        help="the bench's run folders of a tier (<variant>/<dataset>/<method>-seed<n>)")
    parser.add_argument("--fallback-root", type=Path, action="append", default=[],
                        help="another tier's run folders, read for a dataset that neither --runs-root nor the "
                        "previous names.json has (repeatable; the first that has one wins)")
    parser.add_argument("--method", default="full", help="which cells of --runs-root to score")
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--seed", type=int, default=0, help="for drawing the examples")
    parser.add_argument("--results", type=Path, default=results_dir(), help="where names.{json,md} go")
    args = parser.parse_args(argv)
    if not 0 < args.threshold <= 1:
        raise fail(f"option --threshold: must be above 0 and at most 1, got {args.threshold}")
    started = time.perf_counter()
    missing: dict[str, str] = {}
    if args.runs:
        chosen = {}
        for run_dir in args.runs:
            dataset = dataset_of(run_dir)
            if dataset in chosen:
                raise fail(f"{run_dir}: a second run of {dataset} (the first: {chosen[dataset]}); give one per dataset")
            chosen[dataset] = run_dir
        where = "the run folders given: " + ", ".join(f"`{p}`" for p in args.runs)
    else:
        if not args.runs_root.is_dir():
            raise fail(f"option --runs-root: {args.runs_root} is not a folder")
        chosen, missing = find_runs(args.runs_root, args.method)
        for dataset, why in recorded_without_folder(args.runs_root, args.method).items():
            if dataset not in chosen:
                missing.setdefault(dataset, why)
        where = f"the `{args.method}` cells under `{args.runs_root}` (the default variant, lowest seed, per dataset)"
        from coevo.config import CoEvoConfig

        previous = _previous_scores(args.results / "names.json", CoEvoConfig.embedder, args)
        # a dataset scored before from another folder keeps that score: a fallback root fills gaps
        # and rescores its own folders, it does not swap one run for another
        scored_from = {r.get("dataset"): (r.get("run") or {}).get("run_dir", "") for r in previous.get("datasets", [])}
        for root in args.fallback_root:
            if not root.is_dir():
                raise fail(f"option --fallback-root: {root} is not a folder")
            found, _ = find_runs(root, args.method)
            taken = {d: p for d, p in found.items()
                     if d not in chosen and (d not in scored_from or _same_folder(p, scored_from[d]))}
            chosen.update(taken)
            for dataset in taken:
                missing.pop(dataset, None)
            if taken:
                where += (f"; for {', '.join(sorted(taken))}, which have none there, the cells under `{root}` "
                          "(their variant is the folder above the dataset's)")
    runs = {}
    for dataset, run_dir in chosen.items():
        try:
            runs[dataset] = read_run(run_dir)
        except CoevoError as error:
            if args.runs:
                raise fail(str(error)) from None
            missing[dataset] = f"run has no names or labels ({error})"
    if not runs:
        raise fail(f"no finished run with names and gold labels in {where}; nothing written")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from coevo.config import CoEvoConfig
    from coevo.models import load_embedder, model_fingerprint
    from coevo.name_quality import embedding_similarity

    embedder_name = CoEvoConfig.embedder
    similarity = embedding_similarity(load_embedder(embedder_name))
    datasets = []
    for dataset in [d for d in DATASETS if d in runs] + sorted(set(runs) - set(DATASETS)):
        run = runs[dataset]
        result = score_run(run, dataset, similarity, threshold=args.threshold, seed=args.seed)
        result["run"] = {"run_dir": str(run["run_dir"]), "config": run["config"], "named_by": run["named_by"],
                         "n_texts": run["n_texts"], "rounds_run": run["rounds_run"], "metrics": run["metrics"],
                         "bench": bench_record(run["run_dir"], run["finished"]),
                         "finished_utc": datetime.fromtimestamp(run["finished"], timezone.utc).isoformat()}
        datasets.append(result)
        m = result["summary"]
        print(f"{dataset}: {m['clusters']} clusters" + (
            f", exact {_pct(m['exact'])}, match@{args.threshold:g} {_pct(m['match'])}, mean similarity "
            f"{m['mean_similarity']:.2f}, nearest = majority {_pct(m['nearest_is_majority'])}; keyword names: "
            f"match@{args.threshold:g} {_pct(result['keyword_names']['match'])}"
            if result["scored"] else ", excluded (labels are codes)"), file=sys.stderr)
    datasets += kept_from_before(args.results / "names.json", runs, embedder_name, args, missing) if not args.runs else []
    report = {
        **stamp(),
        "settings": {"embedder": embedder_name, "embedder_fingerprint": model_fingerprint(embedder_name),
                     "threshold": args.threshold, "thresholds": list(THRESHOLDS), "seed": args.seed,
                     "examples": EXAMPLES, "method": args.method, "runs": where},
        "calibration": calibration(similarity),
        "missing": {d: why for d, why in missing.items()},
        "datasets": datasets,
    }
    report["seconds"] = time.perf_counter() - started
    args.results.mkdir(parents=True, exist_ok=True)
    write_results(args.results, "names", report, render)
    print(f"wrote {args.results / 'names.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
