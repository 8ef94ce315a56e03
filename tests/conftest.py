"""Shared test settings: never touch the network; tiny real models; one model cache per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEST_LLM = "smollm2-135m-instruct"
TEST_EMBEDDER = "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def demo_corpus():
    from coevo.data import demo_path, load_corpus, stratified_sample

    return stratified_sample(load_corpus(str(demo_path())), 40, seed=0)


@pytest.fixture(scope="session")
def model_cache() -> str:
    """The ordinary model cache ($COEVO_CACHE or ~/.cache/coevo), so CI builds smollm2 once."""
    from coevo.models import cache_root

    return str(cache_root())
