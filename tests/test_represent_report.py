"""bench/represent.py's report: the ``gate`` column (``represent gate``) beside the fixed weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _represent():
    spec = importlib.util.spec_from_file_location("represent_script", Path(__file__).parents[1] / "bench" / "represent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _weights(module, text_wins: bool):
    rows = {str(w): {"acc": 50.0 + 10 * w, "acc_std": 0.0, "nmi": 40.0} for w in module.WEIGHTS}
    rows["agreement"] = {"acc": 51.0, "acc_std": 0.0, "nmi": 40.0}
    taken = "0.0" if text_wins else module.DEFAULT
    rows["gate"] = {**rows[taken], "w": float(taken), "text_stability": 0.9 if text_wins else 0.5,
                    "joined_stability": 0.6, "lead": -0.3 if text_wins else 0.1, "lead_se": 0.05}
    rows["base"] = {"acc": 49.0, "acc_std": 0.0, "nmi": 40.0}
    return rows


def test_report_shows_the_gate_column_where_it_took_the_text_and_against_kmeans():
    module = _represent()
    fired = {"kmeans_acc": 49.0, "weights": _weights(module, True)}
    kept = {"kmeans_acc": 50.0, "weights": _weights(module, False)}
    data = {"tier": "t", "commits": ["abc1234"], "date": "2026-12-03", "machine": "Test CPU", "seconds": 1.0,
            "run_seeds": [0], "seeds": [0], "kmeans_init": None, "base": True,
            "results": {"mtop_domain": {"full (default), seed 0": fired}, "goemo": {"full (default), seed 0": kept}}}
    text = module.render(data)
    assert "| dataset | run | kmeans | w=0.0 | w=0.25 | w=0.5 | w=1.0 | agreement | gate | base |" in text
    assert "| mtop_domain | full (default), seed 0 | 49.0 | 50.0 | 52.5 | **55.0** | **60.0** |" not in text
    assert "| mtop_domain | full (default), seed 0 | 49.0 | 50.0 | 52.5 | 55.0 | **60.0** | 51.0 | 50.0 | 49.0 |" in text
    assert "| goemo | full (default), seed 0 | 50.0 | 50.0 | 52.5 | 55.0 | **60.0** | 51.0 | 55.0 | 49.0 |" in text
    assert "`gate` took the text alone on 1 of 2 runs: mtop_domain · full (default), seed 0" in text
    assert "| mtop_domain | full (default), seed 0 | 0.900 | 0.600 | -0.300 ± 0.050 | 0 | -5.0 |" in text
    assert "- `gate`: -2.50 over 2 runs; better on 0, worse on 1" in text  # against the default weight
    assert "- `gate`: mean +3.00 over 2 runs; above on 2, more than 1.0 below on 0, lowest +1.0" in text


def _anchored(module, gate: float, anchor: float, wise: float, base: float = 50.0):
    rows = _weights(module, False)
    rows["gate"]["acc"] = gate
    rows["base"]["acc"] = base
    rows["anchor"] = {"acc": anchor, "acc_std": 0.0, "nmi": 40.0}
    rows["wise"] = {"acc": wise, "acc_std": 0.0, "nmi": 40.0}
    return {"kmeans_acc": base, "weights": rows}


def test_lever_8_adopts_a_candidate_only_when_it_lifts_the_floor_keeps_the_mean_and_the_count():
    module = _represent()
    # gate against base: +6, +4, -4 (mean +2.0, above on 2, lowest -4)
    # anchor: +4, +3, -1 (mean +2.0, above on 2, lowest -1): passes
    # wise: +2, +1, -2 (mean +0.33): lifts the floor but loses the mean
    results = {"a": {"full (d), seed 5": _anchored(module, 56.0, 54.0, 52.0)},
               "b": {"full (d), seed 5": _anchored(module, 54.0, 53.0, 51.0)},
               "c": {"full (d), seed 5": _anchored(module, 46.0, 49.0, 48.0)}}
    data = {"tier": "anchor-cpu", "commits": ["abc1234"], "date": "2026-12-07", "machine": "Test CPU", "seconds": 1.0,
            "run_seeds": [5], "seeds": [0], "kmeans_init": 10, "base": True, "anchor": True, "results": results}
    text = module.render(data)
    assert "| dataset | run | kmeans | w=0.0 | w=0.25 | w=0.5 | w=1.0 | agreement | gate | base | anchor | wise |" in text
    assert "| `gate` | +2.00 | 2 of 3 | -4.0 | (today's default) |" in text
    assert "| `anchor` | +2.00 | 2 of 3 | -1.0 | passes |" in text
    assert "| `wise` | +0.33 | 2 of 3 | -2.0 | no: mean below +2.0 |" in text
    assert "Adopted: `anchor`." in text
    # a floor only 0.5 above the gate's is not enough, whatever the mean
    results["c"]["full (d), seed 5"] = _anchored(module, 46.0, 46.5, 48.0)
    assert "Adopted: neither." in module.render(data)


def test_wise_embedder_is_the_weight_by_weight_mean_of_the_two_models():
    import torch

    module = _represent()
    base, tuned = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    expected = (base.weight.detach().clone() + tuned.weight.detach()) / 2
    mixed = module.averaged_embedder(base, tuned)
    assert torch.allclose(mixed.weight, expected)
    assert not torch.allclose(mixed.weight, tuned.weight)
