"""Shared test settings: never touch the network; tiny real models; one model cache per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEST_LLM = "smollm2-135m-instruct"
TEST_EMBEDDER = "all-MiniLM-L6-v2"
SMALL = ["--sample", "40", "-k", "10", "--llm", TEST_LLM, "--rounds", "2", "--samples", "2", "--max-pairs", "4"]
"""A two-round `full` run of the demo small enough for a test."""


def coevo(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """The command line in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "coevo.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> Path:
    """One finished SMALL run shared by the tests that only read it (resume, recluster, predict)."""
    out = tmp_path_factory.mktemp("full") / "run"
    result = coevo("run", "demo", *SMALL, "-o", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    (out / "stdout.txt").write_text(result.stdout)
    return out


@pytest.fixture(scope="session")
def demo_corpus():
    from coevo.data import demo_path, load_corpus, stratified_sample

    return stratified_sample(load_corpus(str(demo_path())), 40, seed=0)


@pytest.fixture(scope="session")
def model_cache() -> str:
    """The ordinary model cache ($COEVO_CACHE or ~/.cache/coevo), so CI builds smollm2 once."""
    from coevo.models import cache_root

    return str(cache_root())
