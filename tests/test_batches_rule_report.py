"""bench/batches_rule.py: rule 1b' is judged by its pre-written clauses, and only once every cell has run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from coevo.bench import results


def _script():
    spec = importlib.util.spec_from_file_location("batches_rule_script", Path(__file__).parents[1] / "bench" / "batches_rule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results_in(folder: Path, monkeypatch):
    """The script under test, reading and writing its tiers' files in ``folder``."""
    module = _script()
    monkeypatch.setattr(module, "results_dir", lambda: folder)
    monkeypatch.setattr(results, "results_dir", lambda: folder)
    return module


def _write(folder: Path, tier: str, cells: dict[tuple[str, str, int], float]) -> None:
    records = [{"method": m, "dataset": d, "seed": s, "acc": acc, "status": "ok"} for (m, d, s), acc in cells.items()]
    records.append({"method": "full", "dataset": "reddit", "seed": 9, "acc": 99.0, "status": "failed"})
    (folder / f"{tier}.json").write_text(json.dumps(records))


def _tiers(folder: Path, gains: dict[str, float], seeds=(2, 3, 4), kmeans_gap: float = 0.0) -> None:
    module = _script()
    old, new = {}, {}
    for dataset in module.SETS:
        for seed in seeds:
            old[("kmeans", dataset, seed)] = 50.0
            old[("full", dataset, seed)] = 50.0 + kmeans_gap
            if dataset in gains:
                new[("full", dataset, seed)] = 50.0 + kmeans_gap + gains[dataset]
    _write(folder, "cpu", old)
    _write(folder, "batches-confirm-cpu", new)


def test_the_rule_is_confirmed_only_when_every_clause_holds_on_every_cell(tmp_path, monkeypatch):
    module = _results_in(tmp_path, monkeypatch)
    _tiers(tmp_path, {"clinc_intent": 3.0, "massive_intent": 1.0, "fewnerd": 0.5, "arxiv_s2s": -0.5, "reddit": -0.2})
    data = module.measure("batches-confirm-cpu", "cpu")
    assert data["test"]["complete"] and data["test"]["above"] == 3
    assert abs(data["test"]["mean"] - 0.76) < 1e-9 and data["test"]["confirmed"]
    assert "**confirmed**" in module.render(data)

    # a set falling more than 1.0 below kmeans, which the old batches had not, fails it
    _tiers(tmp_path, {"clinc_intent": 5.0, "massive_intent": 1.0, "fewnerd": 0.5, "arxiv_s2s": -1.5, "reddit": 1.0})
    data = module.measure("batches-confirm-cpu", "cpu")
    assert data["test"]["clauses"]["no new set more than 1.0 below kmeans"] is False and not data["test"]["confirmed"]
    # ... unless the old cell was already that far below
    _tiers(tmp_path, {"clinc_intent": 5.0, "massive_intent": 1.0, "fewnerd": 0.5, "arxiv_s2s": -0.2, "reddit": 1.0},
           kmeans_gap=-1.5)
    assert module.measure("batches-confirm-cpu", "cpu")["test"]["confirmed"]


def test_no_verdict_while_cells_are_missing(tmp_path, monkeypatch):
    module = _results_in(tmp_path, monkeypatch)
    _tiers(tmp_path, {"clinc_intent": 3.0, "massive_intent": 2.0, "fewnerd": 2.0})  # two sets not run
    data = module.measure("batches-confirm-cpu", "cpu")
    assert not data["test"]["complete"] and not data["test"]["confirmed"] and data["test"]["sets"] == 3
    text = module.render(data)
    assert "none yet" in text and "| reddit | - |" in text
