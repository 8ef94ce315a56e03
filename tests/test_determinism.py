"""Same seed, same clusters: two runs that share nothing but their settings end byte-identical."""

import pytest

from coevo import CoEvoConfig, CoEvolution
from coevo.atomic import read_json
from coevo.data import demo_path, load_corpus, stratified_sample
from tests.conftest import TEST_LLM

pytestmark = pytest.mark.slow


def test_two_runs_from_empty_caches_write_the_same_files(tmp_path):
    """Each run converts the LLM into its own cache folder, so PEFT records a different base
    model path in each round-1 adapter; round 2 generates with that adapter, which is where
    the answers used to part (issue 20). About half of the test's time is the two conversions
    of the LLM, which the empty caches require; the rest is kept small."""
    corpus = stratified_sample(load_corpus(str(demo_path())), 16, seed=0)
    runs = []
    for name in ("a", "b"):
        config = CoEvoConfig(n_clusters=4, llm=TEST_LLM, rounds=2, samples=2, max_new_tokens=10, max_pairs=2,
                             kmeans_init=1, generation_backend="torch", cache_dir=str(tmp_path / f"cache-{name}"))
        CoEvolution(config, run_dir=tmp_path / f"run-{name}", progress=False).fit(corpus.texts, corpus.labels)
        runs.append(tmp_path / f"run-{name}")
    a, b = runs
    adapter = "round1/adapter/adapter_config.json"
    assert "cache-a" in (a / adapter).read_text() and "cache-b" in (b / adapter).read_text()
    for name in ("round1/adapter/adapter_model.safetensors", "round2/interpretations.jsonl", "assignments.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    names = [[entry["name"] for entry in read_json(run / "round2" / "names.json")["clusters"]] for run in runs]
    assert names[0] == names[1]
