"""A tier's markdown report, rendered from its records: header, one table per metric (mean ± std
over seeds, the best of a row in bold), means per group, "beats" lines, cost, per-round guard
figures, stale and failed cells."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import BenchConfig
from .records import Record

METRICS: tuple[str, ...] = ("acc", "nmi", "ari")
_NO_LLM_SETTINGS = ("embedder", "kmeans_init", "cache_dir", "trust_remote_code")  # what a kmeans-only table reports

@dataclass(frozen=True)
class ReportMeta:
    """What the report header says besides what the records tell (machine, commit, dates, wall time)."""

    tier: str
    description: str = ""
    seed_policy: str = "recluster"
    seeds: tuple[int, ...] = (0, 1, 2)
    sample: int | None = None
    common: Mapping[str, Any] = field(default_factory=dict)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> its settings
    variant_methods: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)  # name -> methods it runs
    datasets: tuple[str, ...] = ()  # row order; datasets only in the records come after
    methods: tuple[str, ...] = ()  # column order; likewise
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # averaged and compared on their own too

    @classmethod
    def of(cls, config: BenchConfig) -> "ReportMeta":
        return cls(config.tier, config.description, config.seed_policy, config.seeds, config.sample, config.common,
                   {v.name: v.settings for v in config.variants}, {v.name: v.methods for v in config.variants},
                   config.datasets, config.methods, config.groups)


def is_stale(record: Record, meta: ReportMeta) -> bool:
    """Whether a record was asked for other settings than its variant has now (the config or a
    setting changed since it ran). It stays in the JSON until the next bench replaces it, but a
    column headed by today's settings must not show it."""
    wanted = meta.variants.get(record.variant)
    return wanted is not None and not record.ran_with(wanted)


STALE_LISTED = 20
"""Up to this many stale cells are listed one by one; more are summarised in one line."""


def render_markdown(records: Sequence[Record], meta: ReportMeta) -> str:
    """The tier's report: header, one table per metric (mean ± std over seeds), cost, failures."""
    ok, stale = [], []
    for r in records:
        if r.status == "ok":
            (stale if is_stale(r, meta) else ok).append(r)
    stale_ids = {id(r) for r in stale}
    shown = [r for r in records if id(r) not in stale_ids]  # stale cells make no row or column
    rows = list(dict.fromkeys([*meta.datasets, *(r.dataset for r in shown)]))
    variants = list(dict.fromkeys([*meta.variants, *(r.variant for r in shown)]))
    methods = list(dict.fromkeys([*meta.methods, *(r.method for r in shown)]))
    planned = {(m, v) for v in meta.variants for m in meta.methods if meta.variant_methods.get(v) is None
               or m in meta.variant_methods[v]}
    columns = [(m, v) for v in variants for m in methods
               if (m, v) in planned or any((r.method, r.variant) == (m, v) for r in shown)]
    label = {c: c[0] if len(variants) == 1 else f"{c[0]} ({c[1]})" for c in columns}

    lines = [f"# Benchmark: {meta.tier} tier", ""]
    if meta.description:
        lines += [meta.description, ""]
    lines += _header(ok, meta, rows, variants, methods)
    if not ok:
        lines += ["", "No results yet."]
    for metric in METRICS if ok else ():
        lines += ["", f"## {metric.upper()} (%)", ""]
        lines += _metric_table(ok, metric, rows, columns, label, len(meta.seeds), meta.groups)
    if ok:
        lines += ["", "## Cost per run (wall time in minutes · peak memory in GB)", ""]
        lines += _cost_table(ok, rows, columns, label)
    lines += _rounds_table(ok, label)
    if stale:
        lines += ["", "## Stale cells (run with other settings; not in the tables, replaced by the next `coevo bench`)", ""]
        if len(stale) > STALE_LISTED:  # a whole earlier version of the tier: say what it was, not each cell
            commits = sorted({r.commit for r in stale if r.commit})
            dates = sorted(r.date[:10] for r in stale if r.date)
            lines.append(f"- {len(stale)} cells of an earlier version of this tier, kept in the JSON file (commits "
                         f"{', '.join(commits)}; {dates[0] if dates else '?'} to {dates[-1] if dates else '?'}).")
        else:
            lines += [f"- {r.dataset} · {label.get((r.method, r.variant), r.method)} · seed {r.seed} (commit {r.commit})"
                      for r in stale]
    failed = [r for r in records if r.status != "ok"]
    if failed:
        lines += ["", "## Failed cells (retried by the next `coevo bench`)", ""]
        lines += [f"- {r.dataset} · {label.get((r.method, r.variant), r.method)} · seed {r.seed}: {r.error}"
                  for r in failed]
    return "\n".join(lines) + "\n"


def _rounds_table(ok: Sequence[Record], label: Mapping[tuple[str, str], str]) -> list[str]:
    """Per round of each LLM method's run: are the interpretations still interpretations?"""
    runs = [r for r in ok if r.source == "run" and r.rounds_detail]
    if not runs:
        return []
    lines = ["", "## Per round (the run of each LLM method; guard figures of the interpretations the round used)", "",
             "Distinct = share of distinct interpretations; copy = share covering ≥ 80% of their text's words; "
             "leak = share repeating the prompt; interp-only ACC = KMeans on the mean interpretation embedding alone; "
             "w = the weight of that mean in the round's clustering (0: the text alone; represent gate decides it "
             "per round, -: not recorded by runs before it was). "
             "A round whose trained LLM degraded past the guard limits backs off to the previous LLM; "
             "peak GB = the largest of the round's per-step peak memories, and its step; "
             "the last column says what the trained LLM did.", "",
             "| dataset | method | round | distinct % | words | copy % | leak % | interp-only ACC | w | ACC "
             "| peak GB (step) | back-off |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in sorted(runs, key=lambda r: (r.dataset, r.method, r.variant)):
        for d in r.rounds_detail:
            problems = "; ".join(d.get("backoff_problems") or []) or ("yes" if d.get("backed_off") else "")
            lines.append(f"| {r.dataset} | {label.get((r.method, r.variant), r.method)} | {d['round']} | "
                         f"{_fmt(d.get('distinct_pct'))} | {_fmt(d.get('mean_words'))} | {_fmt(d.get('copy_pct'))} | "
                         f"{_fmt(d.get('leak_pct'))} | {_fmt(d.get('interp_only_acc'))} | {_weight(d.get('interp_weight'))} | "
                         f"{_fmt(d.get('acc'))} | "
                         f"{_step_peak(d.get('peak_rss_mb_by_step'))} | {problems} |")
    return lines


def _step_peak(by_step: Mapping[str, float] | None) -> str:
    """The round's largest per-step peak and its step (runs from before per-step peaks were kept: -)."""
    if not by_step:
        return "-"
    step = max(by_step, key=by_step.get)
    return f"{by_step[step] / 1024:.1f} ({step})"


def _weight(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _header(ok: Sequence[Record], meta: ReportMeta, rows: Sequence[str], variants: Sequence[str],
            methods: Sequence[str]) -> list[str]:
    seeds = ", ".join(map(str, meta.seeds))
    if meta.seed_policy == "recluster":
        first, rest = meta.seeds[0], ", ".join(map(str, meta.seeds[1:]))
        policy = (f"Seeds {seeds}, **recluster policy**: seed {first} is a complete run of each method; seeds {rest} "
                  f"only re-run KMeans with another initialisation on seed {first}'s final representation "
                  "(`CoEvolution.recluster`). The LLM and training work runs once, so ± is the spread of KMeans "
                  "alone, not of LLM sampling or training." if rest else f"Seed {first} only.")
    else:
        own = "its own sample of the data, LLM sampling" if meta.sample else "its own LLM sampling"
        policy = f"Seeds {seeds}, **full policy**: every seed is an independent run ({own}, training and KMeans)."
    data = (f"each dataset a stratified sample of {meta.sample} texts with every class present (drawn with the run's "
            "seed; a smaller dataset whole)" if meta.sample else "every text of each dataset")
    counted = f"{len(rows)} datasets" if len(rows) != 1 else "1 dataset"
    out = [f"- Data: {counted}, {data}; K = the number of gold classes."]
    uses_llm = any(m != "kmeans" for m in methods)

    def relevant(settings: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in settings.items() if uses_llm or k in _NO_LLM_SETTINGS}

    if len(variants) > 1:
        for name in variants:
            own = {k: v for k, v in meta.variants.get(name, {}).items() if meta.common.get(k) != v}
            out.append(f"- Variant `{name}`: {_settings_text(relevant(own)) or 'the common settings'}.")
        common = relevant(meta.common)
    else:
        common = relevant(meta.variants.get(variants[0], meta.common) if variants else meta.common)
    out.append(f"- Settings{' of all variants' if len(variants) > 1 else ''}: {_settings_text(common) or 'none'}; "
               "everything else the defaults of `coevo run` (docs/method.md).")
    for name, members in meta.groups.items():
        out.append(f"- Group `{name}`: {', '.join(members)}; its means and comparisons follow each table's own.")
    spread = ("Tables give mean ± sample standard deviation (n−1) over the seeds; "
              f"`*` marks a cell with fewer than {len(meta.seeds)} seeds so far, `-` a cell without results."
              if len(meta.seeds) > 1 else "Tables give the one seed's result; `-` marks a cell without results.")
    out.append(f"- {policy} {spread}")
    machines = sorted({r.machine for r in ok if r.machine})
    # a resumed run records every commit that ran one of its steps, joined by ", "
    commits = sorted({c for r in ok if r.commit for c in r.commit.split(", ")})
    dates = sorted(r.date for r in ok if r.date)
    wall = sum(r.wall_s or 0.0 for r in ok)
    reused = Counter(r.reused_from for r in ok if r.reused_from)
    if reused:
        tiers = ", ".join(f"{n} from `{tier}`" for tier, n in reused.items())
        out.append(f"- Cells taken from other tiers' results (the same cell asked the same: sample, seed, settings; "
                   f"run there, not again here): {tiers}. They keep the commit, date and time they ran with.")
    out.append(f"- Machine: {'; '.join(machines) or 'not recorded'}.")
    hours = f"{wall / 3600:.1f} h" if wall >= 3600 else f"{wall / 60:.1f} min"
    out.append(f"- Wall time: {hours}, the sum over the cells below as measured by the harness.")
    out.append(f"- Commit: {', '.join(commits) or 'not recorded'}; "
               f"results from {dates[0][:10] + ' to ' + dates[-1][:10] if dates else 'no run yet'}.")
    return out


def _settings_text(settings: Mapping[str, Any]) -> str:
    names = {"llm": "LLM", "embedder": "embedder", "rounds": "rounds T", "samples": "samples per text M",
             "max_pairs": "DPO pairs per round at most P", "keep_fraction": "kept pair fraction q",
             "kmeans_init": "KMeans restarts"}
    return ", ".join(f"{names.get(k, k)} `{v}`" for k, v in settings.items())


def _metric_table(ok, metric, rows, columns, label, n_seeds, groups=None) -> list[str]:
    values = {c: {} for c in columns}
    for r in ok:
        if (r.method, r.variant) in values and getattr(r, metric) is not None:
            values[(r.method, r.variant)].setdefault(r.dataset, []).append(getattr(r, metric))
    means = {c: {d: statistics.fmean(v) for d, v in values[c].items()} for c in columns}
    out = ["| dataset | " + " | ".join(label[c] for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    for d in rows:
        present = [means[c][d] for c in columns if d in means[c]]
        if not present:
            continue
        best = max(present)
        cells = []
        for c in columns:
            if d not in values[c]:
                cells.append("-")
                continue
            v = values[c][d]
            text = f"{statistics.fmean(v):.1f}" + (f" ± {statistics.stdev(v):.1f}" if len(v) > 1 else "")
            text += "*" if len(v) < n_seeds else ""
            cells.append(f"**{text}**" if means[c][d] == best and len(present) > 1 else text)
        out.append(f"| {d} | " + " | ".join(cells) + " |")
    out += _average_rows(means, rows, columns, label)
    for name, members in (groups or {}).items():
        out += _average_rows(means, [d for d in rows if d in members], columns, label, name)
    beats = _beats_lines(means, rows, columns, label)
    for name, members in (groups or {}).items():
        beats += _beats_lines(means, [d for d in rows if d in members], columns, label, name)
    return out + ([""] + beats if beats else [])


def _average_rows(means, rows, columns, label, group_name: str | None = None) -> list[str]:
    """Means over the datasets that have every column; when some columns cover fewer datasets
    (the [[extra]] methods), first a row for the best-covered columns over the datasets they share.
    ``group_name``: the rows are that group's datasets, and the row says so."""
    coverage = {c: set(means[c]) & set(rows) for c in columns}
    widest = max((len(s) for s in coverage.values()), default=0)
    groups = [[c for c in columns if len(coverage[c]) == widest]]
    if len(groups[0]) < len(columns):
        groups.append(list(columns))
    out = []
    for group in groups:
        shared = [d for d in rows if all(d in coverage[c] for c in group)]
        if len(shared) < 2:
            continue  # the mean of one dataset is its row
        names = "every column" if len(group) == len(columns) else ", ".join(label[c] for c in group)
        within = f" of group {group_name}" if group_name else ""
        cells = [f"{statistics.fmean(means[c][d] for d in shared):.1f}" if c in group else "-" for c in columns]
        out.append(f"| *mean of the {len(shared)} datasets{within} with {names}* | " + " | ".join(cells) + " |")
    return out


def _beats_lines(means, rows, columns, label, group_name: str | None = None) -> list[str]:
    """How ``full`` compares with each other column: wins, the mean difference and the largest shortfall,
    the three figures a claim of improvement needs (a mean gain can hide one dataset badly hurt)."""
    within = f" of group {group_name}" if group_name else ""
    fulls = [c for c in columns if c[0] == "full"]
    pairs = []
    for full in fulls:
        others = [c for c in columns if c[1] == full[1] and c != full]
        if not any(c[0] == "kmeans" for c in others):
            # a variant that does not run kmeans (it reads no LLM, so an LLM variant need not) is judged
            # against the kmeans another variant ran
            others += [c for c in columns if c[0] == "kmeans"]
        pairs += [(full, other) for other in others]
    # each other variant's full against the first variant's: what the variant's change does to the method
    pairs += [(full, fulls[0]) for full in fulls[1:]]
    out = []
    for full, other in pairs:
        shared = [d for d in rows if d in means[full] and d in means[other]]
        if shared:
            gaps = {d: means[full][d] - means[other][d] for d in shared}
            wins = sum(gap > 0 for gap in gaps.values())
            worst = min(gaps, key=gaps.get)
            out.append(f"- {label[full]} beats {label[other]} on {wins} of {len(shared)} datasets{within} "
                       f"(higher mean); mean difference {statistics.fmean(gaps.values()):+.1f}, "
                       f"lowest {gaps[worst]:+.1f} ({worst}).")
    return out


def _cost_table(ok, rows, columns, label) -> list[str]:
    """Wall time and peak memory per run, and the minutes per 1,000 texts a user would pay.

    A cell resumed across sessions has a harness wall time of its last session only, so the
    per-1,000-texts row takes the larger of that and the run's own step times (every session's)."""
    runs = [r for r in ok if r.source == "run"]
    out = ["| dataset | texts | K | " + " | ".join(label[c] for c in columns) + " |",
           "|---|---:|---:|" + "---:|" * len(columns)]
    for d in rows:
        mine = [r for r in runs if r.dataset == d]
        if not mine:
            continue
        cells = []
        for c in columns:
            cell = [r for r in mine if (r.method, r.variant) == c]
            walls = [r.wall_s if r.wall_s is not None else r.seconds_total for r in cell]
            walls = [w for w in walls if w is not None]
            peaks = [r.peak_rss_mb for r in cell if r.peak_rss_mb is not None]
            cells.append(f"{statistics.fmean(walls) / 60:.1f} · {max(peaks) / 1024:.1f}" if walls and peaks else "-")
        out.append(f"| {d} | {mine[0].n_texts} | {mine[0].k} | " + " | ".join(cells) + " |")
    for machine in sorted({r.machine for r in runs if r.machine}):
        per_thousand = []
        for c in columns:
            minutes = [max(r.wall_s or 0.0, r.seconds_total or 0.0) / r.n_texts * 1000 / 60 for r in runs
                       if (r.method, r.variant) == c and r.machine == machine and r.n_texts]
            per_thousand.append(f"{statistics.fmean(minutes):.1f} ({len(minutes)})" if minutes else "-")
        out.append(f"| *minutes per 1,000 texts on {machine} (mean over the runs there; every session of a resumed run)* "
                   "| | | " + " | ".join(per_thousand) + " |")
    out += ["", "Generations read from the cache (a cell whose answers an earlier cell of the same LLM had "
            "already sampled, or a resumed cell's finished batches) are not paid again, so such cells cost less "
            "here than from an empty cache; the machine line says where the cells ran."]
    return out
