"""bench/speed.py's report: the memory column and the targets of issue 17, from records alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _speed():
    spec = importlib.util.spec_from_file_location("speed_script", Path(__file__).parents[1] / "bench" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gen(path, seconds, tokens_per_s, peak, commit="new"):
    return {"part": "generation", "path": path, "dtype": "bfloat16", "texts": 32, "batch_texts": 32, "samples": 4,
            "seconds": seconds, "tokens": 1000, "tokens_per_s": tokens_per_s, "texts_per_s": 32 / seconds,
            "peak_rss_mb": peak, "commit": commit}


def test_report_shows_memory_and_judges_the_targets():
    speed = _speed()
    records = [
        _gen("coevo shared prefill", 6.0, 120.0, 2400.0),
        _gen("coevo shared prefill, base + merged DPO adapter", 7.0, 100.0, 2600.0),
        _gen("generate(num_return_sequences)", 30.0, 25.0, 2500.0),
        {"part": "demo", "command": "coevo run demo -k 10", "n": 300, "wall_s": 600.0, "peak_rss_mb": 3500.0,
         "peak_rss_mb_by_step": {"generate": 2500.0, "dpo": 3500.0}, "acc": 97.0, "commit": "new"},
        {"part": "rounds", "n": 4000, "k": 77, "samples": 4, "pairs": 100, "llm": "x", "total_s": 100.0,
         "seconds": {"generate": 60.0, "dpo": 40.0}, "peak_rss_mb": 9 * 1024.0, "commit": "old", "date": "2026-11-29"},
    ]
    text = speed.render({"commit": "new", "date": "today", "machine": "m", "load": {}, "llm": "l", "embedder": "e",
                         "max_new_tokens": 20, "records": records})
    assert "| 2.34 GB |" in text  # the base path's own peak, in the generation table
    # the adapter row is no generate() baseline: the prefill path's speed-up is against generate() alone
    assert "| coevo shared prefill | bfloat16 | 32 | 6.0 | 120 | 5.33 | 5.00x |" in text
    assert "| generation with the DPO adapter merged (bfloat16) | within 10% of the base model's tokens/s | " \
           "100 vs 120 tokens/s (0.83x) | missed: 17% slower |" in text
    assert "| peak memory of the demo | < 4 GB | 3.42 GB | met |" in text
    assert "peak memory of a 600-text round | < 6 GB | 9.0 GB (the 4,000-text round, at old) | missed: 3.0 GB over |" in text
    assert "`rounds` at `old` 2026-11-29" in text  # parts measured on other code are named in the header


def test_report_sets_the_llms_side_by_side():
    speed = _speed()
    small, large = "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"
    records = [
        {**_gen("coevo shared prefill", 8.0, 100.0, 3 * 1024.0), "part": "llms", "what": "generation", "llm": small},
        {"part": "llms", "what": "dpo", "llm": small, "path": "coevo", "pairs": 16, "seconds_per_pair": 3.5,
         "train_seconds_per_pair": 3.0, "reward_accuracy_last": 1.0, "peak_rss_mb": 4 * 1024.0, "commit": "new"},
        {**_gen("coevo shared prefill", 24.0, 33.0, 7 * 1024.0), "part": "llms", "what": "generation", "llm": large},
    ]
    text = speed.render({"commit": "new", "date": "today", "machine": "m", "load": {}, "llm": "l", "embedder": "e",
                         "max_new_tokens": 20, "records": records})
    assert f"| {small} | 100 | 4.00 | 3.00 GB | 3.50 | 3.00 | 1.000 | 4.00 GB |" in text
    assert f"| {large} | 33 | 1.33 | 7.00 GB | - | - | - | - |" in text  # its DPO not measured (yet)
