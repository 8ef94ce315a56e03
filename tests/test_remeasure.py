"""coevo.bench.remeasure: the run walk that bench/rounds.py and bench/contrastive.py share."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from coevo.bench import remeasure


def _args(runs, **changes) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    remeasure.add_run_arguments(parser)
    args = parser.parse_args(["--tier", "no-such-1.5b-tier", "--runs", str(runs), "--run-seeds", "2", "3"])
    for key, value in changes.items():
        setattr(args, key, value)
    return args


def test_a_run_is_measured_again_only_when_its_summary_or_the_settings_change(tmp_path, monkeypatch):
    monkeypatch.setattr(remeasure, "results_dir", lambda: tmp_path / "results")
    for dataset, seed in (("fewrel", 2), ("fewrel", 3), ("mtop_domain", 2)):
        run = tmp_path / "out" / "no-such-1.5b-tier" / "default" / dataset / f"full-seed{seed}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"seed": seed}))
    unfinished = tmp_path / "out" / "no-such-1.5b-tier" / "default" / "goemo" / "full-seed2"
    unfinished.mkdir(parents=True)  # no summary: not finished, not measured
    measured = []

    def measure(run):
        measured.append((run.parent.name, run.name))
        return {"seconds": 1.0, "acc": {"base": 1.0}}

    def again(context=None, **changes):
        measured.clear()
        remeasure.remeasure_runs("test", "walk", _args(tmp_path / "out", **changes), settings={"columns": ["base"]},
                                 measure=measure, render=lambda data: json.dumps(sorted(data["results"])),
                                 describe=lambda r: r["acc"], context=context)
        return sorted(measured)

    assert again() == [("fewrel", "full-seed2"), ("fewrel", "full-seed3"), ("mtop_domain", "full-seed2")]
    data = json.loads((tmp_path / "results" / "walk-no-such-1.5b-tier.json").read_text())
    assert data["seeds"] == [0, 1, 2] and data["columns"] == ["base"] and data["seconds"] == 3.0
    assert set(data["results"]["fewrel"]) == {"full (default), seed 2", "full (default), seed 3"}
    assert {name: r["run_seed"] for name, r in data["results"]["fewrel"].items()} == {"full (default), seed 2": 2,
                                                                                       "full (default), seed 3": 3}
    assert again() == []
    assert again(context={"beside": {"tier": "cpu"}}) == []  # written for the report, no reason to measure again
    data = json.loads((tmp_path / "results" / "walk-no-such-1.5b-tier.json").read_text())
    assert data["beside"] == {"tier": "cpu"} and data["seconds"] == 3.0
    (tmp_path / "out" / "no-such-1.5b-tier" / "default" / "fewrel" / "full-seed3" / "summary.json").write_text("{}")
    assert again() == [("fewrel", "full-seed3")]
    assert again(seeds=[5]) == [("fewrel", "full-seed2"), ("fewrel", "full-seed3"), ("mtop_domain", "full-seed2")]
    # --only measures one dataset again and keeps the file's rows of the others
    (tmp_path / "out" / "no-such-1.5b-tier" / "default" / "mtop_domain" / "full-seed2" / "summary.json").write_text("{}")
    assert again(seeds=[5], only=["mtop_domain"]) == [("mtop_domain", "full-seed2")]
    data = json.loads((tmp_path / "results" / "walk-no-such-1.5b-tier.json").read_text())
    assert set(data["results"]) == {"fewrel", "mtop_domain"}


def test_runs_of_other_tiers_join_the_file_named_by_their_tier_beside_their_own_kmeans(tmp_path, monkeypatch):
    monkeypatch.setattr(remeasure, "results_dir", lambda: tmp_path / "results")
    monkeypatch.setattr(remeasure, "kmeans_acc", lambda tier: {("fewrel", 2): 30.0} if tier == "other" else {})
    for tier, dataset in (("no-such-1.5b-tier", "goemo"), ("other", "fewrel")):
        run = tmp_path / "out" / tier / "default" / dataset / "full-seed2"
        run.mkdir(parents=True)
        (run / "summary.json").write_text("{}")
    remeasure.remeasure_runs("test", "walk", _args(tmp_path / "out", with_tiers=["other"]), settings={},
                             measure=lambda run: {"seconds": 1.0}, render=lambda data: "", describe=lambda r: None)
    data = json.loads((tmp_path / "results" / "walk-no-such-1.5b-tier.json").read_text())
    assert data["with_tiers"] == ["other"]
    assert list(data["results"]["goemo"]) == ["full (default), seed 2"]
    assert data["results"]["fewrel"]["full (default, tier other), seed 2"]["kmeans_acc"] == 30.0
    with pytest.raises(SystemExit, match="no runs under .*missing; run `coevo bench bench/configs/missing.toml"):
        remeasure.remeasure_runs("test", "walk", _args(tmp_path / "out", with_tiers=["missing"]), settings={},
                                 measure=None, render=None, describe=None)


def test_missing_runs_and_unreadable_groups_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="no runs under .*no-such-1.5b-tier; run `coevo bench"):
        remeasure.remeasure_runs("test", "walk", _args(tmp_path), settings={}, measure=None, render=None, describe=None)
    (tmp_path / "cfg.toml").write_text("datasets = []\n")
    with pytest.raises(SystemExit, match="option --groups: .*cfg.toml has no \\[groups\\] table"):
        remeasure.read_groups(tmp_path / "cfg.toml", "test")


def test_a_run_whose_folder_is_gone_keeps_its_row_while_its_seed_is_asked_for(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(remeasure, "results_dir", lambda: tmp_path / "results")
    runs = tmp_path / "out" / "no-such-1.5b-tier" / "default"
    for dataset, seed in (("goemo", 2), ("goemo", 3), ("fewrel", 2)):
        (runs / dataset / f"full-seed{seed}").mkdir(parents=True)
        (runs / dataset / f"full-seed{seed}" / "summary.json").write_text(json.dumps({"seed": seed}))
    measured = []

    def again(**changes):
        measured.clear()
        remeasure.remeasure_runs("test", "walk", _args(tmp_path / "out", **changes), settings={},
                                 measure=lambda run: measured.append(run.name) or {"seconds": 1.0},
                                 render=lambda data: "", describe=lambda r: "")
        return json.loads((tmp_path / "results" / "walk-no-such-1.5b-tier.json").read_text())["results"]

    again()
    shutil.rmtree(runs / "goemo" / "full-seed2")  # another machine: the seed-2 folder is not there
    (runs / "goemo" / "full-seed3" / "summary.json").write_text("{}")  # seed 3 ran again
    results = again()
    assert measured == ["full-seed3"] and set(results) == {"goemo", "fewrel"}
    assert [r["run_seed"] for r in results["goemo"].values()] == [2, 3]
    assert "goemo full (default), seed 2: no run folder under" in capsys.readouterr().err
    assert set(again(only=["goemo"])["goemo"]) == {"full (default), seed 2", "full (default), seed 3"}
    # a seed not asked for is not kept: the file holds what --run-seeds names
    results = again(run_seeds=[3])
    assert set(results) == {"goemo"} and [r["run_seed"] for r in results["goemo"].values()] == [3]
