"""Step 3: score every interpretation by how much the embedding model "prefers" it.

Three scores, all on unit vectors, all linear in the number of
interpretations (nearest neighbours through faiss):

* ``posterior`` (default): the current clusters are a mixture of von
  Mises-Fisher components centred on the mean interpretation of each cluster;
  an interpretation of text i scores p(c_i | y), the share of the mixture
  density that its own text's cluster claims. The centroid of the text's own
  cluster leaves out the text's own interpretations, so a text cannot vote for
  itself. Measured here to pick cluster-informative answers (docs/method.md step 4).
* ``knn``: mean cosine similarity to the k nearest interpretations of other
  texts. Prefers short generic phrases; kept for comparison.
* ``kde``: a vMF kernel density estimate over the k nearest interpretations of
  other texts, log-scaled.

Each is registered in ``coevo.registry.DENSITY_SCORERS`` under its name; a user's own
scorer is registered the same way and chosen with ``density=<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .clustering import normalize
from .errors import CoevoError
from .registry import DENSITY_SCORERS

if TYPE_CHECKING:
    from .config import CoEvoConfig


def posterior_scores(
    interp: np.ndarray, owner: np.ndarray, text_cluster: np.ndarray, n_clusters: int, *, tau: float = 0.05, chunk: int = 65536
) -> np.ndarray:
    """p(c_owner | y) for each interpretation y under the leave-own-text-out vMF mixture."""
    interp = np.asarray(interp, dtype=np.float32)
    owner = np.asarray(owner)
    own_cluster = np.asarray(text_cluster)[owner]
    sums = np.zeros((n_clusters, interp.shape[1]), dtype=np.float32)
    np.add.at(sums, own_cluster, interp)
    own_sum = np.zeros((int(owner.max()) + 1 if len(owner) else 0, interp.shape[1]), dtype=np.float32)
    np.add.at(own_sum, owner, interp)
    centroids = normalize(sums)
    scores = np.empty(len(interp), dtype=np.float32)
    for start in range(0, len(interp), chunk):
        rows = slice(start, start + chunk)
        sims = interp[rows] @ centroids.T
        loo = normalize(sums[own_cluster[rows]] - own_sum[owner[rows]])  # own cluster without this text
        own_sim = np.einsum("ij,ij->i", interp[rows], loo)
        sims[np.arange(sims.shape[0]), own_cluster[rows]] = own_sim
        logits = sims / tau
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        scores[rows] = weights[np.arange(sims.shape[0]), own_cluster[rows]] / weights.sum(axis=1)
    return scores


def _neighbours_of_other_texts(interp: np.ndarray, owner: np.ndarray, k: int, samples_per_text: int):
    """Similarities to the k nearest interpretations that belong to other texts."""
    import faiss

    x = np.ascontiguousarray(interp, dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    # Ask for enough neighbours that k remain after removing the text's own answers.
    depth = min(len(x), k + samples_per_text)
    sims, ids = index.search(x, depth)
    other = owner[ids] != owner[:, None]
    other &= ids >= 0
    sims = np.where(other, sims, -np.inf)
    order = np.argsort(-sims, axis=1)[:, :k]
    top = np.take_along_axis(sims, order, axis=1)
    return top


def knn_scores(interp: np.ndarray, owner: np.ndarray, *, k: int = 10, samples_per_text: int = 4) -> np.ndarray:
    top = _neighbours_of_other_texts(interp, owner, k, samples_per_text)
    valid = np.isfinite(top)
    return np.where(valid, top, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)


def kde_scores(interp: np.ndarray, owner: np.ndarray, *, k: int = 10, tau: float = 0.05, samples_per_text: int = 4) -> np.ndarray:
    top = _neighbours_of_other_texts(interp, owner, k, samples_per_text)
    logits = np.where(np.isfinite(top), top / tau, -np.inf)
    peak = np.max(logits, axis=1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return (peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1) + 1e-30)).astype(np.float32)


@dataclass(frozen=True)
class PosteriorScorer:
    tau: float = 0.05

    def score(self, interp, owner, text_cluster, n_clusters):
        return posterior_scores(interp, owner, text_cluster, n_clusters, tau=self.tau)


@dataclass(frozen=True)
class KnnScorer:
    k: int = 10
    samples_per_text: int = 4

    def score(self, interp, owner, text_cluster, n_clusters):
        return knn_scores(interp, owner, k=self.k, samples_per_text=self.samples_per_text)


@dataclass(frozen=True)
class KdeScorer:
    k: int = 10
    tau: float = 0.05
    samples_per_text: int = 4

    def score(self, interp, owner, text_cluster, n_clusters):
        return kde_scores(interp, owner, k=self.k, tau=self.tau, samples_per_text=self.samples_per_text)


DENSITY_SCORERS.register("posterior", lambda config: PosteriorScorer(config.tau))
DENSITY_SCORERS.register("knn", lambda config: KnnScorer(config.k_neighbors, config.samples))
DENSITY_SCORERS.register("kde", lambda config: KdeScorer(config.k_neighbors, config.tau, config.samples))


def density_scores(config: "CoEvoConfig", interp: np.ndarray, owner: np.ndarray, text_cluster: np.ndarray,
                   n_clusters: int) -> np.ndarray:
    """The run's density scorer (``config.density``, looked up in ``DENSITY_SCORERS``) on these interpretations;
    a scorer that returns the wrong number of scores is stopped here, not deep in the selection."""
    if len(interp) == 0:
        return np.zeros(0, dtype=np.float32)
    scores = np.asarray(DENSITY_SCORERS.create(config.density, config).score(interp, owner, text_cluster, n_clusters),
                        dtype=np.float32)
    if scores.shape != (len(interp),) or not np.all(np.isfinite(scores)):
        raise CoevoError(f"density scorer {config.density!r}: expected {len(interp)} finite scores, one per "
                         f"interpretation, got shape {scores.shape}")
    return scores
