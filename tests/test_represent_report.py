"""bench/represent.py's report: the stability gate between the base f(x) and the default weight."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _represent():
    spec = importlib.util.spec_from_file_location("represent_script", Path(__file__).parents[1] / "bench" / "represent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _weights(module, base_acc, base_stability, default_stability):
    rows = {str(w): {"acc": 50.0 + 10 * w, "acc_std": 0.0, "nmi": 40.0, "stability": 0.5} for w in module.WEIGHTS}
    rows[module.DEFAULT]["stability"] = default_stability
    rows["agreement"] = {"acc": 51.0, "acc_std": 0.0, "nmi": 40.0}
    rows["base"] = {"acc": base_acc, "acc_std": 0.0, "nmi": 40.0, "stability": base_stability}
    return rows


def test_gate_keeps_the_base_text_only_when_its_clusters_are_more_stable():
    module = _represent()
    default_acc = 50.0 + 10 * float(module.DEFAULT)
    assert module.picks(_weights(module, 80.0, 0.9, 0.6))["gate"] == {"w": "base", "acc": 80.0}
    assert module.picks(_weights(module, 80.0, 0.5, 0.6))["gate"] == {"w": float(module.DEFAULT), "acc": default_acc}
    without_base = _weights(module, 80.0, 0.9, 0.6)
    del without_base["base"]
    assert "gate" not in module.picks(without_base)


def test_report_shows_the_base_column_and_the_gate_against_kmeans():
    module = _represent()
    stable = {"kmeans_acc": 79.0, "weights": _weights(module, 80.0, 0.9, 0.6)}
    unstable = {"kmeans_acc": 50.0, "weights": _weights(module, 49.0, 0.2, 0.6)}
    data = {"tier": "t", "commits": ["abc1234"], "date": "2026-12-03", "machine": "Test CPU", "seconds": 1.0,
            "run_seeds": [0], "seeds": [0], "kmeans_init": None, "base": True,
            "results": {"mtop_domain": {"full (default), seed 0": stable}, "goemo": {"full (default), seed 0": unstable}}}
    text = module.render(data)
    assert "| dataset | run | kmeans | w=0.0 | w=0.25 | w=0.5 | w=1.0 | agreement | base |" in text
    assert "| mtop_domain | full (default), seed 0 | 79.0 |" in text and "| **80.0** |" in text
    assert "| 55.0 | 1 · 60.0 | 0.5 · 55.0 | - | - | base · 80.0 |" in text  # oracle ignores base; the gate keeps it
    assert "| 55.0 | 1 · 60.0 | 0.5 · 55.0 | - | - | 0.5 · 55.0 |" in text  # less stable: the default weight stays
    assert "- `gate`: mean +3.00 over 2 runs; above on 2, more than 1.0 below on 0, lowest +1.0" in text
