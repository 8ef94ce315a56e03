"""Swappable stages: a name -> factory table per kind of stage, so a user can bring their own density
scorer or clusterer the way BERTopic users pass ``hdbscan_model=``, and a run folder still names
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
    from .config import CoEvoConfig

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


class Registry(Generic[T]):
    """Factories of one kind of stage, by name; a factory takes the run's ``CoEvoConfig``."""

    def __init__(self, kind: str, option: str):
        self.kind, self.option = kind, option
        self._factories: dict[str, Callable[["CoEvoConfig"], T]] = {}

    def register(self, name: str, factory: Callable[["CoEvoConfig"], T] | None = None):
        """Add ``factory`` under ``name`` (usable as a decorator). Re-registering a name replaces it."""
        if not name or not isinstance(name, str):
            raise CoevoError(f"{self.kind} registry: a name must be a non-empty string, got {name!r}")

        def add(f: Callable[["CoEvoConfig"], T]) -> Callable[["CoEvoConfig"], T]:
            self._factories[name] = f
            return f

        return add if factory is None else add(factory)

    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def check(self, name: str) -> None:
        if name not in self._factories:
            raise CoevoError(f"option --{self.option}: {name!r} is not one of {', '.join(self._factories)} "
                             f"(register your own {self.kind} with coevo.registry before the run)")

    def create(self, name: str, config: "CoEvoConfig") -> T:
        self.check(name)
        return self._factories[name](config)


DENSITY_SCORERS: Registry[DensityScorer] = Registry("density scorer", "density")
CLUSTERERS: Registry[Clusterer] = Registry("clusterer", "clusterer")
