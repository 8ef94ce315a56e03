"""What every benchmark writes beside its numbers, in one place: where the repository and the
data are, the provenance stamp (commit, machine, date), and the atomic writing of a result
pair ``docs/results/<name>.json`` + ``.md``.

The tiers (``coevo bench``) and the scripts under ``bench/`` (speed, represent,
predict, reliability, gpu) all write through it, so a result table always carries
the same stamp and is never left half written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, atomic_write_text, read_json
from ..provenance import git_commit, machine


def repo_root() -> Path:
    """The checkout this package lives in (src layout), or the working folder for an installed package."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def data_dir() -> Path:
    """The ClusterLLM datasets: ``$COEVO_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("COEVO_DATA") or repo_root() / ".." / "shared" / "data").resolve()


def results_dir() -> Path:
    return repo_root() / "docs" / "results"


def now() -> str:
    """UTC, to the second: when a result was measured."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def today() -> str:
    """UTC, to the minute: the date a result file's header shows."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def stamp() -> dict[str, str]:
    """The provenance every result file carries: the commit of the code measured (this package's
    checkout), the machine, the date."""
    return {"commit": git_commit(repo_root()), "machine": machine(), "date": today()}


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it, so results files are portable."""
    try:
        return str(Path(path).resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)


def write_results(folder: Path, name: str, data: Any, render: Callable[[Any], str]) -> tuple[Path, Path]:
    """``folder/<name>.json`` (the data) and ``folder/<name>.md`` (``render(data)``), each written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
    atomic_write_json(json_path, data)
    text = render(data)
    atomic_write_text(md_path, text if text.endswith("\n") else text + "\n")
    return json_path, md_path


def summary_digest(run_dir: Path) -> str:
    """sha256 of a finished run's ``summary.json``: a script that measures runs again skips one whose
    digest it has already measured, since any step that ran again rewrites the summary."""
    return hashlib.sha256((Path(run_dir) / "summary.json").read_bytes()).hexdigest()


def cell_acc(tier: str) -> dict[tuple[str, str, int], float]:
    """The ACC of a tier's finished cells (its own or reused) by (method, dataset, seed): the one reading of a
    tier's results file that the scripts setting tiers side by side share. A tier not yet run has none."""
    path = results_dir() / f"{tier}.json"
    records = read_json(path, list) if path.is_file() else []
    return {(r["method"], r["dataset"], r["seed"]): r["acc"] for r in records if r.get("status") == "ok"}


def kmeans_acc(tier: str) -> dict[tuple[str, int], float]:
    """The ACC of a tier's own `kmeans` cells (plain embed + KMeans, as the bench ran them) by
    (dataset, seed), for the scripts that set a tier's runs beside its baseline."""
    return {(dataset, seed): acc for (method, dataset, seed), acc in cell_acc(tier).items() if method == "kmeans"}
