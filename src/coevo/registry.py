"""Swappable stages: a name -> factory table per kind of stage, so a user can bring their own density
scorer, clusterer or decoder the way BERTopic users pass ``hdbscan_model=``, and a run folder still names
every stage in ``config.json`` (``--resume`` rebuilds a run by name).

>>> from coevo.registry import DENSITY_SCORERS
>>> @DENSITY_SCORERS.register("length")
... def _length(config):                       # the factory gets the run's CoEvoConfig
...     return LengthScorer()                  # anything with .score(interp, owner, text_cluster, n_clusters)
>>> CoEvoConfig(n_clusters=10, density="length")

Registering must happen in the process that runs or resumes the run (import the module
that registers before ``fit`` or ``resume``); the built-in stages are registered by the
modules that define them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import numpy as np

from .errors import CoevoError

if TYPE_CHECKING:
    from .clustering import KMeansResult

T = TypeVar("T")


class DensityScorer(Protocol):
    """Step 3: one score per interpretation, higher for what the embedding model "prefers"."""

    def score(self, interp: np.ndarray, owner: np.ndarray, text_cluster: np.ndarray, n_clusters: int) -> np.ndarray:
        """``interp``: unit vectors, one row an interpretation; ``owner``: the text of each row;
        ``text_cluster``: each text's current cluster. Returns float32 scores, one per row."""


class Clusterer(Protocol):
    """What every clustering of a run calls: the selection's clusters, the round's clusters, predict's centres."""

    def fit(self, x: np.ndarray, n_clusters: int, *, seed: int) -> "KMeansResult":
        """Labels and one centre per cluster (predict assigns new texts to the nearest centre)."""


class Decoder(Protocol):
    """Step 1's engine: raw answers to chat prompts, ``sampling.samples`` a prompt. ``generation.Interpreter``
    does the prompting, cleaning, resampling and caching around it, the same for every decoder.

    Its factory is called as ``factory(llm, adapter_dir, *, cache_dir, device, dtype, trust_remote_code)``.
    """

    tokenizer: object  # the LLM's Hugging Face tokenizer (chat template, token counts)

    def decode(self, prompts: list[str], sampling, seed: int) -> tuple[list[list[str]], int]:
        """Each prompt's answers (stop at the first line break), and the number of tokens produced."""


class Embedder(Protocol):
    """What every embedding of a run calls: sentence-transformers' ``SentenceTransformer`` interface."""

    max_seq_length: int

    def get_embedding_dimension(self) -> int: ...

    def encode(self, sentences: list[str], *, batch_size: int, show_progress_bar: bool, convert_to_numpy: bool,
               normalize_embeddings: bool) -> np.ndarray: ...


class Registry(Generic[T]):
    """Factories of one kind of stage, by name. Density scorers' and clusterers' factories take the run's
    ``CoEvoConfig``; decoders' take the model to load (``Decoder``)."""

    def __init__(self, kind: str, option: str):
        self.kind, self.option = kind, option
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T] | None = None):
        """Add ``factory`` under ``name`` (usable as a decorator). Re-registering a name replaces it."""
        if not name or not isinstance(name, str):
            raise CoevoError(f"{self.kind} registry: a name must be a non-empty string, got {name!r}")

        def add(f: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = f
            return f

        return add if factory is None else add(factory)

    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def check(self, name: str) -> None:
        if name not in self._factories:
            raise CoevoError(f"option --{self.option}: {name!r} is not one of {', '.join(self._factories)} "
                             f"(register your own {self.kind} with coevo.registry before the run)")

    def create(self, name: str, *args, **kwargs) -> T:
        self.check(name)
        return self._factories[name](*args, **kwargs)


DENSITY_SCORERS: Registry[DensityScorer] = Registry("density scorer", "density")
CLUSTERERS: Registry[Clusterer] = Registry("clusterer", "clusterer")
DECODERS: Registry[Decoder] = Registry("decoder", "generation-backend")


def _builtin_decoder(class_name: str) -> Callable[..., Decoder]:
    """The built-in decoders are registered here, not in ``generation``, so that checking a config's
    ``generation_backend`` does not import torch."""

    def make(*args, **kwargs) -> Decoder:
        from . import generation

        return getattr(generation, class_name)(*args, **kwargs)

    return make


DECODERS.register("torch", _builtin_decoder("TorchDecoder"))
DECODERS.register("vllm", _builtin_decoder("VLLMDecoder"))
