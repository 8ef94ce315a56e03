"""``coevo bench CONFIG``: methods x datasets x seeds from a TOML file, into docs/results.

The claim to reproduce (docs/method.md) is a table: ``full`` against its baselines
and ablations on the 14 ClusterLLM datasets, mean and standard deviation over
3 seeds of ACC, NMI and ARI, with the models, the data size, the wall time and
the peak memory beside every number. This module produces that table, and makes
it cheap to produce again:

* Each run is a subprocess (``python -m coevo.cli run ...``), so its peak
  memory is its own and a crash costs one cell, not the bench.
* It resumes. A cell whose record is in ``<tier>.json`` with the same options
  is not redone; a run folder with ``state.json`` but no ``summary.json`` is
  continued with ``run --resume``; a finished folder without a record is read
  back. Failed cells are recorded with their error and retried next time.
* Under ``seed_policy = "recluster"`` only the first seed is a run; the other
  seeds re-run KMeans on that run's final representation
  (``CoEvolution.recluster``), because the LLM work is too costly to repeat.
* ``<tier>.json`` is merged by (dataset, method, variant, seed), so a partial
  bench (``--only``) drops no other rows, and ``<tier>.md`` is rendered from it
  after every finished cell, so partial results can be committed.

Config file (see bench/configs/*.toml; the tier is the file's stem)::

    description = "..."          # one line for the report header
    data_dir = "../shared/data"  # relative to the repository root
    datasets = ["bank77", ...]   # rows: names of DATASET_TASKS
    methods = ["kmeans", "full"] # columns, run on every dataset
    seeds = [0, 1, 2]
    seed_policy = "recluster"    # or "full": every seed an independent run
    sample = 600                 # optional: stratified sample per dataset
    [settings]                   # options of `coevo run` for every cell
    rounds = 2
    [[extra]]                    # more methods on some datasets only
    methods = ["random-select"]
    datasets = ["bank77"]
    [[variants]]                 # optional: the whole grid per model setting
    name = "minilm"
    embedder = "all-MiniLM-L6-v2"
    methods = ["kmeans"]         # optional: this variant runs only these methods of the grid
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json, atomic_write_text, read_json
from .config import METHODS, CoEvoConfig
from .errors import CoevoError
from .provenance import git_commit, machine

DATASET_TASKS: dict[str, str] = {
    "bank77": "intent", "clinc_intent": "intent", "mtop_intent": "intent", "massive_intent": "intent",
    "fewrel": "type", "fewnerd": "type", "fewevent": "type",
    "stackexchange": "topic", "arxiv_s2s": "topic", "reddit": "topic",
    "goemo": "emotion",
    "clinc_domain": "domain", "mtop_domain": "domain", "massive_domain": "domain",
}
"""The 14 ClusterLLM datasets (shared/data/README.md, section 1) and the task each is clustered by."""

SEED_POLICIES: tuple[str, ...] = ("full", "recluster")

SETTINGS: dict[str, type] = {
    "llm": str, "embedder": str, "rounds": int, "samples": int, "temperature": float, "max_new_tokens": int,
    "density": str, "k_neighbors": int, "keep_fraction": float, "max_pairs": int, "represent": str, "kmeans_init": int,
    "cache_dir": str, "trust_remote_code": bool, "generation_backend": str,
    "dpo_learning_rate": float, "dpo_beta": float, "dpo_sft_weight": float,
    "max_copy_rate": float, "guard_consolidation": bool, "contrastive_loss": str, "interp_weight": float,
}
"""Run settings a config may set: the options of ``coevo run`` that are the same for every cell
(each cell runs through that command, so only its options can be varied)."""

_NO_EFFECT: dict[str, frozenset[str]] = {
    "kmeans": frozenset({"llm", "samples", "temperature", "top_p", "max_new_tokens", "generation_batch_size", "task",
                         "instruction", "represent", "interp_weight"}),
    "expand": frozenset(),
}
_TRAINING = frozenset({"rounds", "density", "tau", "k_neighbors", "keep_fraction", "max_pairs", "max_copy_rate",
                       "dpo_learning_rate", "dpo_beta", "dpo_sft_weight", "dpo_batch_size", "dpo_epochs", "lora_r",
                       "lora_alpha", "contrastive_batch_size", "contrastive_learning_rate", "contrastive_epochs",
                       "guard_consolidation", "contrastive_loss"})
_NEVER = frozenset({"cache_dir", "trust_remote_code", "generation_backend"})  # where and how, not what


def _effective(method: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that can change a method's result. Methods that train nothing ignore the training
    settings (and kmeans the LLM's too), so changing e.g. max_pairs does not redo their cells."""
    ignored = set(_NEVER)
    if method in _NO_EFFECT:
        ignored |= _TRAINING | _NO_EFFECT[method]
    return {k: v for k, v in settings.items() if k not in ignored}


DEFAULT_VARIANT = "default"
METRICS: tuple[str, ...] = ("acc", "nmi", "ari")

_NO_LLM_SETTINGS = ("embedder", "kmeans_init", "cache_dir", "trust_remote_code")  # what a kmeans-only table reports
_TOP_KEYS = ("description", "data_dir", "datasets", "methods", "seeds", "seed_policy", "sample", "settings", "extra",
             "variants", "groups")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _repo_root() -> Path:
    """The checkout this module lives in (src layout), or the working folder for an installed package."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


# ---------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Variant:
    """One model setting the whole grid is run with; ``settings`` are options of ``coevo run``."""

    name: str
    settings: Mapping[str, Any]
    methods: tuple[str, ...] | None = None  # the methods this variant runs; None: every method of the grid

    def runs(self, method: str) -> bool:
        return self.methods is None or method in self.methods


@dataclass(frozen=True)
class BenchConfig:
    """A parsed, checked benchmark config (one tier)."""

    path: Path
    tier: str
    description: str
    data_dir: Path
    datasets: tuple[str, ...]  # rows, in order: the main datasets, then those only in [[extra]]
    methods: tuple[str, ...]  # columns, in order: the main methods, then those only in [[extra]]
    cells: tuple[tuple[str, str], ...]  # (dataset, method) pairs to run
    seeds: tuple[int, ...]
    seed_policy: str
    sample: int | None
    common: Mapping[str, Any]  # the [settings] table
    variants: tuple[Variant, ...]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # e.g. the dev and confirmation halves


def load_bench_config(path: str | os.PathLike, *, data_dir: str | os.PathLike | None = None) -> BenchConfig:
    """Read and check a benchmark config; every problem is a one-line CoevoError naming the file and key.

    ``data_dir`` (the ``--data-dir`` option) replaces the config's ``data_dir``.
    """
    path = Path(path)
    where = f"config {path}"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CoevoError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CoevoError(f"{where}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise CoevoError(f"{where}: not valid TOML ({exc})") from None

    def fail(key: str, message: str) -> CoevoError:
        return CoevoError(f"{where}: key '{key}': {message}")

    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key; known keys: {', '.join(_TOP_KEYS)}")
    tier = path.stem
    if not _NAME.fullmatch(tier):
        raise CoevoError(f"{where}: the file name gives the tier name; use letters, digits, '-', '_' or '.'")
    description = _typed(raw.get("description", ""), str, "description", fail)

    datasets = _names(raw, "datasets", DATASET_TASKS, "dataset", fail)
    methods = _names(raw, "methods", METHODS, "method", fail)
    cells = [(d, m) for d in datasets for m in methods]
    extras = _typed(raw.get("extra", []), list, "extra", fail)
    for i, table in enumerate(extras):
        key = f"extra[{i}]"
        table = _typed(table, dict, key, fail)
        bad = sorted(set(table) - {"methods", "datasets"})
        if bad:
            raise fail(f"{key}.{bad[0]}", "unknown key; an [[extra]] table has only 'methods' and 'datasets'")
        extra_methods = _names(table, "methods", METHODS, "method", fail, prefix=f"{key}.")
        extra_datasets = _names(table, "datasets", DATASET_TASKS, "dataset", fail, prefix=f"{key}.")
        cells += [(d, m) for d in extra_datasets for m in extra_methods]
    cells = list(dict.fromkeys(cells))
    all_datasets = tuple(dict.fromkeys([*datasets, *(d for d, _ in cells)]))
    all_methods = tuple(dict.fromkeys([*methods, *(m for _, m in cells)]))

    seeds = _typed(raw.get("seeds", [0, 1, 2]), list, "seeds", fail)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise fail("seeds", "give a non-empty list of integers >= 0, e.g. [0, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise fail("seeds", "a seed is listed twice")
    policy = _typed(raw.get("seed_policy", "recluster"), str, "seed_policy", fail)
    if policy not in SEED_POLICIES:
        raise fail("seed_policy", f"{policy!r} is not one of {', '.join(SEED_POLICIES)}")
    sample = raw.get("sample")
    if sample is not None and (not isinstance(sample, int) or isinstance(sample, bool) or sample < 2):
        raise fail("sample", f"must be an integer of at least 2 (or left out for every text), got {sample!r}")

    common = _settings(_typed(raw.get("settings", {}), dict, "settings", fail), "settings", fail)
    variants = []
    for i, table in enumerate(_typed(raw.get("variants", []), list, "variants", fail)):
        key = f"variants[{i}]"
        table = dict(_typed(table, dict, key, fail))
        name = table.pop("name", None)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise fail(f"{key}.name", "every variant needs a name of letters, digits, '-', '_' or '.'")
        if any(v.name == name for v in variants):
            raise fail(f"{key}.name", f"variant {name!r} is named twice")
        own_methods = None
        if "methods" in table:
            own_methods = tuple(_names(table, "methods", all_methods, "method of the grid", fail, prefix=f"{key}."))
            del table["methods"]
        variants.append(Variant(name, {**common, **_settings(table, key, fail)}, own_methods))
    if not variants:
        variants = [Variant(DEFAULT_VARIANT, common)]
    for i, variant in enumerate(variants):
        for method in filter(variant.runs, all_methods):
            try:
                CoEvoConfig(n_clusters=2, method=method, **variant.settings)
            except CoevoError as exc:
                key = "settings" if variant.name == DEFAULT_VARIANT else f"variants[{i}]"
                raise fail(key, f"with method {method}: {exc}") from None

    groups = {}
    for name, members in _typed(raw.get("groups", {}), dict, "groups", fail).items():
        if not _NAME.fullmatch(name):
            raise fail(f"groups.{name}", "a group name is letters, digits, '-', '_' or '.'")
        groups[name] = tuple(_names({name: members}, name, all_datasets, "dataset of the config", fail, prefix="groups."))

    if data_dir is not None:
        folder, key = Path(data_dir), "option --data-dir"
    else:
        folder = _repo_root() / _typed(raw.get("data_dir", "../shared/data"), str, "data_dir", fail)
        key = f"{where}: key 'data_dir'"
    if not folder.is_dir():
        raise CoevoError(f"{key}: data folder {folder} not found; give the folder that holds the ClusterLLM .jsonl files")
    for dataset in all_datasets:
        if not (folder / f"{dataset}.jsonl").is_file():
            raise CoevoError(f"{key}: {folder} has no {dataset}.jsonl (dataset of {where})")

    return BenchConfig(path, tier, description, folder.resolve(), all_datasets, all_methods, tuple(cells),
                       tuple(seeds), policy, sample, common, tuple(variants), groups)


def _typed(value: Any, kind: type, key: str, fail: Callable[[str, str], CoevoError]) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {list: "a list", dict: "a table", str: "a string", int: "an integer", float: "a number",
                    bool: "true or false"}[kind]
        raise fail(key, f"must be {expected}, got {value!r}")
    return value


def _names(table: Mapping, key: str, allowed: Sequence[str], noun: str, fail, prefix: str = "") -> list[str]:
    values = table.get(key)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise fail(prefix + key, f"give a non-empty list of {noun} names")
    for value in values:
        if value not in allowed:
            raise fail(prefix + key, f"unknown {noun} {value!r}; known: {', '.join(allowed)}")
    return list(dict.fromkeys(values))


def _settings(table: Mapping, key: str, fail) -> dict[str, Any]:
    out = {}
    for name, value in table.items():
        if name not in SETTINGS:
            raise fail(f"{key}.{name}", f"unknown setting; known: {', '.join(SETTINGS)}")
        kind = SETTINGS[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[name] = _typed(value, kind, f"{key}.{name}", fail)
    return out


# ---------------------------------------------------------------------------------------------- records


@dataclass
class Record:
    """One cell of the results: a (dataset, method, variant, seed) and its numbers.

    ``acc``/``nmi``/``ari`` are percent. ``source`` is ``run`` for a ``coevo run``
    and ``recluster`` for a seed that only re-ran KMeans on a run's result
    (``run_dir`` then names that run). ``wall_s`` is measured by the harness
    around the subprocess that finished the cell (a recluster seed gets its share
    of the recluster subprocess); ``seconds_total`` is the run's own sum over its
    steps. ``llm`` and ``samples`` are null for ``kmeans``, which uses no LLM;
    ``rounds`` counts the rounds the method ran. ``options`` is what the cell was
    asked for and ``config`` the run's own settings, defaults included: a record
    whose options or config differ from what the bench asks for now, in a setting
    that matters to its method, is redone, so a changed default redoes the cells it
    changes. ``commit`` is the code that ran the run's steps, as its folder kept it.
    ``rounds_detail`` has, per round of an LLM method's run, the guard figures and
    the clustering of the interpretations alone.
    """

    dataset: str
    method: str
    variant: str
    seed: int
    status: str  # "ok" or "failed"
    source: str  # "run" or "recluster"
    seed_policy: str
    run_dir: str
    task: str
    n_texts: int | None = None
    k: int | None = None
    acc: float | None = None
    nmi: float | None = None
    ari: float | None = None
    wall_s: float | None = None
    seconds_total: float | None = None
    peak_rss_mb: float | None = None
    llm: str | None = None
    embedder: str | None = None
    rounds: int | None = None
    samples: int | None = None
    error: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    rounds_detail: list[dict[str, Any]] = field(default_factory=list)
    commit: str = ""
    machine: str = ""
    date: str = ""

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dataset, self.method, self.variant, self.seed)


def merge_records(old: Sequence[Record], new: Sequence[Record]) -> list[Record]:
    """``old`` with every record of the same (dataset, method, variant, seed) replaced by ``new``'s."""
    merged = {r.key: r for r in old}
    merged.update((r.key, r) for r in new)
    return sorted(merged.values(), key=lambda r: r.key)


def read_records(path: Path) -> list[Record]:
    """The records of a results file; none when it does not exist yet."""
    if not path.exists():
        return []
    try:
        rows = read_json(path)
        if not isinstance(rows, list):
            raise TypeError("not a list")
        return [Record(**row) for row in rows]
    except (ValueError, TypeError) as exc:
        raise CoevoError(f"results file {path}: not a list of bench records ({exc}); move it aside to start afresh") from None


# ---------------------------------------------------------------------------------------------- report


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


def _stale(record: Record, meta: ReportMeta) -> bool:
    """Whether a record was asked for other settings than its variant has now (the config or a
    setting changed since it ran). It stays in the JSON until the next bench replaces it, but a
    column headed by today's settings must not show it."""
    wanted = meta.variants.get(record.variant)
    if wanted is None:
        return False
    asked = {k: v for k, v in record.options.items() if k in SETTINGS}  # without the cell's own task, k, seed
    if _effective(record.method, asked) != _effective(record.method, wanted):
        return True
    if not record.config:
        return False
    try:
        expected = CoEvoConfig(n_clusters=record.k or 2, task=record.task, method=record.method,
                               seed=record.options.get("run_seed", record.seed), **wanted).to_dict()
    except (CoevoError, TypeError):
        return True
    return _config_changed(record, expected)


STALE_LISTED = 20
"""Up to this many stale cells are listed one by one; more are summarised in one line."""


def render_markdown(records: Sequence[Record], meta: ReportMeta) -> str:
    """The tier's report: header, one table per metric (mean ± std over seeds), cost, failures."""
    ok, stale = [], []
    for r in records:
        if r.status == "ok":
            (stale if _stale(r, meta) else ok).append(r)
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
             "leak = share repeating the prompt; interp-only ACC = KMeans on the mean interpretation embedding alone. "
             "A round whose trained LLM degraded past the guard limits backs off to the previous LLM; "
             "peak GB = the largest of the round's per-step peak memories, and its step; "
             "the last column says what the trained LLM did.", "",
             "| dataset | method | round | distinct % | words | copy % | leak % | interp-only ACC | ACC | peak GB (step) "
             "| back-off |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in sorted(runs, key=lambda r: (r.dataset, r.method, r.variant)):
        for d in r.rounds_detail:
            problems = "; ".join(d.get("backoff_problems") or []) or ("yes" if d.get("backed_off") else "")
            lines.append(f"| {r.dataset} | {label.get((r.method, r.variant), r.method)} | {d['round']} | "
                         f"{_fmt(d.get('distinct_pct'))} | {_fmt(d.get('mean_words'))} | {_fmt(d.get('copy_pct'))} | "
                         f"{_fmt(d.get('leak_pct'))} | {_fmt(d.get('interp_only_acc'))} | {_fmt(d.get('acc'))} | "
                         f"{_step_peak(d.get('peak_rss_mb_by_step'))} | {problems} |")
    return lines


def _step_peak(by_step: Mapping[str, float] | None) -> str:
    """The round's largest per-step peak and its step (runs from before per-step peaks were kept: -)."""
    if not by_step:
        return "-"
    step = max(by_step, key=by_step.get)
    return f"{by_step[step] / 1024:.1f} ({step})"


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
    commits = sorted({r.commit for r in ok if r.commit})
    dates = sorted(r.date for r in ok if r.date)
    wall = sum(r.wall_s or 0.0 for r in ok)
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
    out = []
    within = f" of group {group_name}" if group_name else ""
    for full in [c for c in columns if c[0] == "full"]:
        for other in [c for c in columns if c[1] == full[1] and c != full]:
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
    return out


# ---------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Unit:
    """One ``coevo run`` and the cells it yields: its own seed, plus the recluster seeds."""

    dataset: str
    method: str
    variant: Variant
    seed: int
    recluster_seeds: tuple[int, ...]
    run_dir: Path
    data_file: Path
    task: str
    k: int
    n_texts: int
    sample: int | None
    seed_policy: str

    @property
    def seeds(self) -> tuple[int, ...]:
        return (self.seed, *self.recluster_seeds)

    @property
    def options(self) -> dict[str, Any]:
        """What a record of this unit must have been asked for to count as done."""
        return {"task": self.task, "k": self.k, "sample": self.sample, "seed_policy": self.seed_policy,
                "run_seed": self.seed, **self.variant.settings}

    def expected_config(self) -> dict[str, Any]:
        return CoEvoConfig(n_clusters=self.k, task=self.task, method=self.method, seed=self.seed,
                           **self.variant.settings).to_dict()

    def run_command(self) -> list[str]:
        cmd = [sys.executable, "-m", "coevo.cli", "run", str(self.data_file), "-k", str(self.k), "--task", self.task,
               "--method", self.method, "--seed", str(self.seed), "-o", str(self.run_dir), "-q"]
        if self.sample is not None:
            cmd += ["--sample", str(self.sample)]
        for name, value in self.variant.settings.items():
            flag = "--" + name.replace("_", "-")
            cmd += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
        return cmd

    def label(self) -> str:
        variant = "" if self.variant.name == DEFAULT_VARIANT else f" ({self.variant.name})"
        return f"{self.dataset} · {self.method}{variant}"


@dataclass
class BenchOutcome:
    """What one ``run_bench`` did, in cells (dataset, method, variant, seed)."""

    ran: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0  # recluster seeds not tried because their run failed
    planned: int = 0  # --dry-run: cells that would run
    dry_run: bool = False
    json_path: Path | None = None
    md_path: Path | None = None

    def summary_line(self) -> str:
        if self.dry_run:
            return f"dry run: {self.planned} cells to run, {self.cached} cached; nothing was run or written"
        skipped = f", {self.skipped} skipped (their run failed)" if self.skipped else ""
        return (f"{self.ran + self.cached + self.failed + self.skipped} cells: {self.ran} run, {self.cached} cached, "
                f"{self.failed} failed{skipped}; results: {self.json_path} and {self.md_path}")


def run_bench(
    config: BenchConfig,
    *,
    only: Sequence[str] = (),
    dry_run: bool = False,
    out_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> BenchOutcome:
    """Run every cell of ``config`` that is not done yet and keep the results files up to date.

    Run folders go to ``bench/out/<tier>/...`` and results to ``docs/results/<tier>.{json,md}``,
    or with ``out_dir`` to ``out_dir/<tier>/...`` and ``out_dir/<tier>.{json,md}``.
    ``only`` restricts the bench to these datasets (names, or comma-separated names).
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    root = _repo_root()
    runs_root = (Path(out_dir) if out_dir else root / "bench" / "out") / config.tier
    results = Path(out_dir) if out_dir else root / "docs" / "results"
    outcome = BenchOutcome(json_path=results / f"{config.tier}.json", md_path=results / f"{config.tier}.md",
                           dry_run=dry_run)
    units = _plan(config, _only(config, only), runs_root)
    done = {r.key: r for r in read_records(outcome.json_path) if r.status == "ok"}
    meta = ReportMeta.of(config)
    stamp = _Stamp(root=root, machine=machine())
    for i, unit in enumerate(units, start=1):
        head = f"[{i}/{len(units)}] {unit.label()}"
        todo = [s for s in unit.seeds if not _is_done(done, unit, s)]
        outcome.cached += len(unit.seeds) - len(todo)
        if not todo:
            log(f"{head}: cached (seed{'s' if len(unit.seeds) > 1 else ''} {_seeds(unit.seeds)})")
            continue
        if dry_run:
            outcome.planned += len(todo)
            log(f"{head}: {_dry_run_line(unit, todo)}")
            continue
        outcome.skipped += len(todo)
        for records in _run_unit(unit, todo, stamp, log, head):
            outcome.skipped -= len(records)
            _publish(outcome, records, meta)
            for r in records:
                if r.status == "ok":
                    outcome.ran += 1
                else:
                    outcome.failed += 1
    if not dry_run and outcome.json_path.exists():
        _publish(outcome, [], meta)  # the report follows the config (description, order) even when nothing ran
    return outcome


def _is_done(done: Mapping, unit: Unit, seed: int) -> bool:
    record = done.get((unit.dataset, unit.method, unit.variant.name, seed))
    return (record is not None and _effective(unit.method, record.options) == _effective(unit.method, unit.options)
            and not _config_changed(record, unit.expected_config()))


def _config_changed(record: Record, wanted: Mapping[str, Any]) -> bool:
    """Whether the run behind ``record`` had other effective settings than ``wanted`` (a full
    ``CoEvoConfig`` dict): how a changed default is noticed. Records made before runs' configs were
    kept have none, and are judged by their options alone."""
    if not record.config:
        return False
    try:
        # A setting added since the run ran with its default, which is what --resume reads it as.
        stored = CoEvoConfig.from_dict(record.config).to_dict()
    except (CoevoError, TypeError):
        return True  # a setting since removed or retyped: the run is not comparable
    return _effective(record.method, stored) != _effective(record.method, wanted)


def _seeds(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds))


def _only(config: BenchConfig, only: Sequence[str]) -> tuple[str, ...]:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    for name in names:
        if name not in config.datasets:
            raise CoevoError(f"option --only: {name!r} is not a dataset of config {config.path} "
                             f"(its datasets: {', '.join(config.datasets)})")
    return tuple(d for d in config.datasets if not names or d in names)


def _plan(config: BenchConfig, datasets: Sequence[str], runs_root: Path) -> list[Unit]:
    """Every run to make, with K and the data size worked out from the (sampled) data."""
    from .data import check_n_clusters, load_corpus, stratified_sample

    units = []
    for variant in config.variants:
        for dataset in datasets:
            data_file = config.data_dir / f"{dataset}.jsonl"
            corpus = load_corpus(str(data_file))
            run_seeds = config.seeds[:1] if config.seed_policy == "recluster" else config.seeds
            for seed in run_seeds:
                try:
                    used = stratified_sample(corpus, config.sample, seed) if config.sample else corpus
                    check_n_clusters(used, used.n_labels)
                except CoevoError as exc:
                    raise CoevoError(f"config {config.path}: dataset {dataset}: {exc}") from None
                recluster = config.seeds[1:] if config.seed_policy == "recluster" else ()
                for method in [m for d, m in config.cells if d == dataset and variant.runs(m)]:
                    units.append(Unit(dataset, method, variant, seed, tuple(recluster),
                                      runs_root / variant.name / dataset / f"{method}-seed{seed}", data_file,
                                      DATASET_TASKS[dataset], used.n_labels, len(used), config.sample,
                                      config.seed_policy))
    return units


def _dry_run_line(unit: Unit, todo: Sequence[int]) -> str:
    parts, action = [], None
    if unit.seed in todo or not (unit.run_dir / "summary.json").is_file():
        action, detail = _run_action(unit)
        parts.append({"read": f"read back the finished run {unit.run_dir}", "resume": f"resume {unit.run_dir}",
                      "run": f"run {detail}", "conflict": f"fail: {detail}"}[action])
    reclusters = [s for s in todo if s != unit.seed]
    if reclusters and action != "conflict":
        parts.append(f"recluster seed{'s' if len(reclusters) > 1 else ''} {_seeds(reclusters)}")
    return "; then ".join(parts)


def _run_action(unit: Unit) -> tuple[str, str]:
    """What finishing the unit's run takes: ``read`` its summary, ``resume`` it, ``run`` it (detail: the
    command), or nothing possible: ``conflict`` (detail: why) when its folder holds other settings."""
    if (unit.run_dir / "state.json").is_file():
        mismatch = _config_mismatch(unit)
        if mismatch:
            return "conflict", (f"run folder {unit.run_dir} holds a run with other settings ({mismatch}); "
                                "delete it to redo this cell")
        return ("read" if (unit.run_dir / "summary.json").is_file() else "resume"), ""
    return "run", shlex.join(unit.run_command())


@dataclass(frozen=True)
class _Stamp:
    root: Path  # the commit is read per cell: each cell's subprocess imports the code as it is then
    machine: str


def _run_unit(unit: Unit, todo: Sequence[int], stamp: _Stamp, log, head: str) -> Iterator[list[Record]]:
    """Finish the unit's run (run, resume or read back), then recluster; yields records as they come."""
    base = dict(dataset=unit.dataset, method=unit.method, variant=unit.variant.name, seed_policy=unit.seed_policy,
                run_dir=_shown(unit.run_dir), task=unit.task, n_texts=unit.n_texts, k=unit.k,
                options=unit.options, commit=git_commit(stamp.root), machine=stamp.machine)
    summary, wall, error = _finished_run(unit, log, head)
    if error is not None:
        log(f"{head} · seed {unit.seed}: FAILED: {error}")
        yield [Record(seed=unit.seed, status="failed", source="run", error=error, wall_s=wall, date=_now(), **base)]
        return
    run_record = _run_record(unit, summary, wall, base)
    if unit.seed in todo:
        log(f"{head}: {_scores(run_record)}" + (f" in {wall / 60:.1f} min" if wall else " (read back from its folder)"))
        yield [run_record]
    reclusters = [s for s in todo if s != unit.seed]
    if not reclusters:
        return
    cmd = [sys.executable, "-m", "coevo.benchmark", str(unit.run_dir), *map(str, reclusters)]
    rc, wall, stdout, error = _call(cmd, unit.run_dir.with_name(unit.run_dir.name + ".log"))
    records = []
    if rc == 0:
        result = json.loads(stdout.strip().splitlines()[-1])
        for seed in reclusters:
            metrics = result["metrics"][str(seed)]
            fields = {**dataclasses.asdict(run_record), **base, "seed": seed, "source": "recluster",
                      "wall_s": wall / len(reclusters), "seconds_total": None, "peak_rss_mb": result["peak_rss_mb"],
                      "rounds_detail": [], "date": _now(), **metrics}
            records.append(Record(**fields))
        log(f"{head}: recluster " + "; ".join(_scores(r) for r in records) + f" in {wall / 60:.1f} min")
    else:
        log(f"{head} · seeds {_seeds(reclusters)} (recluster): FAILED: {error}")
        records = [Record(seed=s, status="failed", source="recluster", error=error, wall_s=wall, date=_now(), **base)
                   for s in reclusters]
    yield records


def _finished_run(unit: Unit, log, head: str) -> tuple[dict | None, float | None, str | None]:
    """The unit's summary.json, running or resuming it when needed: (summary, harness wall seconds, error)."""
    action, detail = _run_action(unit)
    if action == "conflict":
        return None, None, detail
    if action == "read":
        return read_json(unit.run_dir / "summary.json"), None, None
    if action == "resume":
        log(f"{head} · seed {unit.seed}: resuming {unit.run_dir}")
        cmd = [sys.executable, "-m", "coevo.cli", "run", "--resume", str(unit.run_dir), "-q"]
    else:
        log(f"{head} · seed {unit.seed}: running")
        cmd = unit.run_command()
    rc, wall, _, error = _call(cmd, unit.run_dir.with_name(unit.run_dir.name + ".log"))
    if rc != 0:
        return None, wall, error
    return read_json(unit.run_dir / "summary.json"), wall, None


def _config_mismatch(unit: Unit) -> str:
    """How the settings of an existing run folder differ from the unit's; empty when they agree."""
    try:
        # A folder made before a setting existed ran with that setting's default (a new setting's
        # default keeps the old behaviour), which is also what --resume reads it as.
        stored = CoEvoConfig.from_dict(read_json(unit.run_dir / "config.json")).to_dict()
        with open(unit.run_dir / "data.jsonl", encoding="utf-8") as handle:
            n_texts = sum(1 for line in handle if line.strip())
    except (OSError, ValueError, CoevoError) as exc:
        return f"unreadable config.json or data.jsonl: {exc}"
    expected = _effective(unit.method, unit.expected_config())
    diffs = [f"{k} {stored.get(k)!r}, expected {v!r}" for k, v in expected.items() if stored.get(k) != v]
    if n_texts != unit.n_texts:
        diffs.append(f"{n_texts} texts, expected {unit.n_texts}")
    return "; ".join(diffs)


def _call(cmd: list[str], log_path: Path) -> tuple[int, float, str, str | None]:
    """Run a subprocess with its stderr appended to ``log_path``: (status, wall seconds, stdout, error or None)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as err:
        err.write(f"\n$ {shlex.join(cmd)}\n".encode())
        err.flush()
        start = err.tell()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
    if proc.returncode == 0:
        return 0, wall, proc.stdout.decode("utf-8", "replace"), None
    with open(log_path, "rb") as handle:
        handle.seek(start)
        tail = handle.read().decode("utf-8", "replace")
    last = next((line.strip() for line in reversed(re.split(r"[\r\n]", tail)) if line.strip()), "")
    if proc.returncode < 0:
        why = f"killed by {signal.Signals(-proc.returncode).name}" + (" (out of memory?)" if proc.returncode == -9 else "")
        last = f"{why}; last output: {last}" if last else why
    return proc.returncode, wall, "", f"{last or 'no output'} (exit status {proc.returncode}; log {_shown(log_path)})"


def _run_record(unit: Unit, summary: dict, wall: float | None, base: dict) -> Record:
    config = summary["config"]
    uses_llm = config["method"] != "kmeans"
    metrics = summary.get("metrics") or {}
    return Record(
        seed=unit.seed, status="ok", source="run",
        **{**{k: v for k, v in base.items() if k != "commit"}, "n_texts": summary["n_texts"]},
        acc=metrics.get("acc"), nmi=metrics.get("nmi"), ari=metrics.get("ari"), wall_s=wall, config=config,
        commit=", ".join(summary.get("code") or []) or base["commit"],
        seconds_total=summary.get("seconds_total"), peak_rss_mb=summary.get("peak_rss_mb"),
        llm=config["llm"] if uses_llm else None, embedder=config["embedder"], rounds=len(summary["rounds"]),
        samples=config["samples"] if uses_llm else None,
        rounds_detail=[_round_detail(row) for row in summary["rounds"]] if uses_llm else [], date=_now(),
    )


def _round_detail(row: dict) -> dict[str, Any]:
    """A round's guard figures (percent) and ACC of clustering its interpretations alone."""
    guards = row.get("guards") or {}
    interp = row.get("interp_only") or {}
    metrics = row.get("metrics") or {}

    def pct(name: str) -> float | None:
        return None if guards.get(name) is None else 100.0 * guards[name]

    return {"round": row["round"], "distinct_pct": pct("distinct_share"), "copy_pct": pct("copy_rate"),
            "leak_pct": pct("leak_rate"), "mean_words": guards.get("mean_words"),
            "interp_only_acc": interp.get("acc"), "acc": metrics.get("acc"), "nmi": metrics.get("nmi"),
            "ari": metrics.get("ari"), "n_pairs": row.get("n_pairs"), "backed_off": bool(row.get("backed_off")),
            "backoff_problems": (row.get("backed_off") or {}).get("problems", []),
            "peak_rss_mb_by_step": row.get("peak_rss_mb_by_step") or {}}


def _scores(record: Record) -> str:
    return f"seed {record.seed}: ACC {record.acc:.1f} NMI {record.nmi:.1f} ARI {record.ari:.1f}"


def _publish(outcome: BenchOutcome, records: Sequence[Record], meta: ReportMeta) -> None:
    """Merge ``records`` into the results file (re-read under a lock, so a parallel bench of the
    same tier loses nothing) and render the report from it."""
    json_path, md_path = outcome.json_path, outcome.md_path
    json_path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(json_path.parent, os.O_RDONLY)  # the lock: no stray lock file beside the results
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        merged = merge_records(read_records(json_path), records)
        if records:
            atomic_write_json(json_path, [dataclasses.asdict(r) for r in merged])
        text = render_markdown(merged, meta)
        if not md_path.exists() or md_path.read_text(encoding="utf-8") != text:
            atomic_write_text(md_path, text)
    finally:
        os.close(folder)  # closing releases the lock


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it, so results files are portable."""
    try:
        return str(path.resolve().relative_to(_repo_root()))
    except ValueError:
        return str(path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- recluster subprocess


def _recluster_main(argv: Sequence[str]) -> int:
    """``python -m coevo.benchmark RUN_DIR SEED...``: the metrics of a finished run reclustered with other
    KMeans seeds, as one JSON line on stdout.

    A subprocess, like the runs: it loads the run's embedder and embeds every
    text and interpretation, so its memory and any crash stay out of the bench.
    """
    if len(argv) < 2:
        print("usage: python -m coevo.benchmark RUN_DIR SEED...", file=sys.stderr)
        return 2
    from .pipeline import CoEvolution
    from .provenance import peak_rss_mb

    try:
        model = CoEvolution.load(argv[0])
        metrics = {str(r["seed"]): r.get("metrics") for r in model.recluster([int(seed) for seed in argv[1:]])}
    except CoevoError as exc:
        print(f"coevo: error: {exc}", file=sys.stderr)
        return 2
    if any(m is None for m in metrics.values()):
        print(f"coevo: error: {argv[0]}: the run's data has no gold labels to score against", file=sys.stderr)
        return 2
    print(json.dumps({"metrics": metrics, "peak_rss_mb": peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(_recluster_main(sys.argv[1:]))
