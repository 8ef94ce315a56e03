"""Step 6: the contrastive step. The embedding model learns that a text and its chosen
interpretation belong together (sentence-transformers, MultipleNegativesRankingLoss).

Other pairs of the batch are the negatives (InfoNCE), so a batch must not hold the same
text or answer twice (the library's NO_DUPLICATES sampler sees to that, the default). Where
the classes are few (a 10-domain set holds about three texts of each class in a batch of 32),
most of those negatives share the anchor's class and MNRL pushes them apart; the one-per-cluster
batches (``OnePerClusterBatchSampler``) hold at most one text of each cluster instead: of the
select step's (``batches="one-per-cluster"``) or of the previous round's clustering
(``"one-per-previous-cluster"``). The first won on the choosing runs and lost badly on a
domain set of the confirmation half, and used only where K fills a batch it gained too little on the
confirmation sets of many classes to pass its test, so neither is the default. With K clusters below the batch
size its batches hold K pairs and an epoch takes more steps; ``"one-per-cluster-same-steps"``
stops the epoch at the steps the plain batches take, so only the batches' make-up changes; on the
choosing runs that lost most of one-per-cluster's gain, so it is not the default either. ``loss="gist"`` is the
library's other answer, GISTEmbedLoss with the frozen base embedder as guide, which drops
every in-batch negative the guide finds closer to the anchor than its positive. Pulling a
text towards a cluster-informative interpretation of it moves texts of one cluster
together, which is what clustering then reads from f(x).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
    batches: str = CoEvoConfig.contrastive_batches  # all but "no-duplicates" need each pair's cluster

    @classmethod
    def from_config(cls, config: CoEvoConfig, seed: int) -> "ContrastiveSettings":
        """A round's settings: the config's ``contrastive_*`` fields and the round's own seed."""
        return cls(config.contrastive_batch_size, config.contrastive_learning_rate, config.contrastive_epochs, seed,
                   config.contrastive_loss, config.contrastive_batches)


def one_per_cluster_batches(clusters: Sequence[int], values: Sequence[tuple[str, ...]], batch_size: int,
                            seed: int) -> list[list[int]]:
    """Batches of pair indices in which no two pairs share a cluster or a string (anchor or positive).

    Every batch takes the next pair of the clusters with the most pairs left (ties in a random order),
    so the clusters run out together and as few pairs as possible go unused. It stops when the pairs left
    sit in fewer than two clusters: a batch of one pair has no negative for MNRL to learn from. Pairs whose
    strings collide with the batch's wait for a later one.
    """
    rng = np.random.default_rng(seed)
    queues: dict[int, list[int]] = {}
    for index in rng.permutation(len(clusters)).tolist():
        queues.setdefault(int(clusters[index]), []).append(index)
    batches = []
    while True:
        live = [c for c, queue in queues.items() if queue]
        if len(live) < 2:
            return batches
        tiebreak = dict(zip(live, rng.random(len(live)).tolist()))
        batch, seen = [], set()
        for c in sorted(live, key=lambda c: (-len(queues[c]), tiebreak[c])):
            index = queues[c][-1]
            if seen.isdisjoint(values[index]):
                batch.append(queues[c].pop())
                seen.update(values[index])
                if len(batch) == batch_size:
                    break
        if len(batch) < 2:  # every other cluster's next pair repeats a string of this one
            return batches
        batches.append(batch)


class OnePerClusterBatchSampler:
    """A sentence-transformers batch sampler (``batch_sampler=`` of the training arguments, through a callable
    that returns it) that yields ``one_per_cluster_batches``, reshuffled each epoch.

    The library's NO_DUPLICATES sampler keeps identical strings apart; MNRL still takes every other pair of a
    batch as a negative, and where the classes are few most of those share the anchor's class. Here they
    come from other clusters only. The batches are built before the epoch starts, so ``len`` is exact and
    the learning-rate schedule sees the steps it will get.
    """

    def __init__(self, dataset, *, clusters: Sequence[int], batch_size: int, seed: int = 0, max_batches: int | None = None,
                 **_library_kwargs) -> None:
        if len(clusters) != len(dataset):
            raise ValueError(f"{len(clusters)} clusters for {len(dataset)} pairs")
        self.values = [tuple(str(v) for v in row.values()) for row in dataset]
        self.clusters, self.batch_size, self.seed, self.epoch = list(clusters), batch_size, seed, 0
        self.max_batches = max_batches  # an epoch's first batches only: the same-steps variant
        self._built: tuple[int, list[list[int]]] | None = None  # (epoch, its batches): the trainer asks len often

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        if self._built is None or self._built[0] != self.epoch:
            batches = one_per_cluster_batches(self.clusters, self.values, self.batch_size, self.seed + self.epoch)
            self._built = (self.epoch, batches[:self.max_batches])
        return self._built[1]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def _the_sampler(sampler: OnePerClusterBatchSampler, dataset, *, batch_size: int, **_library_kwargs
                 ) -> OnePerClusterBatchSampler:
    """The trainer's ``batch_sampler=`` callable: the sampler train_contrastive built, checked against the ask."""
    if (len(dataset), batch_size) != (len(sampler.clusters), sampler.batch_size):
        raise ValueError(f"the trainer asked for batches of {batch_size} from {len(dataset)} pairs; the sampler "
                         f"was built for {sampler.batch_size} from {len(sampler.clusters)}")
    return sampler


def train_contrastive(
    embedder,
    anchors: list[str],
    positives: list[str],
    output_dir: str | Path,
    *,
    settings: ContrastiveSettings = ContrastiveSettings(),
    guide=None,
    clusters: Sequence[int] | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune ``embedder`` in place on (anchor, positive) pairs and save it to ``output_dir``.

    ``guide`` is the frozen model GISTEmbedLoss asks which negatives are false ones (``settings.loss == "gist"``);
    ``clusters`` holds each pair's cluster, which the one-per-cluster batches (``settings.batches``) keep apart.
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss, MultipleNegativesRankingLoss

    output_dir = Path(output_dir)
    torch.manual_seed(settings.seed)
    dataset = Dataset.from_dict({"anchor": clip_for_embedder(embedder, anchors), "positive": positives})
    batch_size = min(settings.batch_size, len(anchors))
    if settings.batches != "no-duplicates":
        if clusters is None:
            raise ValueError(f"{settings.batches} batches need each pair's cluster")
        # built here, where its length sets the step count, and handed to the trainer as it is: the trainer asks
        # for a sampler of this dataset, batch size and seed, which is this one
        same_steps = math.ceil(len(anchors) / batch_size) if settings.batches == "one-per-cluster-same-steps" else None
        sampler = OnePerClusterBatchSampler(dataset, clusters=clusters, batch_size=batch_size, seed=settings.seed,
                                            max_batches=same_steps)
        batch_sampler = functools.partial(_the_sampler, sampler)
        steps = math.ceil(len(sampler) * settings.epochs)
        if steps == 0:  # every pair in one cluster: no batch has a negative, so the round leaves the embedder as it was
            embedder.save(str(output_dir))
            return {"pairs": len(anchors), "steps": 0, "loss_first": None, "loss_last": None, "train_seconds": 0.0,
                    "pairs_per_second": None}
    else:
        batch_sampler = BatchSamplers.NO_DUPLICATES
        steps = math.ceil(math.ceil(len(anchors) / batch_size) * settings.epochs)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / "_trainer"),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=settings.learning_rate,
        # a tenth of the steps warms up (a float below 1 is a share); a round whose pairs fit in one step takes
        # none, since the linear warmup's first step has a learning rate of 0 and it would train nothing
        warmup_steps=0.0 if steps <= 1 else 0.1,
        batch_sampler=batch_sampler,
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
