"""bench/gate_rules.py: a ceiling on the text's stability is chosen on the choosing group alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _script():
    spec = importlib.util.spec_from_file_location("gate_rules_script", Path(__file__).parents[1] / "bench" / "gate_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(text_stability: float, gate_w: float, text: float, join: float) -> dict:
    gate = {"w": gate_w, "acc": join if gate_w > 0 else text, "text_stability": text_stability,
            "joined_stability": text_stability + 0.02, "lead": 0.02, "lead_se": 0.01}
    return {"weights": {"0.0": {"acc": text}, "0.5": {"acc": join}, "gate": gate}}


def _file(runs: dict) -> dict:
    return {"results": {"set": runs}}


def test_a_ceiling_needs_two_fooled_runs_above_the_most_stable_lifted_one():
    module = _script()
    choose = module.gate_runs("design", _file({
        "lifted": _run(0.70, 0.5, 70.0, 75.0),
        "fooled low": _run(0.60, 0.5, 60.0, 55.0),  # below the lifted run: a ceiling there would cost it
        "fooled high": _run(0.90, 0.5, 90.0, 85.0),
        "fooled higher": _run(0.95, 0.5, 92.0, 88.0),
        "text kept": _run(0.85, 0.0, 80.0, 79.0)}))
    ceiling = module.choose_ceiling(choose)
    assert ceiling["fooled_above"] == [0.90, 0.95]
    assert abs(ceiling["tau"] - 0.80) < 1e-9
    confirm = module.gate_runs("confirm", _file({"strong": _run(0.82, 0.5, 91.0, 85.0), "weak": _run(0.5, 0.5, 50.0, 52.0)}))
    summary = module.apply(confirm, ceiling["tau"])
    assert summary["changed"] == ["set · strong"]
    assert summary["gate"] == (85.0 + 52.0) / 2 and summary["ceiling"] == (91.0 + 52.0) / 2


def test_one_fooled_run_is_not_enough_and_the_confirmation_group_sees_no_ceiling():
    module = _script()
    choose = module.gate_runs("design", _file({"lifted": _run(0.70, 0.5, 70.0, 75.0),
                                               "fooled": _run(0.90, 0.5, 90.0, 85.0)}))
    ceiling = module.choose_ceiling(choose)
    assert ceiling["tau"] is None
    data = {"commit": "abc1234", "date": "2026-12-07", "choose": ["design"], "confirm": ["confirm"], "ceiling": ceiling,
            "summary": {"choose": module.apply(choose, None),
                        "confirm": module.apply(module.gate_runs("confirm", _file({"s": _run(0.82, 0.5, 91.0, 85.0)})), None)},
            "rows": {"choose": choose, "confirm": []}}
    text = module.render(data)
    assert "**no tau: fewer than 2 fooled runs to choose it on; the rule is dropped**" in text
    assert "ceiling |" not in text
    assert "| confirm | 1 | 91.00 | 85.00 | 85.00 | 91.00 |" in text
