"""A fitted run reused: fit -> predict -> export through the command line, and the Python API
behind it (predict, transform, cluster_info, document_info) on a run with and without
interpretations."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coevo import CoEvolution
from coevo.atomic import read_jsonl
from coevo.data import demo_path, load_corpus
from tests.conftest import coevo

NEW_TEXTS = Path(__file__).parent / "data" / "new_requests.jsonl"


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    """The demo clustered on f(x) alone: the case where predict must give the fitted labels exactly."""
    out = tmp_path_factory.mktemp("fit") / "run"
    result = coevo("baseline", "demo", "-k", "10", "-o", str(out), "-q", "--show", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_predict_on_the_training_texts_gives_the_fitted_labels(text_run, tmp_path):
    out = tmp_path / "train.jsonl"
    result = coevo("predict", str(text_run), "demo", "-o", str(out), "-q", "--batch-size", "64")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "300 texts" in result.stdout
    fitted = [row["cluster"] for row in read_jsonl(text_run / "assignments.jsonl")]
    rows = read_jsonl(out)
    assert [row["cluster"] for row in rows] == fitted
    assert [row["line"] for row in rows] == list(range(1, 301))
    assert all(row["distance"] >= 0 and row["name"] for row in rows)


@pytest.mark.slow
def test_new_texts_go_where_a_person_would_put_them(text_run, tmp_path):
    """Each cluster stands for the gold class most of its training texts have; a new text is
    right when its cluster stands for its own class. The 40 texts were written for this test."""
    out = tmp_path / "new.jsonl"
    result = coevo("predict", str(text_run), str(NEW_TEXTS), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    training = read_jsonl(text_run / "assignments.jsonl")
    majority = {c: Counter(r["label"] for r in training if r["cluster"] == c).most_common(1)[0][0]
                for c in {r["cluster"] for r in training}}
    rows = read_jsonl(out)
    assert len(rows) == 40 and all("label" in row for row in rows)
    right = sum(majority[row["cluster"]] == row["label"] for row in rows)
    assert right >= 32, f"{right} of 40 new texts in their class's cluster"


@pytest.mark.slow
def test_export_writes_tables_pandas_can_read(text_run, tmp_path):
    csv = tmp_path / "docs.csv"
    result = coevo("export", str(text_run), "--format", "csv", "-o", str(csv))
    assert result.returncode == 0, result.stderr
    documents = pd.read_csv(csv)
    assert len(documents) == 300 and {"text", "cluster", "name", "label", "distance"} <= set(documents.columns)
    fitted = [row["cluster"] for row in read_jsonl(text_run / "assignments.jsonl")]
    assert documents["cluster"].tolist() == fitted

    parquet = tmp_path / "clusters.parquet"
    result = coevo("export", str(text_run), "--table", "clusters", "--format", "parquet", "-o", str(parquet))
    assert result.returncode == 0, result.stderr
    clusters = pd.read_parquet(parquet)
    assert len(clusters) == 10 and clusters["size"].sum() == 300
    assert all(len(words) > 0 for words in clusters["keywords"])

    jsonl = tmp_path / "clusters.jsonl"
    assert coevo("export", str(text_run), "--table", "clusters", "--format", "jsonl", "-o", str(jsonl)).returncode == 0
    assert len(read_jsonl(jsonl)) == 10


@pytest.mark.parametrize(
    "args, needle",
    [
        (["predict", "/no/such/run", "demo"], "/no/such/run"),
        (["export", "/no/such/run"], "/no/such/run"),
        (["export", "RUN", "--format", "xls"], "--format"),
        (["predict", "RUN", "demo", "--batch-size", "0"], "--batch-size"),
        (["predict", "RUN", "no/such/texts.jsonl"], "no/such/texts.jsonl"),
    ],
)
def test_bad_input_is_one_line(args, needle, text_run, tmp_path):
    args = [str(text_run) if a == "RUN" else a for a in args]
    result = coevo(*args, "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("coevo: error:") and needle in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_existing_file_is_not_overwritten_unless_asked(text_run, tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("precious\n")
    result = coevo("export", str(text_run), "-o", str(mine))
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert mine.read_text() == "precious\n"
    source = tmp_path / "texts.jsonl"
    source.write_text('{"text": "my card is gone"}\n')
    result = coevo("predict", str(text_run), str(source), "-o", str(source), "--overwrite")
    assert result.returncode == 2 and "input" in result.stderr
    assert source.read_text() == '{"text": "my card is gone"}\n'
    assert coevo("export", str(text_run), "-o", str(mine), "--overwrite").returncode == 0
    assert len(pd.read_csv(mine)) == 300


@pytest.mark.slow
def test_predict_with_interpretations_is_deterministic_and_gives_the_fitted_labels(full_run):
    model = CoEvolution.load(full_run)
    texts = [row["text"] for row in read_jsonl(full_run / "assignments.jsonl")]
    labels = model.predict(texts)
    assert labels.tolist() == model.labels_.tolist()
    again = CoEvolution.load(full_run).predict(texts[:7])
    assert again.tolist() == CoEvolution.load(full_run).predict(texts[:7]).tolist()
    z = model.transform(texts[:3])
    assert z.shape[0] == 3 and np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_document_and_cluster_tables_of_an_interpretation_run(full_run):
    model = CoEvolution.load(full_run)
    documents = model.document_info()
    counts = documents["interpretations"].map(len)
    assert len(documents) == 40 and counts.max() <= 2 and (counts > 0).mean() >= 0.9  # M = 2; blank answers dropped
    clusters = model.cluster_info()
    assert clusters["size"].sum() == 40 and clusters["name"].map(bool).all()
    assert json.loads((full_run / "config.json").read_text())["method"] == "full"


def test_fit_predict_returns_the_fitted_labels(tmp_path):
    from coevo import CoEvoConfig

    corpus = load_corpus(str(demo_path()))
    config = CoEvoConfig(n_clusters=10, method="kmeans", kmeans_init=2)
    model = CoEvolution(config, run_dir=tmp_path / "run", progress=False)
    labels = model.fit_predict(corpus.texts[:60])
    assert labels.tolist() == model.labels_.tolist() and len(set(labels.tolist())) == 10


@pytest.mark.slow
def test_a_cut_short_embedder_is_one_line_and_resume_redoes_it(full_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    weights = run / "round2" / "embedder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = coevo("predict", str(run), str(NEW_TEXTS), "-o", str(tmp_path / "p.jsonl"), "-q")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "model.safetensors" in result.stderr and "cut short" in result.stderr and "--resume" in result.stderr
    result = coevo("run", "--resume", str(run), "-q", "--show", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "redoing round2/contrastive" in result.stderr
    assert coevo("predict", str(run), str(NEW_TEXTS), "-o", str(tmp_path / "p.jsonl"), "-q").returncode == 0


@pytest.mark.slow
def test_a_run_made_before_centres_were_stored_still_predicts(text_run, tmp_path):
    """Older run folders have no centroids.npy/distances.npy: predict and the document table
    recompute them from the final representation (each cluster's mean)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(text_run, run)
    for name in ("centroids.npy", "distances.npy"):
        (run / "round1" / name).unlink()
    model = CoEvolution.load(run)
    texts = [row["text"] for row in read_jsonl(run / "assignments.jsonl")]
    agree = (model.predict(texts) == model.labels_).mean()
    assert agree >= 0.95, f"{agree:.0%} of the training texts kept their cluster"
    distances = model.document_info()["distance"]
    assert len(distances) == 300 and (distances >= 0).all()


def _clustered_again(full_run: Path, tmp_path: Path, represent: str) -> tuple[CoEvolution, Path, int, dict]:
    """A copy of the shared run whose final cluster step ran again under ``represent``, loaded anew,
    with that step's cluster.json. The old cluster.json goes first: a weight chosen per run is
    otherwise read back from it, as recluster and predict do."""
    import shutil

    from coevo.steps import Cluster

    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "represent": represent}))
    last = CoEvolution.load(run).config.effective_rounds
    (run / f"round{last}" / "cluster.json").unlink()
    Cluster().run(CoEvolution.load(run).context_, last)
    return CoEvolution.load(run), run, last, json.loads((run / f"round{last}" / "cluster.json").read_text())


@pytest.mark.slow
def test_agreement_weights_are_recorded_and_rebuilt_for_new_texts(full_run, tmp_path):
    """``represent agreement``: the cluster step records the fitted texts' mean agreement, and predict
    weighs texts against it, so the training texts predicted again get the representation they were
    clustered on."""
    model, run, last, info = _clustered_again(full_run, tmp_path, "agreement")
    assert 0 < info["mean_agreement"] <= 1 and info["interp_weight"] == model.config.interp_weight
    fitted = model.context_.representation(last).z
    fixed = model.context_.representation(last, "text+interp").z
    assert not np.allclose(fitted, fixed, atol=1e-3)  # the per-text weights changed the representation
    rows = read_jsonl(run / f"round{last}" / "assignments.jsonl")  # the run's top-level copy is of the old step
    texts = [row["text"] for row in rows]
    assert np.allclose(model.transform(texts), fitted, atol=1e-4)
    assert model.predict(texts).tolist() == [row["cluster"] for row in rows]


@pytest.mark.slow
def test_gate_weight_is_recorded_and_reused_by_predict(full_run, tmp_path):
    """``represent gate``: the cluster step records the weight its stability test chose and both
    stabilities, and predict rebuilds the representation with that weight rather than testing again."""
    model, run, last, info = _clustered_again(full_run, tmp_path, "gate")
    assert info["interp_weight"] in (0.0, model.config.interp_weight)
    assert 0 <= info["gate"]["text_stability"] <= 1 and 0 <= info["gate"]["joined_stability"] <= 1
    rows = read_jsonl(run / f"round{last}" / "assignments.jsonl")
    assert model.predict([row["text"] for row in rows]).tolist() == [row["cluster"] for row in rows]
