"""A huge text is cut to a token budget before the LLM and the embedder see it, and said so once.

Uncut, one 5 MB line made the LLM's prefill ask for 24 GB and lost the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from coevo import models
from coevo.clustering import clip_for_embedder
from coevo.prompts import CHARS_PER_TOKEN, MAX_TEXT_TOKENS, cut_texts
from tests.conftest import TEST_LLM

FIVE_MB = 5_000_000


def huge_text(texts: list[str]) -> str:
    return " ".join(texts * (FIVE_MB // sum(len(t) + 1 for t in texts) + 1))[:FIVE_MB]


@pytest.fixture(scope="module")
def tokenizer():
    return models.load_tokenizer(TEST_LLM)


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_a_5mb_text_is_cut_to_the_budget_and_short_ones_are_left_alone(tokenizer, demo_corpus):
    big = huge_text(demo_corpus.texts)
    short = demo_corpus.texts[0]
    out, cut = cut_texts([big, short, "a" * 3000], tokenizer)
    assert cut == 2
    assert out[1] is short
    assert n_tokens(tokenizer, out[0]) <= MAX_TEXT_TOKENS + 2  # decoding and re-encoding at the cut may differ by a token
    assert n_tokens(tokenizer, out[0]) > MAX_TEXT_TOKENS // 2
    assert big.startswith(out[0][:1000])
    assert n_tokens(tokenizer, out[2]) <= MAX_TEXT_TOKENS + 2


def test_dpo_prompts_with_a_5mb_text_fit_their_length(tokenizer, demo_corpus):
    from coevo.preference import fit_prompts, preference_records
    from coevo.selection import PreferencePair

    records = preference_records([huge_text(demo_corpus.texts)], [PreferencePair(0, "card declined", "weather", 1.0, 0.0)],
                                 "intent", None)
    fitted, cut = fit_prompts(records, tokenizer, max_length=128)
    assert cut == 1
    full = tokenizer.apply_chat_template(fitted[0]["prompt"] + fitted[0]["chosen"], tokenize=False)
    assert n_tokens(tokenizer, full) <= 128 and "card declined" in full


def test_texts_are_clipped_to_what_the_embedder_can_read():
    embedder = SimpleNamespace(max_seq_length=4)
    assert clip_for_embedder(embedder, ["x" * 1000, "short"]) == ["x" * (4 * CHARS_PER_TOKEN), "short"]
    assert clip_for_embedder(SimpleNamespace(), ["x" * 1000]) == ["x" * 1000]


@pytest.mark.slow
def test_a_5mb_line_runs_the_full_method_in_normal_memory(tmp_path, demo_corpus):
    short = demo_corpus.texts[:2]
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in [huge_text(demo_corpus.texts), *short]))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-m", "coevo.cli", "run", str(data), "-k", "2", "--method", "full", "--llm", TEST_LLM,
         "--rounds", "2", "--samples", "2", "--max-pairs", "1", "--max-new-tokens", "8", "--kmeans-init", "2",
         "-o", str(out), "-q", "--show", "0"],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = [line for line in result.stderr.splitlines() if "shortened for the LLM" in line]
    assert said == [f"1 text longer than {MAX_TEXT_TOKENS} tokens was shortened for the LLM"]  # once, not per round
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"][0]["dpo"]["pairs"] == 1
    assert summary["peak_rss_mb"] < 4000  # uncut, the prefill alone asked for 24 GB
    rows = [json.loads(line) for line in (out / "assignments.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and len(rows[0]["text"]) == FIVE_MB  # the output keeps the whole text
