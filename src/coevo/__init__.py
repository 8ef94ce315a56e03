"""coevo: LLM-assisted text clustering by co-evolving an LLM and an embedding model.

>>> from coevo import CoEvoConfig, CoEvolution
>>> model = CoEvolution(CoEvoConfig(n_clusters=10, task="intent")).fit(texts)
>>> model.labels_
"""

from .config import CoEvoConfig
from .errors import CoevoError
from .pipeline import CoEvolution

__all__ = ["CoEvoConfig", "CoEvolution", "CoevoError"]
__version__ = "0.1.0"
