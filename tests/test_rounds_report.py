"""bench/rounds.py: the label-free round rules and the report that compares them at equal KMeans draws."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def _rounds():
    spec = importlib.util.spec_from_file_location("rounds_script", Path(__file__).parents[1] / "bench" / "rounds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_round_gate_keeps_round_two_unless_round_one_is_clearly_more_reproducible():
    module = _rounds()
    steady = np.array([0.60, 0.62, 0.61, 0.63, 0.60, 0.62, 0.61, 0.60, 0.62, 0.61])
    assert module.round_gate(steady + 0.05, steady)[0] == "round1"
    assert module.round_gate(steady, steady + 0.05)[0] == "round2"
    noisy = steady + np.array([0.03, -0.03] * 5)  # level on the mean: the later round stays
    pick, test = module.round_gate(noisy, steady)
    assert pick == "round2" and abs(test["lead"]) < 1e-9


def _run(acc: dict, backed_off: bool, gate_pick: str) -> dict:
    return {"acc": acc, "backed_off": backed_off, "run_acc": {"round1": 50.0, "round2": 48.0}, "kmeans_acc": 49.0,
            "stability": {"round1": 0.7, "round2": 0.6, "lead": 0.1, "lead_se": 0.01},
            "picks": {"round-gate": gate_pick, "no-round-after-back-off": "round1" if backed_off else "round2"}}


def test_report_reads_each_rule_off_the_round_it_picked_and_splits_by_group():
    module = _rounds()
    fell = _run({"base": 50.0, "round1": 52.0, "round2": 47.0, "round1+round2": 51.0, "round2+base": 49.0}, True, "round1")
    rose = _run({"base": 30.0, "round1": 33.0, "round2": 38.0, "round1+round2": 36.0, "round2+base": 34.0}, False, "round2")
    data = {"tier": "t", "commits": ["abc1234"], "date": "2026-12-06", "machine": "Test CPU", "seconds": 2.0,
            "run_seeds": [4], "seeds": [0, 1, 2], "kmeans_init": 10,
            "groups": {"dev": ["fewrel"], "confirmation": ["mtop_domain"]},
            "results": {"fewrel": {"full (default), seed 4": rose}, "mtop_domain": {"full (default), seed 4": fell}}}
    assert module.column(fell, "round-gate") == 52.0 and module.column(rose, "no-round-after-back-off") == 38.0
    text = module.render(data)
    assert ("| mtop_domain | full (default), seed 4 | yes | 50.0 → 48.0 | 49.0 | 50.0 | 52.0 | 47.0 | 51.0 | 49.0 | "
            "0.700 / 0.600 | round1 | round1 |") in text
    assert "### dev (1 datasets, 1 runs)" in text and "### confirmation (1 datasets, 1 runs)" in text
    dev, confirmation = text.split("### confirmation")
    assert "- `round2`: mean +8.00; above on 1 of 1, more than 1.0 below on 0, lowest +8.00" in dev
    assert "- `round2`: mean -3.00; above on 0 of 1, more than 1.0 below on 1, lowest -3.00" in confirmation
    assert "- `round-gate`: mean +2.00; above on 1 of 1" in confirmation
    assert "| mtop_domain | 1 | 50.0 | **52.0** | 47.0 | 51.0 | 49.0 | **52.0** | **52.0** |" in confirmation
