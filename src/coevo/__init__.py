"""coevo: LLM-assisted text clustering by co-evolving an LLM and an embedding model.

>>> from coevo import CoEvoConfig, CoEvolution
>>> model = CoEvolution(CoEvoConfig(n_clusters=10, task="intent")).fit(texts)
>>> model.labels_
"""

from typing import TYPE_CHECKING

from .config import CoEvoConfig
from .errors import CoevoError

if TYPE_CHECKING:
    from .pipeline import CoEvolution

__all__ = ["CoEvoConfig", "CoEvolution", "CoevoError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # CoEvolution pulls in torch and scikit-learn (seconds); importing it on first use keeps
    # `coevo --help` and the light modules (config, bench reports) instant.
    if name == "CoEvolution":
        from .pipeline import CoEvolution

        return CoEvolution
    raise AttributeError(f"module 'coevo' has no attribute {name!r}")
