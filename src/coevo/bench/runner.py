"""Running a tier: every cell a ``coevo run`` subprocess (its peak memory its own, a crash costing one
cell), resumed or read back when its folder holds one, the results file merged under a lock and
the report re-rendered after every finished cell."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, atomic_write_text, read_json
from ..config import CoEvoConfig
from ..errors import CoevoError
from ..provenance import git_commit, machine
from .config import DATASET_TASKS, DEFAULT_VARIANT, BenchConfig, Variant, effective_settings
from .records import Record, merge_records, read_records
from .report import ReportMeta, render_markdown
from .results import now, repo_root, shown

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

    @property
    def config_file(self) -> Path:
        """The cell's settings, written beside its run folder before the run: ``coevo run --config`` reads them,
        so the run gets exactly the config its records are later checked against."""
        return self.run_dir.with_name(self.run_dir.name + ".config.json")

    def run_command(self) -> list[str]:
        cmd = [sys.executable, "-m", "coevo.cli", "run", str(self.data_file), "--config", str(self.config_file),
               "-o", str(self.run_dir), "-q"]
        if self.sample is not None:
            cmd += ["--sample", str(self.sample)]
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
    reused: int = 0  # cells taken from the results of the tiers the config's ``reuse`` names
    dry_run: bool = False
    rendered: bool = False  # --render: the report was rewritten from the results file, nothing ran
    json_path: Path | None = None
    md_path: Path | None = None

    def summary_line(self) -> str:
        if self.rendered:
            return f"report {self.md_path} rewritten from {self.json_path}; nothing was run"
        reused = f", {self.reused} taken from other tiers" if self.reused else ""
        if self.dry_run:
            return f"dry run: {self.planned} cells to run, {self.cached} cached{reused}; nothing was run or written"
        skipped = f", {self.skipped} skipped (their run failed)" if self.skipped else ""
        total = self.ran + self.cached + self.reused + self.failed + self.skipped
        return (f"{total} cells: {self.ran} run, {self.cached} cached{reused}, "
                f"{self.failed} failed{skipped}; results: {self.json_path} and {self.md_path}")


def run_bench(
    config: BenchConfig,
    *,
    only: Sequence[str] = (),
    dry_run: bool = False,
    render: bool = False,
    out_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> BenchOutcome:
    """Run every cell of ``config`` that is not done yet and keep the results files up to date.

    Run folders go to ``bench/out/<tier>/...`` and results to ``docs/results/<tier>.{json,md}``,
    or with ``out_dir`` to ``out_dir/<tier>/...`` and ``out_dir/<tier>.{json,md}``.
    ``only`` restricts the bench to these datasets (names, or comma-separated names).
    ``render`` runs nothing and rewrites the report from the results file: after a bench of a
    trimmed copy of the config (which orders the rows and columns as the copy does), or a change
    to the report.
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    root = repo_root()
    runs_root = (Path(out_dir) if out_dir else root / "bench" / "out") / config.tier
    results = Path(out_dir) if out_dir else root / "docs" / "results"
    outcome = BenchOutcome(json_path=results / f"{config.tier}.json", md_path=results / f"{config.tier}.md",
                           dry_run=dry_run, rendered=render)
    meta = ReportMeta.of(config)
    if render:
        if not outcome.json_path.exists():
            raise CoevoError(f"option --render: tier {config.tier!r} has no results file {outcome.json_path}; "
                             "run the bench first")
        _publish(outcome, [], meta)
        return outcome
    units = _plan(config, _only(config, only), runs_root)
    done = {r.key: r for r in read_records(outcome.json_path) if r.status == "ok"}
    reusable = _reusable(config, results)
    stamp = _Stamp(root=root, machine=machine())
    for i, unit in enumerate(units, start=1):
        head = f"[{i}/{len(units)}] {unit.label()}"
        todo = [s for s in unit.seeds if not _is_done(done, unit, s)]
        outcome.cached += len(unit.seeds) - len(todo)
        if not todo:
            log(f"{head}: cached (seed{'s' if len(unit.seeds) > 1 else ''} {_seeds(unit.seeds)})")
            continue
        taken = _taken(reusable, unit, todo)
        if taken:
            outcome.reused += len(taken)
            for r in taken:
                log(f"{head} · seed {r.seed}: taken from {r.reused_from}.json ({_scores(r)}; ran at {r.commit})")
            if not dry_run:
                _publish(outcome, taken, meta)
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


def _reusable(config: BenchConfig, results: Path) -> dict[tuple[str, str, int], list[Record]]:
    """The finished records of the tiers the config's ``reuse`` names, by (dataset, method, seed), each marked
    with the tier that ran it."""
    found: dict[tuple[str, str, int], list[Record]] = {}
    for tier in config.reuse:
        path = results / f"{tier}.json"
        if not path.exists():
            raise CoevoError(f"config {config.path}: key 'reuse': tier {tier!r} has no results file {path}; "
                             "run that tier first or take it out of 'reuse'")
        for r in read_records(path):
            if r.status == "ok":
                found.setdefault((r.dataset, r.method, r.seed), []).append(
                    dataclasses.replace(r, reused_from=r.reused_from or tier))
    return found


def _taken(reusable: Mapping[tuple[str, str, int], Sequence[Record]], unit: Unit, todo: Sequence[int]) -> list[Record]:
    """Other tiers' records that answer every seed the unit still needs, asked the same (sample, seed, settings),
    as this tier's; none unless all seeds are answered, since a recluster seed needs its run's folder here."""
    taken = []
    for seed in todo:
        match = next((r for r in reusable.get((unit.dataset, unit.method, seed), ()) if r.asked_for(unit.options)),
                     None)
        if match is None:
            return []
        taken.append(dataclasses.replace(match, variant=unit.variant.name))
    return taken


def _is_done(done: Mapping, unit: Unit, seed: int) -> bool:
    record = done.get((unit.dataset, unit.method, unit.variant.name, seed))
    return record is not None and record.asked_for(unit.options)


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
    from ..data import check_n_clusters, load_corpus, stratified_sample

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
                run_dir=shown(unit.run_dir), task=unit.task, n_texts=unit.n_texts, k=unit.k,
                options=unit.options, commit=git_commit(stamp.root), machine=stamp.machine)
    summary, wall, error = _finished_run(unit, log, head)
    if error is not None:
        log(f"{head} · seed {unit.seed}: FAILED: {error}")
        yield [Record(seed=unit.seed, status="failed", source="run", error=error, wall_s=wall, date=now(), **base)]
        return
    run_record = _run_record(unit, summary, wall, base)
    if unit.seed in todo:
        log(f"{head}: {_scores(run_record)}" + (f" in {wall / 60:.1f} min" if wall else " (read back from its folder)"))
        yield [run_record]
    reclusters = [s for s in todo if s != unit.seed]
    if not reclusters:
        return
    cmd = [sys.executable, "-m", "coevo.bench.recluster", str(unit.run_dir), *map(str, reclusters)]
    rc, wall, stdout, error = _call(cmd, unit.run_dir.with_name(unit.run_dir.name + ".log"))
    records = []
    if rc == 0:
        result = json.loads(stdout.strip().splitlines()[-1])
        for seed in reclusters:
            metrics = result["metrics"][str(seed)]
            fields = {**dataclasses.asdict(run_record), **base, "seed": seed, "source": "recluster",
                      "wall_s": wall / len(reclusters), "seconds_total": None, "peak_rss_mb": result["peak_rss_mb"],
                      "rounds_detail": [], "date": now(), **metrics}
            records.append(Record(**fields))
        log(f"{head}: recluster " + "; ".join(_scores(r) for r in records) + f" in {wall / 60:.1f} min")
    else:
        log(f"{head} · seeds {_seeds(reclusters)} (recluster): FAILED: {error}")
        records = [Record(seed=s, status="failed", source="recluster", error=error, wall_s=wall, date=now(), **base)
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
        atomic_write_json(unit.config_file, unit.expected_config())
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
    expected = effective_settings(unit.method, unit.expected_config())
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
    return proc.returncode, wall, "", f"{last or 'no output'} (exit status {proc.returncode}; log {shown(log_path)})"


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
        rounds_detail=[_round_detail(row) for row in summary["rounds"]] if uses_llm else [], date=now(),
    )


def _round_detail(row: dict) -> dict[str, Any]:
    """A round's guard figures (percent), ACC of clustering its interpretations alone, and the weight its
    clustering gave them."""
    guards = row.get("guards") or {}
    interp = row.get("interp_only") or {}
    metrics = row.get("metrics") or {}

    def pct(name: str) -> float | None:
        return None if guards.get(name) is None else 100.0 * guards[name]

    return {"round": row["round"], "distinct_pct": pct("distinct_share"), "copy_pct": pct("copy_rate"),
            "leak_pct": pct("leak_rate"), "mean_words": guards.get("mean_words"),
            "interp_only_acc": interp.get("acc"), "acc": metrics.get("acc"), "nmi": metrics.get("nmi"),
            "ari": metrics.get("ari"), "interp_weight": row.get("interp_weight"),
            "n_pairs": row.get("n_pairs"), "backed_off": bool(row.get("backed_off")),
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
