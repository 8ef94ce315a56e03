"""Step 5: the preference step. TRL's DPOTrainer teaches the LLM the chosen answers.

LoRA (PEFT) on all linear layers; the adapter of the previous round carries
over and keeps training; the reference is always the base model without any
adapter, so every round is anchored to the original LLM and drift cannot
compound. That reference is the trained model itself with its adapter switched
off (TRL's way for a new adapter); the previous round's adapter is loaded into
the new one's weights, so no second copy of the LLM is held.

The matrix products run in bf16 under autocast where the hardware multiplies
bf16 natively, as TRL's own defaults do (faster per pair than fp32 at equal reward
accuracy, docs/results/speed.md, DPO). The frozen weight matrices (the linear layers
LoRA wraps, the embedding tied to the output layer) are then kept in bf16 as stored,
so autocast does not cast them at every forward and they take half the memory; the
LoRA update and the norms stay fp32, and the embedding's output is cast to fp32, so
the residual stream and the optimiser's small steps keep full precision (a model
wholly in bf16 barely moved the loss).

The loss is plain sigmoid DPO by default. docs/method.md saw plain DPO drift into
echoing the input and added an NLL (SFT) term on the chosen answer; here the
selection rules already keep copies and prompt leaks out of the chosen answers,
and with short phrases the SFT term sharpened Qwen2.5-Coder-0.5B into fewer,
shorter answers (Bank77: distinct share fell by a quarter), while plain DPO
kept them varied (docs/results/bank77.md). ``sft_weight`` brings the term back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from . import models
from .config import CoEvoConfig
from .models import preferred_dtype
from .prompts import chat_messages, cut_to_tokens
from .selection import PreferencePair


@dataclass(frozen=True)
class DPOSettings:
    """The DPO step's settings; the method's defaults are ``CoEvoConfig``'s ``dpo_*``/``lora_*`` fields, the
    rest are how TRL is driven here."""

    learning_rate: float = CoEvoConfig.dpo_learning_rate
    beta: float = CoEvoConfig.dpo_beta
    sft_weight: float = CoEvoConfig.dpo_sft_weight
    batch_size: int = CoEvoConfig.dpo_batch_size
    epochs: float = CoEvoConfig.dpo_epochs
    lora_r: int = CoEvoConfig.lora_r
    lora_alpha: int = CoEvoConfig.lora_alpha
    max_length: int = 256  # prompt + answer tokens; our prompts are short texts
    # Activation checkpointing (TRL's default too): at batch 4 the activations are the
    # largest part of the step's memory, about 1.1 GB of the 0.5B model's 4.1 GB peak,
    # and recomputing them costs about 14% of the step's time (docs/results/speed.md,
    # DPO); a round that fits a laptop is worth more than that time.
    gradient_checkpointing: bool = True
    precompute_ref_log_probs: bool = False
    # Score only the answer tokens over the vocabulary, as TRL does on GPUs (``answer_positions_only``):
    # the prompt is about nine tokens in ten of each sequence.
    answer_positions_only: bool = True
    # Autocast only where the hardware multiplies bf16 natively (the same test as
    # generation's dtype); elsewhere training is plain fp32.
    bf16: bool = True
    seed: int = 0
    # Save the trainer's whole state (adapter, optimiser, data order, step) this many times over
    # the training, so that an interrupted step resumes from its last save instead of from
    # nothing: the 1.5B LLM's DPO step takes hours in float32 on two cores. A save of the
    # 0.5B's adapter and optimiser is about 100 MB and a fraction of a second; 0 turns it off.
    checkpoints: int = 10


def preference_records(
    texts: list[str], pairs: list[PreferencePair], task: str, instruction: str | None
) -> list[dict]:
    """TRL's conversational preference format: a chat prompt, and one-message answers."""
    return [
        {
            "prompt": chat_messages(texts[p.text_index], task, instruction),
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]


def autocast_bf16(settings: DPOSettings, device: torch.device) -> bool:
    """Whether training runs its matrix products in bf16: asked for, and native on ``device``."""
    return settings.bf16 and preferred_dtype(device) is torch.bfloat16


def fit_prompts(records: list[dict], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """Shorten the text inside each prompt so that prompt and answer fit in ``max_length`` tokens.

    TRL truncates the joined prompt + answer from the end, so a long text would
    lose the answer and leave its pair nothing to learn from; cutting the text
    instead keeps the answer whole. Returns the records and how many were cut.
    """
    def n_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def with_text(record: dict, text: str) -> dict:
        return {**record, "prompt": record["prompt"][:-1] + [{**record["prompt"][-1], "content": text}]}

    fitted, cut = [], 0
    for record in records:
        # a text longer than the whole budget can never fit: cut it first, which also spares
        # tokenising all of a huge one below
        text, was_cut = cut_to_tokens(record["prompt"][-1]["content"], tokenizer, max_length)
        prompt = tokenizer.apply_chat_template(with_text(record, text)["prompt"], add_generation_prompt=True, tokenize=False)
        # the answer's own tokens plus the template's end-of-turn tokens, with a margin
        # for the text re-tokenising differently at the cut
        answer = max(n_tokens(record[side][0]["content"]) for side in ("chosen", "rejected")) + 8
        excess = n_tokens(prompt) + answer - max_length
        if excess > 0:
            text, _ = cut_to_tokens(text, tokenizer, max(n_tokens(text) - excess, 0))
            was_cut = True
        if was_cut:
            record = with_text(record, text)
            cut += 1
        fitted.append(record)
    return fitted, cut


def train_dpo(
    llm: str,
    records: list[dict],
    output_dir: str | Path,
    *,
    settings: DPOSettings = DPOSettings(),
    previous_adapter: str | Path | None = None,
    cache_dir: str | None = None,
    trust_remote_code: bool = False,
    progress: bool = True,
) -> dict:
    """Train (or continue) the LoRA adapter on ``records``; save it to ``output_dir``.

    Returns the training figures the run logs: first and last loss, reward
    accuracy and margin, the log-probability of the chosen answers, time, and
    how many prompts ``fit_prompts`` had to shorten.
    """
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    output_dir = Path(output_dir)
    checkpoint = _resume_point(output_dir, _inputs_digest(llm, records, settings, previous_adapter))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(settings.seed)
    bf16 = autocast_bf16(settings, device)
    model, tokenizer = models.load_llm(llm, cache_dir=cache_dir, dtype=torch.bfloat16 if bf16 else torch.float32,
                                       trust_remote_code=trust_remote_code)
    if bf16:
        _float32_except_frozen_matrices(model)
    records, shortened = fit_prompts(records, tokenizer, settings.max_length)
    peft_config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    args = DPOConfig(
        output_dir=str(output_dir / "_trainer"),
        per_device_train_batch_size=settings.batch_size,
        num_train_epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        beta=settings.beta,
        loss_type=["sigmoid", "sft"] if settings.sft_weight > 0 else ["sigmoid"],
        loss_weights=[1.0, settings.sft_weight] if settings.sft_weight > 0 else None,
        max_length=settings.max_length,
        gradient_checkpointing=settings.gradient_checkpointing,
        precompute_ref_log_probs=settings.precompute_ref_log_probs,
        logging_steps=1,
        save_strategy="steps" if settings.checkpoints else "no",
        save_steps=_save_every(len(records), settings),
        save_total_limit=1,
        report_to=[],
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=bf16,
        use_cpu=device.type == "cpu",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )
    logging.getLogger("trl").setLevel(logging.ERROR)
    # Building the trainer tokenizes the pairs, wraps the model and, with
    # precompute_ref_log_probs, runs the reference model over every pair: that
    # part of the cost is timed apart from training, so both can be reported.
    started = time.perf_counter()
    scoring = answer_positions_only() if settings.answer_positions_only else contextlib.nullcontext()
    with scoring:
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(records),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        if previous_adapter is not None:
            _continue_adapter(trainer.model, Path(previous_adapter))
        if not progress:
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # it prints every log line when bars are off
        built = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        seconds = time.perf_counter() - built
    trainer.model.save_pretrained(str(output_dir))
    _drop_saves(output_dir)
    history = [h for h in trainer.state.log_history if "loss" in h]  # a resumed trainer has the saved part's too
    del trainer, model
    resumed_at = _save_step(checkpoint) if checkpoint else 0
    return {**_summarise(history, seconds, len(records), setup_seconds=built - started, resumed_at=resumed_at),
            "shortened_prompts": shortened, "device": device.type, "bf16": bf16}


_INPUTS_STAMP = "trainer-inputs.sha256"


def _inputs_digest(llm: str, records: list[dict], settings: DPOSettings, previous_adapter: str | Path | None) -> str:
    """What a saved trainer state was trained from: the LLM's and the previous adapter's weights
    (as the generation cache fingerprints them), the pairs and the settings. A save is resumed
    only when all of them are the same."""
    adapter = models.model_fingerprint(str(previous_adapter)) if previous_adapter is not None else None
    inputs = [models.model_fingerprint(llm), adapter, records, dataclasses.asdict(settings)]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _resume_point(output_dir: Path, digest: str) -> Path | None:
    """The last whole trainer save in ``output_dir`` made from the same inputs, or None.

    Saves made from other inputs (another round's pairs, other settings) are deleted and the
    training starts afresh; the inputs' digest is written for the next try. A save is whole
    once its trainer state, which the trainer writes last, reads back.
    """
    stamp = output_dir / _INPUTS_STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        saves = sorted(output_dir.glob("_trainer/checkpoint-*"), key=_save_step, reverse=True)
        for save in saves:
            try:
                state = json.loads((save / "trainer_state.json").read_text())
            except (OSError, ValueError):
                continue
            if state.get("global_step") == _save_step(save):
                return save
    _drop_saves(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    return None


def _save_step(save: Path) -> int:
    """The optimiser step a trainer save was made at, from its folder's name (``checkpoint-<step>``)."""
    return int(save.name.split("-")[-1])


def _drop_saves(output_dir: Path) -> None:
    """Delete the trainer's saves and their inputs' digest, and nothing else of ``output_dir``."""
    shutil.rmtree(output_dir / "_trainer", ignore_errors=True)
    (output_dir / _INPUTS_STAMP).unlink(missing_ok=True)


def _save_every(n_records: int, settings: DPOSettings) -> int:
    """Optimiser steps between two trainer saves, for about ``settings.checkpoints`` of them."""
    steps = math.ceil(math.ceil(n_records / settings.batch_size) * settings.epochs)
    return max(1, math.ceil(steps / max(settings.checkpoints, 1)))


@contextlib.contextmanager
def answer_positions_only() -> Iterator[bool]:
    """Have TRL's fused LM head project only the answer positions onto the vocabulary, on a CPU too.

    DPO needs the log-probabilities of the answer tokens alone. TRL's head projects every
    position and zeroes the prompt's where Triton is absent, so that Neuron compiles one tile
    shape for every batch; a CPU compiles nothing, and there the prompt's positions (about nine
    in ten of ours) cost the 152k-token projection and its backward for values thrown away.
    Where Triton runs, TRL already selects the answer positions with the same torch indexing
    used here, so the log-probabilities are the same either way (tests/test_training.py).

    TRL decides this with one private test, ``trl.trainer.utils._use_triton``, read only there;
    it is answered yes for CPUs and GPUs while the trainer is built and trains, and restored
    after. Yields whether it could be applied: with a TRL that no longer has the test, nothing
    is changed and training runs TRL's own way.
    """
    from trl.trainer import utils as trl_utils

    decide = getattr(trl_utils, "_use_triton", None)
    if decide is None:
        yield False
        return
    trl_utils._use_triton = lambda device: device.type in ("cpu", "cuda", "xpu") or decide(device)
    try:
        yield True
    finally:
        trl_utils._use_triton = decide


def _float32_except_frozen_matrices(model: torch.nn.Module) -> None:
    """Up-cast norms, biases and the like to fp32; leave the weight matrices (the linear layers
    LoRA wraps, the embedding and output layer) in bf16, with the embedding's output cast to fp32.

    The matrices are frozen and autocast would cast them to bf16 at every forward anyway: kept
    in bf16 they cost half the memory (the 152k-token embedding alone is 0.55 GB in fp32). The
    hook keeps the residual stream in fp32, as in a plain fp32 model, for its precision.
    """
    for module in model.modules():
        matrix = isinstance(module, (torch.nn.Linear, torch.nn.Embedding))
        for name, param in module.named_parameters(recurse=False):
            if param.is_floating_point() and not (matrix and name == "weight"):
                param.data = param.data.float()
    model.get_input_embeddings().register_forward_hook(lambda module, args, output: output.float())


def _continue_adapter(model, previous_adapter: Path) -> None:
    """Load the previous round's adapter weights into the trainer's fresh adapter of the same shape.

    Handing TRL a model that already carries an adapter would make it copy that adapter as the
    reference; a fresh adapter keeps the reference what it should be, the base model, without
    loading the LLM a second time.
    """
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    result = set_peft_model_state_dict(model, load_peft_weights(str(previous_adapter)))
    if result.unexpected_keys:
        raise ValueError(f"{previous_adapter}: adapter weights that do not fit this round's LoRA settings: "
                         f"{result.unexpected_keys[:3]}")


def _summarise(history: list[dict], seconds: float, n_pairs: int, setup_seconds: float = 0.0,
               resumed_at: int = 0) -> dict:
    """The training figures; ``seconds`` timed this process alone, so after a resume at step
    ``resumed_at`` the time per pair is taken over the pairs of the steps it trained."""
    def first_last(key: str) -> tuple[float | None, float | None]:
        values = [h[key] for h in history if key in h and not math.isnan(h[key])]
        return (values[0], values[-1]) if values else (None, None)

    steps = len(history)  # one log line per step
    trained = max(n_pairs * (steps - resumed_at) / steps if steps else n_pairs, 1)
    summary = {"pairs": n_pairs, "steps": steps, "resumed_at_step": resumed_at, "train_seconds": seconds,
               "setup_seconds": setup_seconds, "seconds_per_pair": seconds / trained,
               "seconds_per_pair_with_setup": (seconds + setup_seconds) / trained}
    for key, name in [
        ("loss", "loss"),
        ("rewards/accuracies", "reward_accuracy"),
        ("rewards/margins", "reward_margin"),
        ("logps/chosen", "logp_chosen"),
        ("logps/rejected", "logp_rejected"),
    ]:
        summary[f"{name}_first"], summary[f"{name}_last"] = first_last(key)
    return summary


@torch.no_grad()
def answer_logprobs(model, tokenizer, prompts: list[list[dict]], answers: list[str], batch_size: int = 16) -> list[float]:
    """Summed log-probability of each answer given its chat prompt (for tests and guards)."""
    scores: list[float] = []
    for start in range(0, len(prompts), batch_size):
        seqs, starts = [], []
        for messages, answer in zip(prompts[start : start + batch_size], answers[start : start + batch_size]):
            prefix = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
            prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
            full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
            seqs.append(full_ids)
            starts.append(len(prefix_ids))
        width = max(len(s) for s in seqs)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        for row, (seq, begin) in enumerate(zip(seqs, starts)):
            scores.append(float(logp[row, begin - 1 : len(seq) - 1].sum()))
    return scores
