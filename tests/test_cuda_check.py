"""bench/cuda_check.py's verdict: a step that ran a model but held no GPU memory, or DPO off CUDA or bf16, fails
the check; its report says which. (The check itself runs on a GPU machine; these read records alone.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _script():
    spec = importlib.util.spec_from_file_location("cuda_check", Path(__file__).parents[1] / "bench" / "cuda_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(**changes) -> dict:
    steps = ["round1/generate", "round1/select", "round1/dpo", "round1/contrastive", "round1/cluster", "round2/generate",
             "round2/select", "round2/contrastive", "round2/cluster"]
    record = {"llm": "x", "seconds": {s: 1.0 for s in steps}, "peak_gpu_mb_by_step": {s: 512.0 for s in steps},
              "fit_s": 9.0, "predict_s": 1.0, "predicted": 50, "held_out": 50, "tokens_per_second": [900.0, 950.0],
              "dpo": {"device": "cuda", "bf16": True, "seconds_per_pair": 0.05, "pairs": 150}, "device": "GPU"}
    record.update(changes)
    return record


def test_a_run_wholly_on_the_gpu_passes():
    assert _script().problems(_record(), need_gpu=True) == []


def test_a_step_that_ran_on_the_cpu_or_dpo_without_bf16_fails():
    check = _script()
    cpu_step = _record(peak_gpu_mb_by_step={"round1/generate": 512.0, "round1/dpo": 512.0})
    found = check.problems(cpu_step, need_gpu=True)
    assert found == ["round1/contrastive held no GPU memory", "round2/generate held no GPU memory",
                     "round2/contrastive held no GPU memory"]
    fp32 = check.problems(_record(dpo={"device": "cuda", "bf16": False, "seconds_per_pair": 1.0, "pairs": 1}), need_gpu=True)
    assert fp32 == ["DPO trained on cuda with bf16=False"]
    assert check.problems(_record(predicted=49), need_gpu=False) == ["predict returned 49 clusters for 50 texts"]


def test_report_names_failures_and_passes():
    check = _script()
    data = {"commit": "abc", "date": "today", "machine": "m", "packages": "torch 2", "texts": 300, "k": 10, "held_out": 50,
            "batches": {"generation_batch_size": 300, "dpo_batch_size": 16},
            "records": [_record(llm="small", problems=[]), {"llm": "big", "error": "OutOfMemoryError: no room"},
                        _record(llm="odd", problems=["round1/dpo held no GPU memory"])]}
    text = check.render(data)
    assert "| small | passed | GPU |" in text
    assert "| big | failed: OutOfMemoryError: no room |" in text
    assert "| odd | round1/dpo held no GPU memory |" in text
    assert "- batches: 300 texts per decode batch, 16 pairs per DPO step" in text
    assert "| round1/dpo | 1.0 s / 0.50 | 1.0 s / 0.50 |" in text and "0.050 (150 pairs)" in text
