"""bench/contrastive.py: training a finished run's embedder again under other contrastive settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def _script():
    spec = importlib.util.spec_from_file_location("contrastive_script",
                                                  Path(__file__).parents[1] / "bench" / "contrastive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_again_as_the_run_did_rebuilds_its_clusters_and_another_setting_changes_them(full_run):
    from coevo import CoEvolution

    module = _script()
    model = CoEvolution.load(full_run)
    cfg = model.config
    # at the run's own KMeans seed and restarts, the replayed embedder clusters exactly as the run did
    measured = module.measure(full_run, ["as run", "lr=4e-5"], [cfg.seed], cfg.kmeans_init)
    assert measured["acc"]["as run"] == model.history_[-1]["metrics"]["acc"] == measured["run_acc"]
    assert set(measured["weights"]) == {"as run", "lr=4e-5"}
    ctx = model.context_
    own = ctx.representation(2).z
    replayed = module.retrain(ctx, cfg, 2)
    assert np.allclose(ctx.representation(2, embedder=replayed).z, own, atol=1e-5)
    harder = module.retrain(ctx, cfg.replace(contrastive_learning_rate=4e-5), 2)
    assert not np.allclose(ctx.representation(2, embedder=harder).z, own, atol=1e-3)
    # one-per-previous-cluster replays cluster round 1 afresh from the embedder they hold: with the run's own
    # round-1 embedder that is the clustering the run reported
    assert ctx.previous_clusters(2, embedder=ctx.embedder(1)).tolist() == ctx.previous_clusters(2).tolist()


def test_report_sets_each_setting_beside_the_base_and_the_runs_own_training_per_group():
    module = _script()
    settings = ["as run", "gist"]

    def run(base, as_run, gist, text):
        acc = {"base": base, "as run": as_run, "gist": gist, "as run · text": text, "gist · text": text - 1.0}
        return {"acc": acc, "run_acc": as_run, "kmeans_acc": 49.0, "weights": {"as run": 0.5, "gist": 0.0}}

    data = {"tier": "t", "commits": ["abc1234"], "date": "2026-12-06", "machine": "Test CPU", "seconds": 3.0,
            "run_seeds": [2], "seeds": [0, 1, 2], "kmeans_init": 10, "settings": settings,
            "groups": {"dev": ["fewrel"], "confirmation": ["mtop_domain"]},
            "results": {"fewrel": {"full (default), seed 2": run(30.0, 38.0, 36.0, 35.0)},
                        "mtop_domain": {"full (default), seed 2": run(90.0, 87.0, 89.5, 88.0)}}}
    text = module.render(data)
    assert "| mtop_domain | full (default), seed 2 | 87.0 | 49.0 | 90.0 | 87.0 | 89.5 | 88.0 | 87.0 | 0.5 / 0 |" in text
    assert "`gist`: contrastive_loss = gist" in text
    dev, confirmation = text.split("### confirmation")
    assert "- `as run`: mean +8.00; above on 1 of 1" in dev
    assert "- `gist`: mean -2.00; above on 0 of 1, more than 1.0 below on 1, lowest -2.00" in dev.split("Against `as run`")[1]
    assert "- `gist`: mean +2.50; above on 1 of 1" in confirmation.split("Against `as run`")[1]
    assert "| mtop_domain | 1 | **90.0** | 87.0 | 89.5 | 88.0 | 87.0 |" in confirmation
    assert "adoption test" not in text  # only with both settings of negatives-cpu.toml's test


def test_the_one_per_cluster_verdict_follows_the_pre_registered_clauses():
    module = _script()

    def data(*runs):
        results = {f"set{i}": {"full (default), seed 5": {"acc": {"base": base, "as run": as_run, "one-per-cluster": cand},
                                                         "run_acc": as_run, "kmeans_acc": None,
                                                         "weights": {"as run": 0.5, "one-per-cluster": 0.5}}}
                   for i, (base, as_run, cand) in enumerate(runs)}
        return {"tier": "negatives-cpu", "with_tiers": ["rounds3-cpu"], "rounds": 2, "results": results}

    # +1.0 and +0.5 over `as run`, -0.2 on the third: mean +0.43 < +0.5 fails clause 1 alone
    failing = module.adoption_test(data((50, 52, 53), (40, 41, 41.5), (30, 29, 28.8)), "one-per-cluster", "as run")
    assert failing["clauses"] == {"mean >= +0.5": False, "above on more than half": True,
                                  "lowest against base within 0.5": True}
    assert not failing["adopted"] and failing["above"] == 2 and failing["lowest"] == pytest.approx({"one-per-cluster": -1.2, "as run": -1.0})
    adopted = module.adoption_test(data((50, 52, 54), (40, 41, 42), (30, 29, 28.6)), "one-per-cluster", "as run")
    assert adopted["adopted"] and adopted["mean"] == pytest.approx(2.6 / 3)
    lower_floor = module.adoption_test(data((50, 52, 56), (40, 41, 44), (30, 29, 28.4)), "one-per-cluster", "as run")
    assert lower_floor["clauses"]["lowest against base within 0.5"] is False and not lower_floor["adopted"]
    lines = module.render_adoption(failing, "one-per-cluster", "as run")
    assert "- `one-per-cluster` minus `as run` over 3 runs: mean +0.43, above on 2 of 3" in lines
    assert "**not adopted**" in lines[-2] and "mean >= +0.5: fails" in lines[-3]


def test_the_previous_cluster_verdict_asks_level_with_the_default_and_above_the_old_batches():
    module = _script()
    candidate, reference = module.PREVIOUS

    def data(*runs):
        results = {f"set{i}": {"full (default), seed 5": {"acc": {"base": base, "as run": old, reference: default, candidate: cand},
                                                         "run_acc": old, "kmeans_acc": None,
                                                         "weights": {"as run": 0.5, reference: 0.5, candidate: 0.5}}}
                   for i, (base, old, default, cand) in enumerate(runs)}
        return {"tier": "negatives-cpu", "results": results, "settings": ["as run", reference, candidate]}

    level = module.previous_cluster_test(data((50, 50, 51, 51.2), (40, 40, 41, 40.8)))  # level, +1.0 over the old
    assert level["adopted"] and level["mean"] == pytest.approx(0.0, abs=1e-9)
    below = module.previous_cluster_test(data((50, 50, 51, 51.2), (40, 40, 41, 40.6)))
    assert list(below["clauses"].values()) == [False, True, True] and not below["adopted"]
    no_gain = module.previous_cluster_test(data((50, 50, 50.2, 50.3), (40, 40, 40.2, 40.3)))
    assert list(no_gain["clauses"].values()) == [True, False, True]
    floor = module.previous_cluster_test(data((50, 50, 52, 52.6), (40, 41, 40.5, 39.9)))  # floor -0.1 against +0.5
    assert list(floor["clauses"].values()) == [True, True, False]
    lines = module.render_adoption(level, candidate, reference, source="x", next_step="runs its confirmation")
    assert f"- verdict: **adopted**: `{candidate}` runs its confirmation" in lines
    assert f"- verdict: **not adopted**: `{candidate}` does not replace `{reference}`" in module.render_adoption(
        below, candidate, reference)


def test_the_same_steps_verdict_adds_a_floor_on_the_few_class_runs():
    module = _script()
    candidate, reference = module.SAME_STEPS

    def data(*runs):
        results = {f"set{i}": {"full (default), seed 5": {"acc": {"base": base, reference: old, candidate: cand}, "k": k,
                                                         "run_acc": old, "kmeans_acc": None,
                                                         "weights": {reference: 0.5, candidate: 0.5}}}
                   for i, (k, base, old, cand) in enumerate(runs)}
        return {"results": results}

    # +1.0 on average and above on two of three, but -0.6 on a run of 10 classes
    few_loss = module.same_steps_test(data((77, 50, 52, 54), (10, 40, 41, 40.4), (20, 30, 29, 31.2)))
    assert few_loss["clauses"]["mean >= +0.5"] and not few_loss["adopted"]
    assert [ok for name, ok in few_loss["clauses"].items() if "K < 32" in name] == [False]
    # the same loss on a run of 77 classes is the other clauses' business, not the floor's
    many_loss = module.same_steps_test(data((77, 50, 52, 54), (77, 40, 41, 40.4), (20, 30, 29, 31.2)))
    assert many_loss["adopted"]
