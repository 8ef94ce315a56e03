"""Step 6: the contrastive step. The embedding model learns that a text and its chosen
interpretation belong together (sentence-transformers, MultipleNegativesRankingLoss).

Other pairs of the batch are the negatives (InfoNCE), so a batch must not hold
the same text or answer twice: the NO_DUPLICATES sampler sees to that. Where the
classes are few (a 10-domain set holds about three texts of each class in a batch
of 32), most of those negatives share the anchor's class and MNRL pushes them
apart; ``loss="gist"`` uses GISTEmbedLoss with the frozen base embedder as its
guide, which drops every in-batch negative the guide finds closer to the anchor
than its positive. Pulling
a text towards a cluster-informative interpretation of it moves texts of one
cluster together, which is what clustering then reads from f(x).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .clustering import clip_for_embedder
from .config import CoEvoConfig


@dataclass(frozen=True)
class ContrastiveSettings:
    """The contrastive step's settings; the defaults are ``CoEvoConfig``'s ``contrastive_*`` fields."""

    batch_size: int = CoEvoConfig.contrastive_batch_size
    learning_rate: float = CoEvoConfig.contrastive_learning_rate
    epochs: float = CoEvoConfig.contrastive_epochs
    seed: int = CoEvoConfig.seed
    loss: str = CoEvoConfig.contrastive_loss  # "gist" needs a guide model

    @classmethod
    def from_config(cls, config: CoEvoConfig, seed: int) -> "ContrastiveSettings":
        """A round's settings: the config's ``contrastive_*`` fields and the round's own seed."""
        return cls(config.contrastive_batch_size, config.contrastive_learning_rate, config.contrastive_epochs, seed,
                   config.contrastive_loss)


def train_contrastive(
    embedder,
    anchors: list[str],
    positives: list[str],
    output_dir: str | Path,
    *,
    settings: ContrastiveSettings = ContrastiveSettings(),
    guide=None,
    progress: bool = True,
) -> dict:
    """Fine-tune ``embedder`` in place on (anchor, positive) pairs and save it to ``output_dir``.

    ``guide`` is the frozen model GISTEmbedLoss asks which negatives are false ones (``settings.loss == "gist"``).
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss, MultipleNegativesRankingLoss

    output_dir = Path(output_dir)
    torch.manual_seed(settings.seed)
    dataset = Dataset.from_dict({"anchor": clip_for_embedder(embedder, anchors), "positive": positives})
    batch_size = min(settings.batch_size, len(anchors))
    steps = math.ceil(math.ceil(len(anchors) / batch_size) * settings.epochs)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / "_trainer"),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=settings.learning_rate,
        # a tenth of the steps warms up (a float below 1 is a share); a round whose pairs fit in one step takes
        # none, since the linear warmup's first step has a learning rate of 0 and it would train nothing
        warmup_steps=0.0 if steps <= 1 else 0.1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    if settings.loss == "gist":
        if guide is None:
            raise ValueError("the gist loss needs a guide model")
        for parameter in guide.parameters():
            parameter.requires_grad_(False)
        loss = GISTEmbedLoss(embedder, guide)
    else:
        loss = MultipleNegativesRankingLoss(embedder)
    trainer = SentenceTransformerTrainer(model=embedder, args=args, train_dataset=dataset, loss=loss)
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log line when bars are off
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    embedder.save(str(output_dir))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "pairs": len(anchors),
        "steps": len(losses),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "train_seconds": seconds,
        "pairs_per_second": len(anchors) / seconds if seconds else None,
    }
