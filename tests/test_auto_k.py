"""-k auto: K chosen without labels on the base embedder's f(x), once, recorded, and kept by --resume."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from coevo import CoEvoConfig, CoEvolution
from coevo.atomic import read_json
from coevo.clustering import choose_n_clusters, n_clusters_grid
from coevo.config import parse_n_clusters
from coevo.errors import CoevoError
from tests.conftest import coevo
from tests.crash import _cli, kill_at, kill_points

AUTO = ["-k", "auto", "--method", "kmeans", "--sample", "100", "--kmeans-init", "2"]
"""A run of the demo that chooses K: the base embedder and KMeans only, so it takes seconds."""


def test_the_rule_finds_well_separated_blobs_and_repeats_itself():
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(n_samples=300, centers=6, n_features=16, cluster_std=1.0, random_state=0)
    assert 6 in n_clusters_grid(len(x))
    choice = choose_n_clusters(x, seed=0)
    assert choice["k"] == 6 and choice["criterion"] == "silhouette" and choice["texts"] == 300
    ks = [k for k, _ in choice["curve"]]
    assert ks == sorted(ks) and choice["range"] == [ks[0], ks[-1]] == [2, 60]
    assert max(choice["curve"], key=lambda point: point[1])[0] == 6
    assert choose_n_clusters(x, seed=0) == choice  # the same seed, the same curve to the last digit


def test_tiny_inputs_have_one_possible_k_and_identical_texts_none():
    assert choose_n_clusters(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), seed=0)["k"] == 2
    with pytest.raises(CoevoError, match="fewer than 2 distinct texts"):
        choose_n_clusters(np.ones((5, 3)), seed=0)


def test_k_is_auto_or_a_whole_number_of_at_least_2():
    config = CoEvoConfig(n_clusters="auto")
    assert config.auto_k and CoEvoConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert CoEvoConfig(n_clusters=np.int64(7)).to_dict()["n_clusters"] == 7  # stored as a JSON int
    for bad in (1, 0, "abc", 2.5, True, "12"):
        with pytest.raises(CoevoError, match=r"^option -k/--clusters: ") as error:
            CoEvoConfig(n_clusters=bad)
        assert "\n" not in str(error.value)
    assert parse_n_clusters("AUTO") == "auto" and parse_n_clusters(" 12 ") == 12
    for bad in ("abc", "1", "2.5", ""):
        with pytest.raises(CoevoError, match=r"^option -k/--clusters: "):
            parse_n_clusters(bad)


@pytest.mark.parametrize("command", ["run", "baseline"])
def test_a_bad_k_stops_with_one_line(command):
    result = coevo(command, "demo", "-k", "abc", "--method" if command == "run" else "--seed", "kmeans" if command == "run" else "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "option -k/--clusters" in result.stderr and "'abc'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_records_and_prints_k_and_a_resume_keeps_it(tmp_path):
    whole = tmp_path / "whole"
    result = coevo("run", "demo", *AUTO, "-o", str(whole), "--show", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = read_json(whole / "summary.json")
    choice = summary["auto_k"]
    assert choice == read_json(whole / "auto_k.json")
    assert summary["n_clusters"] == choice["k"] and len(summary["clusters"]) == choice["k"]
    assert 2 <= choice["k"] <= 20 and choice["range"] == [2, 20]  # 100 texts: K up to 100 / 5
    assert re.search(rf"^K = {choice['k']}, chosen without labels: silhouette over K = 2\.\.20", result.stdout, re.M)
    assert read_json(whole / "state.json")["done"] == ["auto_k", "round1/cluster"]

    # killed once the choice is written but not recorded, then once it is recorded: the resumed run ends
    # with the clusters of the run never interrupted, and the recorded K is read back, not chosen again
    config = CoEvoConfig.from_dict(read_json(whole / "config.json"))
    assert kill_points(config) == ["auto_k", "round1/cluster"]
    run_dir = tmp_path / "killed"
    first = kill_at(_cli("run", "demo", *AUTO, "-o", str(run_dir)), "auto_k", run_dir, timeout=600)
    assert first.paused and first.recorded_before == []
    second = kill_at(_cli("run", "--resume", str(run_dir)), "round1/cluster", run_dir, timeout=600)
    assert second.paused and second.recorded_before == ["auto_k"]
    chosen = (run_dir / "auto_k.json").stat().st_mtime_ns
    final = subprocess.run(_cli("run", "--resume", str(run_dir), "--show", "0"), capture_output=True, text=True,
                           timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "chosen without labels (" not in final.stderr  # the step's own log line: it did not run again
    assert (run_dir / "auto_k.json").stat().st_mtime_ns == chosen
    assert f"K = {choice['k']}, chosen without labels" in final.stdout
    for name in ("auto_k.json", "assignments.jsonl"):
        assert (run_dir / name).read_bytes() == (whole / name).read_bytes(), name


@pytest.mark.slow
def test_python_api_load_report_and_a_damaged_choice(demo_corpus, tmp_path):
    from coevo.report_html import build_report
    from tests.test_report import plots_in

    run_dir = tmp_path / "run"
    model = CoEvolution(CoEvoConfig(n_clusters="auto", method="kmeans", kmeans_init=2), run_dir=run_dir,
                        progress=False).fit(demo_corpus.texts, demo_corpus.labels)
    k = model.summary_["auto_k"]["k"]
    assert model.n_clusters_ == k == len(set(model.labels_.tolist())) and model.summary_["n_clusters"] == k
    assert CoEvolution.load(run_dir).n_clusters_ == k
    assert len(set(model.recluster([1])[0]["labels"])) == k
    page = build_report(model).read_text(encoding="utf-8")
    assert plots_in(page) == ["map", "sizes", "auto_k", "metrics"] and f"chosen K = {k}" in page

    (run_dir / "auto_k.json").write_text('{"k": 1', encoding="utf-8")
    warnings: list[str] = []
    again = CoEvolution.resume(run_dir, progress=False, log=warnings.append)
    assert any("auto_k.json" in w and "redoing auto_k and the steps after it" in w for w in warnings), warnings
    assert again.n_clusters_ == k and (again.labels_ == model.labels_).all()


def test_help_says_k_may_be_auto():
    for command in ("run", "baseline"):
        out = subprocess.run([sys.executable, "-m", "coevo.cli", command, "--help"], capture_output=True, text=True,
                             env={**os.environ, "COLUMNS": "250"}).stdout
        assert "K|auto" in out and "'auto': chosen once without labels" in out
