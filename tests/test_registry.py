"""Swappable stages: a user's own density scorer, registered by name, runs a real round and is named in
config.json like the built-ins."""

from __future__ import annotations

import numpy as np
import pytest

from coevo import CoEvoConfig, CoEvolution
from coevo.atomic import read_json, read_jsonl
from coevo.errors import CoevoError
from coevo.registry import DENSITY_SCORERS, Registry
from tests.conftest import TEST_LLM


class ShortestFirst:
    """A toy scorer: earlier interpretations score higher, whatever they say."""

    calls = 0

    def score(self, interp, owner, text_cluster, n_clusters):
        ShortestFirst.calls += 1
        return -np.arange(len(interp), dtype=np.float32)


@pytest.fixture()
def toy_density():
    DENSITY_SCORERS.register("toy", lambda config: ShortestFirst())
    yield "toy"
    DENSITY_SCORERS._factories.pop("toy", None)


def test_unknown_names_are_one_line_errors_that_list_the_known_ones():
    with pytest.raises(CoevoError, match=r"option --density: 'nope' is not one of posterior, knn, kde"):
        CoEvoConfig(n_clusters=3, density="nope")
    registry = Registry("thing", "thing")
    registry.register("a", lambda config: 1)
    assert registry.names() == ("a",) and registry.create("a", None) == 1
    with pytest.raises(CoevoError, match="option --thing: 'b'"):
        registry.create("b", None)


def test_a_bad_scorer_is_stopped_with_its_name(toy_density):
    from coevo.density import density_scores

    DENSITY_SCORERS.register("toy", lambda config: type("Bad", (), {"score": lambda *a: np.zeros(2)})())
    with pytest.raises(CoevoError, match="density scorer 'toy': expected 5 finite scores"):
        density_scores(CoEvoConfig(n_clusters=2, density="toy"), np.ones((5, 3)), np.arange(5), np.zeros(5, int), 2)


@pytest.mark.slow
def test_a_registered_density_scorer_runs_a_round(toy_density, demo_corpus, tmp_path):
    texts, labels = demo_corpus.texts[:12], demo_corpus.labels[:12]
    config = CoEvoConfig(n_clusters=3, method="no-dpo", rounds=1, llm=TEST_LLM, samples=2, max_new_tokens=8,
                         kmeans_init=2, density=toy_density)
    ShortestFirst.calls = 0
    model = CoEvolution(config, run_dir=tmp_path / "run", progress=False).fit(texts, labels)
    assert ShortestFirst.calls == 1 and len(model.labels_) == 12
    assert read_json(tmp_path / "run" / "config.json")["density"] == "toy"
    scores = [s for row in read_jsonl(tmp_path / "run" / "round1" / "scores.jsonl") for s in row["scores"]]
    assert scores == [-float(i) for i in range(len(scores))]  # the toy's scores, in the run's records


class RoundRobin:
    """A toy clusterer: text i goes to cluster i mod K, whatever it says."""

    def fit(self, x, n_clusters, *, seed):
        from coevo.clustering import KMeansResult, normalize

        labels = np.arange(len(x)) % n_clusters
        centers = np.stack([x[labels == c].mean(axis=0) for c in range(n_clusters)])
        return KMeansResult(labels=labels, centroids=normalize(centers), inertia=0.0, backend="round-robin",
                            centers=centers.astype(np.float32))


def test_a_registered_clusterer_makes_the_clusters_and_predict_uses_its_centres(demo_corpus, tmp_path):
    from coevo.registry import CLUSTERERS

    CLUSTERERS.register("round-robin", lambda config: RoundRobin())
    try:
        texts = demo_corpus.texts[:20]
        config = CoEvoConfig(n_clusters=4, method="kmeans", clusterer="round-robin")
        model = CoEvolution(config, run_dir=tmp_path / "run", progress=False).fit(texts)
        assert model.labels_.tolist() == [i % 4 for i in range(20)]
        assert read_json(tmp_path / "run" / "round1" / "cluster.json")["kmeans_backend"] == "round-robin"
        assert len(CoEvolution.load(tmp_path / "run").predict(texts[:3])) == 3
    finally:
        CLUSTERERS._factories.pop("round-robin", None)
    with pytest.raises(CoevoError, match="option --clusterer: 'round-robin' is not one of kmeans"):
        CoEvoConfig(n_clusters=4, clusterer="round-robin")


class EchoDecoder:
    """A toy decoder: answers name the prompt's length and the sample, whatever the prompt says."""

    def __init__(self, llm, adapter_dir, *, cache_dir, device, dtype, trust_remote_code):
        from coevo import models

        self.tokenizer = models.load_tokenizer(llm, cache_dir=cache_dir, trust_remote_code=trust_remote_code)
        self.calls = 0

    def decode(self, prompts, sampling, seed):
        self.calls += 1
        return [[f"prompt of {len(p)} characters sample {j}" for j in range(sampling.samples)] for p in prompts], 7


def test_a_registered_decoder_writes_the_interpretations(tmp_path):
    from coevo.generation import Interpreter, SamplingConfig
    from coevo.registry import DECODERS

    DECODERS.register("echo", EchoDecoder)
    try:
        CoEvoConfig(n_clusters=3, generation_backend="echo")  # a registered name is a valid setting
        it = Interpreter(TEST_LLM, backend="echo")
        it.cache_root = tmp_path / "generations"
        answers = it.interpret(["card lost", "refund please"], "intent", sampling=SamplingConfig(samples=3),
                               progress=False)
        assert [len(a) for a in answers] == [3, 3] and answers[0][2].endswith("sample 2")
        assert it.backend == "echo" and it.decoder.calls == 1
    finally:
        DECODERS._factories.pop("echo", None)
    with pytest.raises(CoevoError, match="option --generation-backend: 'echo' is not one of torch, vllm"):
        CoEvoConfig(n_clusters=3, generation_backend="echo")
