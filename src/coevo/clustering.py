"""Step 2 and 7: embed texts and interpretations, build the representation, run KMeans.

KMeans is scikit-learn's below ``FAISS_ABOVE`` points and faiss's above it.
faiss is the faster at every size ``bench/speed.py`` measures, by a wide margin
from 100k points on. Below that scikit-learn takes seconds at most, and its
k-means++ seeding is worth keeping: faiss seeds at random, which on the
benchmark datasets left a higher KMeans objective and, where clusters are
small (CLINC(I): 150 clusters of 30 texts), clearly lower ACC
(docs/results/speed.md, KMeans quality).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .prompts import CHARS_PER_TOKEN

FAISS_ABOVE = 50_000


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def clip_for_embedder(embedder, texts: list[str]) -> list[str]:
    """Texts cut to the characters the embedder can read at most.

    sentence-transformers reads only the first ``max_seq_length`` tokens, but
    tokenises the whole text first: 13 s and 700 MB for a 5 MB text, at every
    embedding. Cutting the characters beyond what that many tokens can span
    changes no embedding unless the tokens average more than
    ``CHARS_PER_TOKEN`` characters.
    """
    limit = getattr(embedder, "max_seq_length", None)
    if not limit:
        return texts
    chars = limit * CHARS_PER_TOKEN
    return [text[:chars] for text in texts]


def embed(embedder, texts: list[str], *, batch_size: int = 128, progress: bool = True, desc: str = "embed") -> np.ndarray:
    """Unit-length float32 embeddings; an empty list gives a (0, d) array."""
    dim = embedder.get_embedding_dimension()
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    vectors = embedder.encode(
        clip_for_embedder(embedder, texts), batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return normalize(vectors)


def mean_by_owner(vectors: np.ndarray, owner: np.ndarray, n_owners: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised mean vector per owner (text) and how many vectors each had."""
    sums = np.zeros((n_owners, vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, owner, vectors)
    counts = np.bincount(owner, minlength=n_owners)
    return normalize(sums), counts


def represent(text_vectors: np.ndarray, interp_mean: np.ndarray | None, counts: np.ndarray | None = None) -> np.ndarray:
    """z = normalise(f(x) + mean f(y)); a text without interpretations keeps f(x)."""
    if interp_mean is None:
        return normalize(text_vectors)
    joint = text_vectors + interp_mean
    if counts is not None:
        joint = np.where((counts > 0)[:, None], joint, text_vectors)
    return normalize(joint)


@dataclass
class KMeansResult:
    labels: np.ndarray
    centroids: np.ndarray  # unit length
    inertia: float
    backend: str


def kmeans(x: np.ndarray, n_clusters: int, *, seed: int, n_init: int, backend: str = "auto") -> KMeansResult:
    """KMeans on unit vectors; the best of ``n_init`` seeded initialisations.

    Restarts are cheap at the benchmark sizes, and K in the tens to hundreds
    leaves many local optima: on most of the 14 benchmark datasets fifty
    restarts gave a higher ACC than five (docs/results/baseline.md has both).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if backend == "auto":
        backend = "faiss" if len(x) > FAISS_ABOVE else "sklearn"
    if backend == "faiss":
        import faiss

        km = faiss.Kmeans(x.shape[1], n_clusters, niter=25, nredo=n_init, seed=seed, verbose=False, spherical=False)
        km.train(x)
        _, labels = km.index.search(x, 1)
        labels = labels[:, 0].astype(np.int64)
        centroids = km.centroids
        inertia = float(km.obj[-1]) if len(km.obj) else float("nan")
    else:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(x)
        labels, centroids, inertia = km.labels_.astype(np.int64), km.cluster_centers_, float(km.inertia_)
    return KMeansResult(labels=labels, centroids=normalize(centroids), inertia=inertia, backend=backend)
