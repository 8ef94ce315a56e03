"""Choosing the decoder, and the vLLM glue, checked against a stand-in for vLLM (no GPU here)."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import pytest
import torch

from coevo import CoEvoConfig
from coevo.errors import CoevoError
from coevo.generation import Interpreter, SamplingConfig, generation_backend
from tests.conftest import TEST_LLM


class FakeLLM:
    """Records how it was built and called; answers "<prompt number> sample <j>"."""

    built: list["FakeLLM"] = []

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        FakeLLM.built.append(self)

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        self.calls.append({"prompts": list(prompts), "params": params, "lora": lora_request})
        return [
            types.SimpleNamespace(outputs=[
                types.SimpleNamespace(text=f"reason {i} sample {j}", token_ids=[1, 2, 3]) for j in range(params.n)
            ])
            for i in range(len(prompts))
        ]


@pytest.fixture
def fake_vllm(monkeypatch):
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)
        return mod

    module("vllm", LLM=FakeLLM, SamplingParams=lambda **kw: types.SimpleNamespace(**kw))
    module("vllm.lora")
    module("vllm.lora.request", LoRARequest=lambda name, number, path: types.SimpleNamespace(name=name, number=number, path=path))
    FakeLLM.built = []
    return FakeLLM


def _no_vllm(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))


def test_auto_picks_torch_without_gpu_or_without_vllm(monkeypatch, fake_vllm):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert generation_backend("auto") == "torch"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert generation_backend("auto") == "vllm"
    assert generation_backend("torch") == "torch"
    _no_vllm(monkeypatch)
    assert generation_backend("auto") == "torch"


def test_asking_for_vllm_where_it_cannot_run_is_a_one_line_error(monkeypatch, fake_vllm):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CoevoError, match="--generation-backend vllm: vLLM needs a CUDA GPU"):
        generation_backend("vllm")
    _no_vllm(monkeypatch)
    with pytest.raises(CoevoError, match="vLLM is not installed"):
        generation_backend("vllm")
    with pytest.raises(CoevoError, match="--generation-backend"):
        CoEvoConfig(n_clusters=3, generation_backend="tensorrt")


@pytest.mark.slow
def test_vllm_path_serves_the_adapter_and_returns_our_format(monkeypatch, fake_vllm, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 32}))
    it = Interpreter(TEST_LLM, adapter, device="cpu", dtype=torch.bfloat16, backend="vllm")
    it.cache_root = tmp_path / "generations"
    assert it.backend == "vllm" and not hasattr(it, "model")  # the weights live in vLLM only

    sampling = SamplingConfig(samples=3, temperature=0.7, top_p=0.9, max_new_tokens=12, batch_size=2, seed=5)
    answers = it.interpret(["card lost", "refund please", "new pin"], "intent", sampling=sampling, progress=False)
    assert [len(a) for a in answers] == [3, 3, 3] and answers[0][0].startswith("reason")
    llm = fake_vllm.built[-1]
    assert llm.kwargs["enable_lora"] and llm.kwargs["max_lora_rank"] == 32 and llm.kwargs["dtype"] == "bfloat16"
    call = llm.calls[0]
    assert call["lora"].path == str(adapter)
    params = call["params"]
    assert (params.n, params.temperature, params.top_p, params.max_tokens, params.stop) == (3, 0.7, 0.9, 12, ["\n"])
    assert sum(len(c["prompts"]) for c in llm.calls) == 3  # batches of 2 texts

    again = it.interpret(["card lost", "refund please", "new pin"], "intent", sampling=sampling, progress=False)
    assert again == answers and sum(len(c["prompts"]) for c in llm.calls) == 3  # served from the cache
