"""bench/rounds.py: the label-free round rules and the report that compares them at equal KMeans draws."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest


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


def test_beside_pairs_runs_of_the_same_dataset_and_seed_and_drops_those_on_another_sample(tmp_path, monkeypatch):
    module = _rounds()
    other = {"seeds": [0, 1, 2], "kmeans_init": 10, "results": {
        "fewrel": {"full (default), seed 4": {"acc": {"base": 30.0, "round2": 35.0}, "run_seed": 4}},
        "goemo": {"full (default), seed 4": {"acc": {"base": 20.0, "round2": 21.0}, "run_seed": 4}}}}
    (tmp_path / "rounds-cpu.json").write_text(json.dumps(other))
    monkeypatch.setattr(module, "results_dir", lambda: tmp_path)
    beside = module.beside_runs("cpu", [0, 1, 2], 10)
    assert beside["runs"]["fewrel"] == {"4": {"base": 30.0, "round2": 35.0}}
    with pytest.raises(SystemExit, match="other KMeans draws .* give the same --seeds and --kmeans-init"):
        module.beside_runs("cpu", [0, 1, 2], 50)
    rose = _run({"base": 30.0, "round1": 33.0, "round2": 38.0, "round1+round2": 36.0, "round2+base": 34.0}, False, "round2")
    elsewhere = _run({"base": 25.0, "round1": 26.0, "round2": 27.0, "round1+round2": 26.0, "round2+base": 26.0}, False,
                     "round2")  # its base differs from the partner's: another sample of texts, not paired
    data = {"tier": "t", "commits": ["abc1234"], "date": "2026-12-06", "machine": "Test CPU", "seconds": 2.0,
            "run_seeds": [4], "seeds": [0, 1, 2], "kmeans_init": 10, "groups": None, "beside": beside,
            "results": {"fewrel": {"full (big), seed 4": {**rose, "run_seed": 4}},
                        "goemo": {"full (big), seed 4": {**elsewhere, "run_seed": 4}}}}
    text = module.render(data).split("## Beside tier `cpu`")[1]
    assert "| fewrel | 1 | 30.0 | 35.0 | **38.0** |" in text and "| goemo |" not in text
    assert "- `round2`: mean +3.00; above on 1 of 1, more than 1.0 below on 0, lowest +3.00" in text


def test_runs_of_three_rounds_meet_the_test_written_before_them():
    module = _rounds()

    def three(acc: dict, gate_pick: str = "round3") -> dict:
        return {"acc": {**acc, "round1+round2": 0.0, "round2+base": 0.0}, "rounds": 3, "backed_off": False,
                "run_acc": {"round1": 40.0, "round2": 41.0, "round3": 42.0}, "kmeans_acc": 39.0,
                "stability": {"round2": 0.5, "round3": 0.6, "lead": 0.1, "lead_se": 0.01},
                "step_seconds": {"run": 900.0, "shorter_twin": 600.0},
                "picks": {"round-gate": gate_pick, "no-round-after-back-off": "round3"}}

    rose = three({"base": 40.0, "round1": 41.0, "round2": 42.0, "round3": 46.0})
    held = three({"base": 30.0, "round1": 31.0, "round2": 33.0, "round3": 33.5})
    fell = three({"base": 50.0, "round1": 50.0, "round2": 50.0, "round3": 48.0})  # round 3 takes it 2 below base
    test = module.last_round_test([rose, held], 3)
    assert test["adopted"] and test["mean_gain"] == pytest.approx(2.25) and test["above"] == 2
    test = module.last_round_test([rose, held, fell], 3)
    assert not test["adopted"] and test["lowest"] == {"round2": 0.0, "round3": -2.0}
    assert test["checks"] == {"mean gain at least +0.5": True, "above on more than half of the runs": True,
                              "lowest against base within 0.5 of the round before's": False}
    data = {"tier": "t", "commits": ["abc1234"], "date": "2026-12-07", "machine": "Test CPU", "seconds": 2.0,
            "run_seeds": [5], "seeds": [0, 1, 2], "kmeans_init": 10, "groups": None,
            "results": {"bank77": {"full (default), seed 5": rose}, "goemo": {"full (default), seed 5": held},
                        "clinc_domain": {"full (default), seed 5": fell}}}
    text = module.render(data)
    assert "| bank77 | full (default), seed 5 | - | 40.0 → 41.0 → 42.0 | 39.0 | 40.0 | 41.0 | 42.0 | 46.0 |" in text
    assert "- `round3`: mean +2.50; above on 2 of 3, more than 1.0 below on 1, lowest -2.00" in text
    assert "## `round3` against `round2`: the test written before the runs" in text
    assert "**not adopted**: the tier stays at T = 2" in text
    assert "45.0 minutes in all; the steps a run of 2 rounds makes took 30.0 of them" in text and "1.50 times" in text
