"""The two learning steps, on the real tiny models: DPO (TRL + PEFT) and contrastive (sentence-transformers)."""

import dataclasses
import math

import pytest
import torch
from safetensors.torch import load_file

from coevo import models
from coevo.contrastive import ContrastiveSettings, train_contrastive
from coevo.preference import DPOSettings, answer_logprobs, preference_records, train_dpo
from coevo.selection import PreferencePair
from tests.conftest import TEST_EMBEDDER, TEST_LLM

pytestmark = pytest.mark.slow


def test_dpo_raises_the_margin_and_trains_only_the_adapter(tmp_path, demo_corpus):
    texts = demo_corpus.texts[:8]
    pairs = [PreferencePair(i, "report a problem with my account", "ok ok ok ok ok", 1.0, 0.0) for i in range(8)]
    records = preference_records(texts, pairs, "intent", None)
    base, tokenizer = models.load_llm(TEST_LLM)
    prompts = [r["prompt"] for r in records]
    before = [c - r for c, r in zip(answer_logprobs(base, tokenizer, prompts, [p.chosen for p in pairs]),
                                    answer_logprobs(base, tokenizer, prompts, [p.rejected for p in pairs]))]
    base_state = {k: v.clone() for k, v in base.state_dict().items()}

    summary = train_dpo(TEST_LLM, records, tmp_path / "adapter",
                        settings=DPOSettings(learning_rate=5e-4, batch_size=4, epochs=2, lora_r=8, lora_alpha=16),
                        progress=False)
    assert summary["steps"] == 4 and summary["pairs"] == 8

    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert saved and all("lora_" in key for key in saved)  # only adapter weights were written

    from peft import PeftModel

    tuned = PeftModel.from_pretrained(models.load_llm(TEST_LLM)[0], str(tmp_path / "adapter"))
    after = [c - r for c, r in zip(answer_logprobs(tuned, tokenizer, prompts, [p.chosen for p in pairs]),
                                   answer_logprobs(tuned, tokenizer, prompts, [p.rejected for p in pairs]))]
    assert sum(after) / len(after) > sum(before) / len(before) + 1.0
    # the base weights under the adapter are untouched
    for key, value in tuned.get_base_model().state_dict().items():
        plain = key.replace(".base_layer", "")
        if plain in base_state and "lora_" not in key:
            assert torch.equal(value, base_state[plain]), key


def test_contrastive_step_lowers_its_loss(tmp_path, demo_corpus):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    labels = sorted(set(demo_corpus.labels))
    anchors = demo_corpus.texts
    positives = [demo_corpus.labels[i].replace("_", " ") for i in range(len(anchors))]
    embedder = models.load_embedder(TEST_EMBEDDER)

    def loss_value(model) -> float:
        loss = MultipleNegativesRankingLoss(model)
        # one batch per label, so duplicates never share a batch (as the trainer's sampler ensures)
        firsts = [anchors[[demo_corpus.labels[i] for i in range(len(anchors))].index(lab)] for lab in labels]
        features = [model.tokenize(firsts), model.tokenize([lab.replace("_", " ") for lab in labels])]
        with torch.no_grad():
            return float(loss(features, None))

    before = loss_value(embedder)
    summary = train_contrastive(embedder, anchors, positives, tmp_path / "embedder",
                                settings=ContrastiveSettings(batch_size=8, learning_rate=1e-4, epochs=2, batches="no-duplicates"),
                                progress=False)
    assert summary["steps"] > 0
    reloaded = models.load_embedder(str(tmp_path / "embedder"))
    assert loss_value(reloaded) < before


def test_long_texts_are_cut_inside_the_prompt_so_the_answer_survives(demo_corpus):
    from coevo.preference import fit_prompts

    _, tokenizer = models.load_llm(TEST_LLM)
    long_text = " ".join(demo_corpus.texts[:60])  # several hundred tokens
    pairs = [PreferencePair(0, "card payment declined", "weather", 1.0, 0.0),
             PreferencePair(1, "card payment declined", "weather", 1.0, 0.0)]
    records = preference_records([long_text, demo_corpus.texts[0]], pairs, "intent", None)
    fitted, cut = fit_prompts(records, tokenizer, max_length=128)
    assert cut == 1
    assert fitted[1] == records[1]  # a short text is left alone
    long = fitted[0]
    assert long_text.startswith(long["prompt"][-1]["content"][:200])  # the start of the text is kept
    full = tokenizer.apply_chat_template(long["prompt"] + long["chosen"], tokenize=False)
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    assert len(ids) <= 128
    assert "card payment declined" in full  # the answer is whole


def test_bf16_autocast_only_where_the_hardware_has_it(monkeypatch):
    import coevo.preference as preference

    cpu = torch.device("cpu")
    monkeypatch.setattr(preference, "preferred_dtype", lambda device: torch.bfloat16)
    assert preference.autocast_bf16(DPOSettings(), cpu)
    assert not preference.autocast_bf16(DPOSettings(bf16=False), cpu)
    monkeypatch.setattr(preference, "preferred_dtype", lambda device: torch.float32)
    assert not preference.autocast_bf16(DPOSettings(), cpu)


def test_dpo_keeps_frozen_matrices_bf16_and_the_residual_stream_fp32():
    from coevo.preference import _float32_except_frozen_matrices

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.proj = torch.nn.Linear(4, 4)
            self.norm = torch.nn.LayerNorm(4)

        def get_input_embeddings(self):
            return self.embed

    model = Tiny().to(torch.bfloat16)
    _float32_except_frozen_matrices(model)
    assert model.embed.weight.dtype == model.proj.weight.dtype == torch.bfloat16  # half the memory
    assert model.proj.bias.dtype == model.norm.weight.dtype == model.norm.bias.dtype == torch.float32
    assert model.embed(torch.tensor([[1, 2]])).dtype == torch.float32  # what enters the residual stream


def test_dpo_scores_only_the_answer_positions_with_the_same_log_probs(monkeypatch):
    import trl.trainer.utils as trl_utils
    from trl.trainer.utils import add_fused_lm_head

    from coevo.preference import answer_positions_only

    model, tokenizer = models.load_llm(TEST_LLM, dtype=torch.float32)
    add_fused_lm_head(model)
    ids = torch.tensor([tokenizer("Where is my new card? It never arrived.")["input_ids"][:8],
                        tokenizer("Please cancel my order, I ordered the wrong size")["input_ids"][:8]])
    labels = ids.clone()
    labels[:, :-3] = -100  # the prompt: only the last three tokens are the answer
    rows = []
    project = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *rest: rows.append(hidden.shape[0]) or project(hidden, *rest))

    def scored():
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.log_probs.sum().backward()
        return out.log_probs.detach(), model.model.norm.weight.grad.clone()

    every_position, every_grad = scored()
    with answer_positions_only() as applied:
        answers_only, answers_grad = scored()
    assert applied
    assert rows == [2 * (ids.shape[1] - 1), 2 * 3]  # TRL's CPU path projects every position; ours the answers
    assert torch.allclose(answers_only, every_position, atol=1e-5)
    # The same sum over fewer rows, so float32 rounding differs with the reduction order (6e-5 of the
    # gradient's norm on an AMD EPYC without AVX-512); a wrong set of positions moves it by its whole size.
    assert (answers_grad - every_grad).norm() <= 5e-4 * every_grad.norm()
    assert trl_utils._use_triton(torch.device("cpu")) is False  # restored after training


def test_an_interrupted_dpo_step_resumes_from_its_last_save(tmp_path, demo_corpus, monkeypatch):
    from trl import DPOTrainer

    from coevo.preference import _resume_point

    texts = demo_corpus.texts[:8]
    pairs = [PreferencePair(i, f"answer number {i}", "ok ok ok", 1.0, 0.0) for i in range(8)]
    records = preference_records(texts, pairs, "intent", None)
    settings = DPOSettings(learning_rate=5e-4, batch_size=4, epochs=2, lora_r=8, lora_alpha=16, checkpoints=4)
    whole = train_dpo(TEST_LLM, records, tmp_path / "whole", settings=settings, progress=False)

    save = DPOTrainer._save_checkpoint

    def save_then_stop(self, model, trial):
        save(self, model, trial)
        if self.state.global_step == 2:
            raise KeyboardInterrupt  # what an interrupted run leaves: the save of step 2 and nothing after

    monkeypatch.setattr(DPOTrainer, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_dpo(TEST_LLM, records, tmp_path / "cut", settings=settings, progress=False)
    monkeypatch.undo()
    resumed = train_dpo(TEST_LLM, records, tmp_path / "cut", settings=settings, progress=False)

    assert (whole["resumed_at_step"], resumed["resumed_at_step"]) == (0, 2)
    assert resumed["steps"] == whole["steps"] == 4  # the loss history of the saved part carries over
    a = load_file(str(tmp_path / "whole" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same adapter as without the cut

    # a finished training leaves only its adapter; saves from other inputs are never resumed
    assert not (tmp_path / "cut" / "_trainer").exists()
    (tmp_path / "cut" / "_trainer" / "checkpoint-2").mkdir(parents=True)
    (tmp_path / "cut" / "_trainer" / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    assert _resume_point(tmp_path / "cut", "another digest") is None
    assert not (tmp_path / "cut" / "_trainer").exists() and (tmp_path / "cut" / "adapter_model.safetensors").exists()


def test_a_resumed_step_times_only_the_pairs_it_trained():
    from coevo.preference import _summarise

    history = [{"loss": 0.7}] * 4  # one log line per step
    assert _summarise(history, 10.0, 8)["seconds_per_pair"] == 1.25
    resumed = _summarise(history, 10.0, 8, resumed_at=2)
    assert (resumed["resumed_at_step"], resumed["seconds_per_pair"]) == (2, 2.5)


def test_a_round_whose_pairs_fit_in_one_step_still_trains_the_embedder(tmp_path, demo_corpus):
    # a tenth of one step rounds up to one warmup step, whose learning rate is 0: the step must take none
    anchors = demo_corpus.texts[:12]
    positives = [demo_corpus.labels[i].replace("_", " ") for i in range(12)]
    embedder = models.load_embedder(TEST_EMBEDDER)
    before = {name: value.clone() for name, value in embedder.state_dict().items()}
    summary = train_contrastive(embedder, anchors, positives, tmp_path / "embedder",
                                settings=ContrastiveSettings(batch_size=32, learning_rate=1e-4, batches="no-duplicates"),
                                progress=False)
    assert summary["steps"] == 1
    assert any(not torch.equal(before[name], value) for name, value in embedder.state_dict().items())


def test_one_per_cluster_training_takes_the_batches_it_promised(tmp_path, demo_corpus):
    # the trainer must run the sampler's batches: as many steps as one_per_cluster_batches builds
    from coevo.contrastive import one_per_cluster_batches

    anchors = demo_corpus.texts
    positives = [f"{demo_corpus.labels[i].replace('_', ' ')} {i}" for i in range(len(anchors))]  # all distinct
    clusters = [sorted(set(demo_corpus.labels)).index(label) for label in demo_corpus.labels]
    embedder = models.load_embedder(TEST_EMBEDDER)
    settings = ContrastiveSettings(batch_size=32, learning_rate=1e-4, epochs=1, seed=3, batches="one-per-cluster")
    summary = train_contrastive(embedder, anchors, positives, tmp_path / "embedder", settings=settings,
                                clusters=clusters, progress=False)
    batches = one_per_cluster_batches(clusters, list(zip(anchors, positives)), 32, 3)
    assert summary["steps"] == len(batches) > len(anchors) // 32 + 1  # smaller batches than 32: more steps
    same_steps = train_contrastive(embedder, anchors, positives, tmp_path / "same", clusters=clusters, progress=False,
                                   settings=dataclasses.replace(settings, batches="one-per-cluster-same-steps"))
    assert same_steps["steps"] == math.ceil(len(anchors) / 32)  # what no-duplicates batches take
    with pytest.raises(ValueError, match="cluster"):
        train_contrastive(embedder, anchors, positives, tmp_path / "again", settings=settings, progress=False)
    # one cluster: no batch can hold a negative, so nothing trains and the embedder is saved as it was
    before = {name: value.clone() for name, value in embedder.state_dict().items()}
    alone = train_contrastive(embedder, anchors, positives, tmp_path / "alone", settings=settings,
                              clusters=[0] * len(anchors), progress=False)
    assert alone["steps"] == 0 and (tmp_path / "alone").is_dir()
    assert all(torch.equal(before[name], value) for name, value in embedder.state_dict().items())
