"""Step 1: the LLM writes M interpretations of every text.

Speed comes from four things ``generate(num_return_sequences=M)`` does not do:
the prompt of a text is prefilled *once* and its key/value cache is copied to
its M samples; the opening all prompts share (chat template and system message,
most of a short text's prompt) is prefilled once per batch; many texts are
decoded together; and a row leaves the batch (and its cache) as soon as its
answer ends, because a decode step costs time in proportion to its rows and
most answers are much shorter than the longest.
That last point needs a small decode loop over the model's forward and its
``DynamicCache``; with temperature 0 it gives exactly ``generate()``'s greedy
output (tests/test_generation.py checks it). ``bench/speed.py`` measures the gain.

Finished batches are cached on disk under a key made of the model fingerprint,
the prompts, the sampling settings and the seed, so an interrupted round, a
rerun, or another method on the same data does not redo them.

On a CUDA GPU with vLLM installed, decoding goes through vLLM instead (paged
attention, prefix caching and continuous batching do the same things, faster), with the
round's LoRA adapter served by vLLM's LoRA support; the answers come back in
the same form, cleaned and cached the same way. ``generation_backend`` picks it;
both are ``registry.Decoder``s, and a user's own decoder can be registered beside them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from . import models
from .atomic import atomic_write_json, read_json
from .config import CoEvoConfig
from .errors import CoevoError
from .registry import DECODERS, Decoder
from .prompts import (MAX_TEXT_TOKENS, TASK_INSTRUCTIONS, chat_messages, clean_interpretation, cut_texts, is_degenerate,
                      system_prompt)


@dataclass(frozen=True)
class SamplingConfig:
    """How the generate step samples; the defaults are ``CoEvoConfig``'s (its ``generation_*`` fields)."""

    samples: int = CoEvoConfig.samples
    temperature: float = CoEvoConfig.temperature
    top_p: float = CoEvoConfig.top_p
    max_new_tokens: int = CoEvoConfig.max_new_tokens
    batch_size: int = CoEvoConfig.generation_batch_size  # texts per decode batch; x samples sequences decoded together
    seed: int = CoEvoConfig.seed


def generation_backend(requested: str = "auto") -> str:
    """The decoder to use: vLLM when asked for, or (``auto``) when it is installed
    and a CUDA GPU is present; our own torch decode loop otherwise. Any other name
    must be registered in ``registry.DECODERS``."""
    if requested != "auto":
        DECODERS.check(requested)
    has_vllm = importlib.util.find_spec("vllm") is not None
    if requested == "vllm":
        if not has_vllm:
            raise CoevoError("option --generation-backend vllm: vLLM is not installed; install it (`pip install vllm`) "
                             "or use --generation-backend torch")
        if not torch.cuda.is_available():
            raise CoevoError("option --generation-backend vllm: vLLM needs a CUDA GPU and none is visible; "
                             "use --generation-backend torch")
        return "vllm"
    if requested == "auto":
        return "vllm" if has_vllm and torch.cuda.is_available() else "torch"
    return requested


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """Temperature and nucleus (top-p) sampling; temperature 0 is greedy.

    The nucleus is searched among the 256 most likely tokens instead of sorting
    the whole vocabulary (150k entries for Qwen) for every row at every step;
    it differs from a full sort only when those 256 tokens hold less than
    ``top_p`` of the probability, and then it keeps the 256.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    top_logits, top_ids = torch.topk(logits / temperature, k=min(256, logits.shape[-1]), dim=-1)
    probs = torch.softmax(top_logits, dim=-1)
    if top_p < 1.0:
        before = probs.cumsum(dim=-1) - probs  # mass of the more likely tokens
        probs = probs.masked_fill(before >= top_p, 0.0)
    choice = torch.multinomial(probs, 1, generator=generator)
    return top_ids.gather(-1, choice)[:, 0]


def _shared_prefix_length(token_ids: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving every prompt at least its last token."""
    first, shortest = token_ids[0], min(map(len, token_ids))
    length = 0
    while length < shortest - 1 and all(ids[length] == first[length] for ids in token_ids):
        length += 1
    return length


def _end_token_ids(model, tokenizer) -> torch.Tensor:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return torch.tensor(sorted(ids), dtype=torch.long)


def _newline_token_ids(tokenizer) -> torch.Tensor:
    vocab_size = len(tokenizer)
    pieces = tokenizer.batch_decode([[i] for i in range(vocab_size)])
    return torch.tensor([i for i, piece in enumerate(pieces) if "\n" in piece], dtype=torch.long)


class Interpreter:
    """One LLM (a base model, optionally with a LoRA adapter) that interprets texts.

    Prompting, cleaning, resampling and the on-disk cache are the same for every
    decoder; the decoder (``registry.DECODERS``, chosen by ``backend``) only turns
    prompts into raw answers.
    """

    def __init__(
        self,
        llm: str,
        adapter_dir: str | Path | None = None,
        *,
        cache_dir: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        trust_remote_code: bool = False,
        backend: str = "auto",
    ):
        self.backend = generation_backend(backend)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype or models.preferred_dtype(self.device)
        self.fingerprint = models.model_fingerprint(llm) + (
            f"+{models.model_fingerprint(str(adapter_dir))}" if adapter_dir is not None else ""
        )
        self.cache_root = models.cache_root(cache_dir) / "generations"
        self.tokens_per_second: float | None = None
        self.shortened_texts = 0
        self.decoder: Decoder = DECODERS.create(self.backend, llm, adapter_dir, cache_dir=cache_dir, device=self.device,
                                                dtype=self.dtype, trust_remote_code=trust_remote_code)
        self.tokenizer = self.decoder.tokenizer

    def prompts(self, texts: list[str], task: str, instruction: str | None = None) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(chat_messages(text, task, instruction), add_generation_prompt=True, tokenize=False)
            for text in texts
        ]

    def interpret(
        self,
        texts: list[str],
        task: str,
        instruction: str | None = None,
        sampling: SamplingConfig = SamplingConfig(),
        progress: bool = True,
        max_text_tokens: int = MAX_TEXT_TOKENS,
    ) -> list[list[str]]:
        """Up to ``sampling.samples`` cleaned interpretations per text, in input order.

        Degenerate answers (empty, rambling, refusals, repeats of the
        instructions) are resampled once, then dropped, so a text can end with
        fewer than M interpretations. Texts longer than ``max_text_tokens`` are
        cut first (``shortened_texts`` counts them), so that one huge text
        cannot exhaust memory in the prefill.
        """
        texts, self.shortened_texts = cut_texts(texts, self.tokenizer, max_text_tokens)
        prompts = self.prompts(texts, task, instruction)
        system = system_prompt(task, instruction)
        own_sentence = None if instruction else TASK_INSTRUCTIONS[task]  # a user's may list its answers
        bad = lambda answer: is_degenerate(answer, system, task_sentence=own_sentence)
        raw = self.sample(prompts, sampling, progress=progress, desc="interpret")
        cleaned = [[clean_interpretation(answer) for answer in answers] for answers in raw]
        retry = [i for i, answers in enumerate(cleaned) if any(bad(a) for a in answers)]
        if retry:
            again = self.sample(
                [prompts[i] for i in retry], _reseeded(sampling), progress=progress, desc="resample degenerate"
            )
            for i, answers in zip(retry, again):
                fresh = iter(a for a in (clean_interpretation(r) for r in answers) if not bad(a))
                cleaned[i] = [a if not bad(a) else next(fresh, "") for a in cleaned[i]]
        return [[a for a in answers if not bad(a)] for answers in cleaned]

    def sample(
        self, prompts: list[str], sampling: SamplingConfig, progress: bool = True, desc: str = "generate"
    ) -> list[list[str]]:
        """Raw decoded answers, ``sampling.samples`` per prompt, in input order."""
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])  # similar lengths share a batch: less padding
        results: list[list[str] | None] = [None] * len(prompts)
        started, new_tokens = time.perf_counter(), 0
        bar = tqdm(total=len(prompts), desc=desc, unit="text", disable=not progress)
        for start in range(0, len(order), sampling.batch_size):
            batch = order[start : start + sampling.batch_size]
            batch_prompts = [prompts[i] for i in batch]
            key = self._cache_key(batch_prompts, sampling)
            answers = self._cached(key)
            if answers is None:
                answers, produced = self.decoder.decode(batch_prompts, sampling, seed=int(key[:8], 16))
                new_tokens += produced
                atomic_write_json(self._cache_path(key), {"answers": answers})
            for i, text_answers in zip(batch, answers):
                results[i] = text_answers
            bar.update(len(batch))
            elapsed = time.perf_counter() - started
            if new_tokens:
                self.tokens_per_second = new_tokens / elapsed
                bar.set_postfix_str(f"{self.tokens_per_second:.0f} tok/s")
        bar.close()
        return results  # type: ignore[return-value]

    def _cache_key(self, prompts: list[str], sampling: SamplingConfig) -> str:
        """The batch's cache entry and also its sampler's seed, so it must not change with the
        cache folder or the machine, or a rerun from an empty cache would draw other answers
        (models.model_fingerprint says what it hashes)."""
        fields = {"model": self.fingerprint, "dtype": str(self.dtype), "sampling": asdict(sampling), "prompts": prompts}
        if self.backend != "torch":  # another sampler draws other answers from the same seed
            fields["backend"] = self.backend
        payload = json.dumps(fields)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path:
        return self.cache_root / key[:2] / f"{key}.json"

    def _cached(self, key: str) -> list[list[str]] | None:
        path = self._cache_path(key)
        if not path.exists():
            return None
        try:
            return read_json(path)["answers"]
        except (OSError, ValueError, KeyError):
            return None  # a damaged entry is simply regenerated


class TorchDecoder:
    """Our own decode loop over the model's forward (the module docstring says why).

    The weights are loaded in the dtype decoding computes in and the adapter is
    merged into them at load time (PEFT's merge, in that dtype), so decoding runs at
    the speed and in the memory of the plain model.
    """

    def __init__(self, llm: str, adapter_dir: str | Path | None, *, cache_dir: str | None, device: torch.device,
                 dtype: torch.dtype, trust_remote_code: bool):
        model, tokenizer = models.load_llm(llm, cache_dir=cache_dir, dtype=dtype, trust_remote_code=trust_remote_code)
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
        self.device = device
        self.model = model.to(device=device).eval()
        self.tokenizer = tokenizer
        self.stop_ids = torch.cat([_newline_token_ids(tokenizer), _end_token_ids(self.model, tokenizer)]).unique().to(device)
        # The prefill only fills the cache, so it runs the decoder stack without the LM head:
        # scoring every prompt position over the whole vocabulary would cost gigabytes (64 prompts
        # of 150 tokens x 152k words). Keeping only the last position (logits_to_keep=1) is not
        # enough: that position is a strided view, and for weights that do not require grad (as
        # after merging a LoRA adapter) torch's matmul then runs it as a bmm over a copy of the
        # LM head per prompt, 17 GB and 4x the time for 64 prompts with Qwen's 152k vocabulary.
        self._backbone = self.model.get_decoder()

    @torch.no_grad()
    def decode(self, prompts: list[str], sampling: SamplingConfig, seed: int) -> tuple[list[list[str]], int]:
        """Prefill each prompt once, copy its cache to its M samples, decode all rows together.

        Rows that have finished (line break or end of turn) are dropped from the
        batch and its cache at once: a decode step costs time in proportion to
        its rows here, and most answers end long before the longest one.
        """
        m = sampling.samples
        cache, last, mask, last_position = self._prefill(prompts)
        cache.batch_repeat_interleave(m)
        rows = len(prompts) * m
        token = last.repeat_interleave(m)
        attention = mask.repeat_interleave(m, dim=0)
        position = last_position.repeat_interleave(m)
        active = torch.arange(rows, device=self.device)
        answers: list[list[int]] = [[] for _ in range(rows)]
        generator = torch.Generator(device=self.device).manual_seed(seed)
        for _ in range(sampling.max_new_tokens):
            logits = self.model(
                input_ids=token[:, None], attention_mask=attention, position_ids=position[:, None], cache=cache, use_cache=True
            ).logits[:, -1, :].float()
            token = _sample(logits, sampling.temperature, sampling.top_p, generator)
            for row, tok in zip(active.tolist(), token.tolist()):
                answers[row].append(tok)
            finished = torch.isin(token, self.stop_ids)
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            position = position + 1
            if bool(finished.all()):
                break
            if bool(finished.any()):
                keep = torch.nonzero(~finished)[:, 0]
                cache.batch_select_indices(keep)
                token, attention, position, active = token[keep], attention[keep], position[keep], active[keep]
        produced = sum(len(a) for a in answers)
        texts = self.tokenizer.batch_decode(answers, skip_special_tokens=True)
        return [texts[j * m : (j + 1) * m] for j in range(len(prompts))], produced

    def _prefill(self, prompts: list[str]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The cache of every prompt but its last token, which the first decode step reads.

        The prompts of a batch share their opening (the chat template and the system
        message, which on short texts is most of the prompt), so it is prefilled
        once and its cache copied to every prompt; only the rest of each
        prompt is prefilled per row, left-padded after the shared part. Returns the
        cache, each prompt's last token, the attention mask over the cache and that
        token, and the token's position.
        """
        token_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        shared = _shared_prefix_length(token_ids)
        cache = DynamicCache(config=self.model.config)
        if shared:
            self._backbone(input_ids=torch.tensor([token_ids[0][:shared]], device=self.device), cache=cache, use_cache=True)
            cache.batch_repeat_interleave(len(prompts))
        rests = [ids[shared:] for ids in token_ids]
        width = max(map(len, rests))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(rest)) + rest for rest in rests], device=self.device)
        mask = torch.tensor([[1] * shared + [0] * (width - len(rest)) + [1] * len(rest) for rest in rests], device=self.device)
        positions = ((mask.cumsum(-1) - 1).masked_fill(mask == 0, 1))[:, shared:]
        if width > 1:
            self._backbone(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], cache=cache,
                           use_cache=True)
        return cache, ids[:, -1], mask, positions[:, -1]


class VLLMDecoder:
    """Decoding through vLLM, with the round's LoRA adapter served as a LoRA request.

    The adapter is not merged: vLLM applies it per request, so a new round's
    adapter needs no new copy of the weights. Generation stops at a line break
    as in the torch path. Only part of the GPU is claimed, because the
    embedding model and the trainers share it within a run.
    """

    def __init__(self, llm: str, adapter_dir: str | Path | None, *, cache_dir: str | None, device: torch.device,
                 dtype: torch.dtype, trust_remote_code: bool, gpu_memory_utilization: float = 0.5):
        from vllm import LLM

        self.tokenizer = models.load_tokenizer(llm, cache_dir=cache_dir, trust_remote_code=trust_remote_code)
        self.lora = None
        lora_rank = None
        if adapter_dir is not None:
            from vllm.lora.request import LoRARequest

            lora_rank = int(read_json(Path(adapter_dir) / "adapter_config.json")["r"])
            self.lora = LoRARequest("round-adapter", 1, str(adapter_dir))
        self.llm = LLM(
            model=models.resolve_llm_path(llm, cache_dir), dtype=str(dtype).replace("torch.", ""), trust_remote_code=trust_remote_code,
            enable_lora=adapter_dir is not None, max_lora_rank=max(lora_rank or 16, 16),
            gpu_memory_utilization=gpu_memory_utilization,
        )

    def decode(self, prompts: list[str], sampling: SamplingConfig, seed: int) -> tuple[list[list[str]], int]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.samples, temperature=sampling.temperature, top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens, stop=["\n"], seed=seed,
        )
        outputs = self.llm.generate(prompts, params, lora_request=self.lora, use_tqdm=False)
        answers = [[choice.text for choice in out.outputs] for out in outputs]
        produced = sum(len(choice.token_ids) for out in outputs for choice in out.outputs)
        return answers, produced


def _reseeded(sampling: SamplingConfig) -> SamplingConfig:
    from dataclasses import replace

    return replace(sampling, seed=sampling.seed + 7919)
