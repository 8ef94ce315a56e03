"""The command line end to end, offline, on the bundled demo data and the tiny packaged models."""

from __future__ import annotations

import json

import pytest

from coevo import CoEvoConfig, CoEvolution
from coevo.atomic import read_jsonl
from coevo.errors import CoevoError
from tests.conftest import TEST_LLM, coevo

@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "no/such/file.jsonl", "-k", "3"], "no/such/file.jsonl"),
        (["run", "demo"], "-k/--clusters"),
        (["run", "demo", "-k", "1000"], "-k/--clusters"),
        (["run", "demo", "-k", "5", "--method", "magic"], "--method"),
        (["run", "demo", "-k", "5", "--density", "magic"], "--density"),
        (["run", "demo", "-k", "5", "--keep-fraction", "2"], "--keep-fraction"),
        (["baseline", "demo", "-k", "5", "--kmeans-init", "0"], "--kmeans-init"),
        (["baseline", "demo", "-k", "5", "--show", "-1"], "--show"),
        (["run", "demo", "-k", "5", "--show", "-1"], "--show"),
        (["baseline", "demo", "-k", "5", "--embedder", "nobody/no-such-model-xyz"], "nobody/no-such-model-xyz"),
        (["run", "--resume", "/no/such/run"], "--resume"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path):
    result = coevo(*args, "-o", str(tmp_path / "out")) if args[0] != "run" or "--resume" not in args else coevo(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "Warning" not in line and "warn" not in line]
    assert len(lines) == 1 and lines[0].startswith("coevo: error:") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_file_line_is_named(tmp_path):
    bad = tmp_path / "texts.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "oops"}\n', encoding="utf-8")
    result = coevo("baseline", str(bad), "-k", "2")
    assert result.returncode == 2
    assert "texts.jsonl" in result.stderr and "line 2" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_baseline_on_demo(tmp_path):
    result = coevo("baseline", "demo", "-k", "10", "-o", str(tmp_path / "b"), "-q")
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "b" / "assignments.jsonl")
    assert len(rows) == 300 and {"text", "cluster", "label"} <= set(rows[0])
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert 50 < summary["metrics"]["acc"] <= 100  # the demo classes are clearly different
    assert "cluster" in result.stdout and "ACC" in result.stdout


@pytest.mark.slow
def test_full_run_end_to_end(full_run):
    summary = json.loads((full_run / "summary.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    assert summary["rounds"][0]["dpo"]["pairs"] >= 1
    assert (full_run / "round1" / "adapter" / "adapter_config.json").exists()
    assert not (full_run / "round2" / "adapter").exists()  # the last round's adapter would never be used
    for r in (1, 2):
        assert (full_run / f"round{r}" / "embedder").is_dir()
        assert read_jsonl(full_run / f"round{r}" / "pairs.jsonl")
        guards = summary["rounds"][r - 1]["guards"]
        assert set(guards) >= {"distinct_share", "mean_words", "copy_rate", "leak_rate"}
        # the weight this round's clustering gave the interpretations, as its cluster step chose it
        chosen = json.loads((full_run / f"round{r}" / "cluster.json").read_text())["interp_weight"]
        assert summary["rounds"][r - 1]["interp_weight"] == chosen
    peaks = summary["rounds"][0]["peak_rss_mb_by_step"]  # each step's own peak, so the hungry step is named
    assert set(peaks) == {"generate", "select", "dpo", "contrastive", "cluster"} and all(v > 0 for v in peaks.values())
    assert set(summary["rounds"][1]["peak_rss_mb_by_step"]) == {"generate", "select", "contrastive", "cluster"}
    assert summary["peak_rss_mb"] >= max(peaks.values())
    assert len(read_jsonl(full_run / "assignments.jsonl")) == 40
    stdout = (full_run / "stdout.txt").read_text()
    assert "clusters (largest first)" in stdout and "round  ACC" in stdout


@pytest.mark.slow
def test_resume_of_a_finished_run_reports_it_and_show_0_leaves_out_the_clusters(full_run):
    result = coevo("run", "--resume", str(full_run), "--show", "0", "-q")
    assert result.returncode == 0, result.stderr
    assert "round  ACC" in result.stdout
    assert "clusters (largest first)" not in result.stdout and "cluster " not in result.stdout


@pytest.mark.slow
def test_resume_after_interruption_gives_the_same_clusters(full_run, tmp_path, monkeypatch):
    from coevo.cli import _load

    config = CoEvoConfig.from_dict(json.loads((full_run / "config.json").read_text()))
    corpus = _load("demo", "text", "label", None, 40, 0)
    from coevo.steps import Contrastive

    original = Contrastive.run

    def crash_in_round_2(self, ctx, r):
        if r == 2:
            raise KeyboardInterrupt
        return original(self, ctx, r)

    monkeypatch.setattr(Contrastive, "run", crash_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        CoEvolution(config, run_dir=tmp_path / "run", progress=False).fit(corpus.texts, corpus.labels)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert "round2/select" in state["done"] and "round2/contrastive" not in state["done"]
    monkeypatch.setattr(Contrastive, "run", original)

    result = coevo("run", "--resume", str(tmp_path / "run"), "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = [r["cluster"] for r in read_jsonl(tmp_path / "run" / "assignments.jsonl")]
    assert resumed == [r["cluster"] for r in read_jsonl(full_run / "assignments.jsonl")]


@pytest.mark.slow
def test_recluster_reproduces_the_run_and_can_leave_out_the_interpretations(full_run):
    model = CoEvolution.load(full_run)
    same, = model.recluster([model.config.seed])
    assert same["labels"] == model.labels_.tolist()  # the run's own KMeans, repeated
    text_only, = model.recluster([model.config.seed], represent="text")
    assert len(text_only["labels"]) == len(model.labels_) and 0 < text_only["metrics"]["acc"] <= 100
    with pytest.raises(CoevoError, match="represent"):
        model.recluster([0], represent="interp")


@pytest.mark.slow
def test_stop_after_round_then_resume_gives_the_same_clusters_even_after_the_folder_moved(full_run, tmp_path):
    """state.json names round 1's adapter relative to the run folder, so a folder moved between
    rounds trains and generates round 2 with its own adapter (its old path no longer exists)."""
    from coevo.cli import _load

    config = CoEvoConfig.from_dict(json.loads((full_run / "config.json").read_text()))
    corpus = _load("demo", "text", "label", None, 40, 0)
    CoEvolution(config, run_dir=tmp_path / "run", progress=False).fit(corpus.texts, corpus.labels, stop_after_round=1)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert "round1/cluster" in state["done"] and not any(step.startswith("round2/") for step in state["done"])
    assert not (tmp_path / "run" / "summary.json").exists()
    assert state["adapter"] == "round1/adapter" and state["adapter_history"] == ["round1/adapter"]

    moved = (tmp_path / "run").rename(tmp_path / "moved")
    model = CoEvolution.resume(moved, progress=False)
    assert model.labels_.tolist() == [r["cluster"] for r in read_jsonl(full_run / "assignments.jsonl")]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["kmeans", "expand", "contrastive-only", "random-select", "no-dpo"])
def test_every_ablation_runs(method, tmp_path, demo_corpus):
    config = CoEvoConfig(n_clusters=10, method=method, llm=TEST_LLM, rounds=2, samples=2, max_pairs=4)
    model = CoEvolution(config, run_dir=tmp_path / method, progress=False).fit(demo_corpus.texts, demo_corpus.labels)
    assert len(model.labels_) == 40 and model.summary_["metrics"]["acc"] > 0
    trained_llm = (tmp_path / method / "round1" / "adapter").exists()
    trained_embedder = (tmp_path / method / "round1" / "embedder").exists()
    assert trained_llm == (method == "random-select")
    assert trained_embedder == (method in ("contrastive-only", "random-select", "no-dpo"))
    assert len(model.history_) == (1 if method in ("kmeans", "expand") else 2)
    # every method with interpretations reports what they give alone (kmeans has none)
    assert all((row.get("interp_only") is not None) == (method != "kmeans") for row in model.history_)


def test_a_config_file_gives_the_settings_and_options_on_the_command_line_override_it(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"n_clusters": 4, "method": "expand", "kmeans_init": 2}))
    small = ["--sample", "40", "-q", "--show", "0"]
    result = coevo("run", "demo", "--config", str(settings), "--method", "kmeans", "-o", str(tmp_path / "run"), *small)
    assert result.returncode == 0, result.stderr[-3000:]
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (stored["method"], stored["n_clusters"], stored["kmeans_init"]) == ("kmeans", 4, 2)
    # a run folder's own config.json runs the same run again
    result = coevo("run", "demo", "--config", str(tmp_path / "run" / "config.json"), "-o", str(tmp_path / "again"), *small)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "again" / "assignments.jsonl").read_bytes() == (tmp_path / "run" / "assignments.jsonl").read_bytes()
