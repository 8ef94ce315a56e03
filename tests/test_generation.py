"""The shared-prefill sampler on the real (tiny) packaged LLM."""

import pytest
import torch

from coevo.generation import Interpreter, SamplingConfig
from coevo.prompts import system_prompt
from tests.conftest import TEST_LLM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def interpreter(tmp_path_factory):
    # float32: the tests compare greedy tokens of two decoding paths exactly, and in bfloat16
    # (the default on CPUs with native bf16) their different rounding flips near-ties.
    it = Interpreter(TEST_LLM, dtype=torch.float32)
    it.cache_root = tmp_path_factory.mktemp("generations")  # a private generation cache
    return it


@pytest.mark.parametrize("texts", [
    ["my card never arrived", "how do i reset my password please", "cancel it"],
    ["cancel it", "cancel it"],  # the whole prompt is shared but its last token
])
def test_shared_prefill_matches_plain_generate(interpreter, texts):
    """Greedy decoding from a prefilled, copied, compacted cache equals generate() on the repeated prompts."""
    it = interpreter
    prompts = it.prompts(texts, "intent")
    enc = it.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        plain = it.decoder.model.generate(
            input_ids=enc["input_ids"].repeat_interleave(2, 0), attention_mask=enc["attention_mask"].repeat_interleave(2, 0),
            do_sample=False, max_new_tokens=12, pad_token_id=it.tokenizer.pad_token_id,
        )
    ours, produced = it.decoder.decode(prompts, SamplingConfig(samples=2, temperature=0.0, max_new_tokens=12), seed=0)
    width = enc["input_ids"].shape[1]
    expected = it.tokenizer.batch_decode(plain[:, width:], skip_special_tokens=True)
    first_line = lambda text: text.split("\n", 1)[0]
    assert [first_line(a) for answers in ours for a in answers] == [first_line(e) for e in expected]
    assert produced > 0


def test_prefill_scores_no_prompt_position(interpreter):
    """The LM head sees one position per row and decode step, and none in the prefill, which only
    fills the cache (a prefill through the LM head cost 17 GB with a merged adapter)."""
    it = interpreter
    seen = []
    hook = it.decoder.model.get_output_embeddings().register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    try:
        prompts = it.prompts(["my card never arrived", "how do i reset my password please"], "intent")
        it.decoder.decode(prompts, SamplingConfig(samples=2, temperature=0.0, max_new_tokens=3), seed=0)
    finally:
        hook.remove()
    # the first call is the first decode step (2 prompts x 2 samples rows), not a prefill of the 2 prompts
    assert tuple(seen[0][:2]) == (4, 1) and len(seen) <= 3 and all(shape[1] == 1 for shape in seen)


def test_shared_opening_is_prefilled_once(interpreter):
    """The opening all prompts share (template and system message) goes through the model once, as
    one row; then only the rest of each prompt, before the decode steps."""
    it = interpreter
    texts = ["my card never arrived", "how do i reset my password please", "cancel it"]
    prompts = it.prompts(texts, "intent")
    lengths = [len(it.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    system_block = it.tokenizer.apply_chat_template([{"role": "system", "content": system_prompt("intent")}], tokenize=False)
    seen = []
    hook = it.decoder._backbone.register_forward_hook(
        lambda module, args, kwargs, output: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        it.decoder.decode(prompts, SamplingConfig(samples=2, temperature=0.0, max_new_tokens=3), seed=0)
    finally:
        hook.remove()
    (one, shared), (rows, rest) = seen[0], seen[1]
    assert one == 1 and shared >= len(it.tokenizer(system_block, add_special_tokens=False)["input_ids"])
    assert rows == len(texts) and shared + rest + 1 == max(lengths)
    assert all(shape[1] == 1 for shape in seen[2:])  # decode steps


def test_samples_order_seed_and_cache(interpreter, monkeypatch):
    it = interpreter
    texts = ["the parcel is late again", "cancel my plan", "app crashes on start"]
    sampling = SamplingConfig(samples=3, max_new_tokens=12, batch_size=2, seed=5)
    first = it.sample(it.prompts(texts, "intent"), sampling, progress=False)
    assert len(first) == 3 and all(len(a) == 3 for a in first)
    # a second call is served from the disk cache: the model is never called
    monkeypatch.setattr(it.decoder, "decode", lambda *a, **k: pytest.fail("cache miss"))
    assert it.sample(it.prompts(texts, "intent"), sampling, progress=False) == first


def test_input_order_survives_length_sorting(interpreter, monkeypatch):
    it = interpreter
    echo = lambda prompts, sampling, seed: ([[p] * sampling.samples for p in prompts], 0)
    monkeypatch.setattr(it.decoder, "decode", echo)
    prompts = ["a" * n for n in (5, 50, 1, 20, 9)]
    out = it.sample(prompts, SamplingConfig(samples=2, batch_size=2, seed=123456), progress=False)
    assert out == [[p, p] for p in prompts]


def test_interpret_cleans_and_drops_degenerate(interpreter):
    out = interpreter.interpret(["I lost my wallet with my bank card in it"], "intent",
                                sampling=SamplingConfig(samples=4, max_new_tokens=16, seed=1), progress=False)
    assert len(out) == 1 and 1 <= len(out[0]) <= 4
    for answer in out[0]:
        assert answer == answer.strip().lower() and "\n" not in answer and answer


def test_interpret_resamples_then_drops_echoes_of_the_phrase_rules(interpreter, monkeypatch):
    """"no sentence" was 15% of the 0.5B's answers to the type task; the four-word leak test missed it."""
    calls = []

    def decode(prompts, sampling, seed):
        calls.append(len(prompts))
        first = len(calls) == 1
        answers = ["No sentence.", "lost bank card"] if first else ["no explanation", "Report lost card"]
        return [answers for _ in prompts], 0

    monkeypatch.setattr(interpreter.decoder, "decode", decode)
    out = interpreter.interpret(["my wallet is gone, card and all, echo test 7"], "intent",
                                sampling=SamplingConfig(samples=2, seed=3), progress=False)
    assert calls == [1, 1]  # the text with an echo was sampled again, once
    assert out == [["report lost card", "lost bank card"]]


def test_interpret_drops_echoes_of_its_own_task_sentence_but_not_of_a_users(interpreter, monkeypatch):
    """"event" or "relation" were over half of the 1.5B's round-1 answers on the type sets: the question, not the text.
    A user's instruction may list the answers it wants, so its words stay answers."""
    calls = []

    def decode(prompts, sampling, seed):
        calls.append(len(prompts))
        answers = ["Event", "military conflict"] if len(calls) == 1 else ["general category", "armed attack"]
        return [answers for _ in prompts], 0

    monkeypatch.setattr(interpreter.decoder, "decode", decode)
    text = ["The troops stormed the town at dawn. The event trigger is stormed."]
    out = interpreter.interpret(text, "type", sampling=SamplingConfig(samples=2, seed=5), progress=False)
    assert calls == [1, 1] and out == [["armed attack", "military conflict"]]
    calls.clear()
    out = interpreter.interpret(text, "type", instruction="Answer event, relation or entity.",
                                sampling=SamplingConfig(samples=2, seed=5), progress=False)
    assert calls == [1] and out == [["event", "military conflict"]]
