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
from typing import TYPE_CHECKING

import numpy as np

from .errors import CoevoError
from .prompts import CHARS_PER_TOKEN
from .registry import CLUSTERERS

if TYPE_CHECKING:
    from .config import CoEvoConfig

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
    sums, counts = _sum_by_owner(vectors, owner, n_owners, np.float32)
    return normalize(sums), counts


def _sum_by_owner(vectors: np.ndarray, owner: np.ndarray, n_owners: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    sums = np.zeros((n_owners, vectors.shape[1]), dtype=dtype)
    np.add.at(sums, owner, vectors)
    return sums, np.bincount(owner, minlength=n_owners)


def answer_agreement(interp_vectors: np.ndarray, owner: np.ndarray, n_owners: int) -> np.ndarray:
    """How much each text's interpretations agree: the mean cosine between its answers, two by two.

    Why: a text whose M sampled answers say the same thing was read the same way every time,
    so its interpretations are evidence; answers that scatter say the LLM was unsure, and the
    text should speak for itself. From the sum s of m unit vectors, the mean over pairs is
    (|s|^2 - m) / (m (m - 1)). Texts with fewer than two answers get NaN (nothing to agree).
    """
    sums, counts = _sum_by_owner(interp_vectors, owner, n_owners, np.float64)
    m = counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = ((sums**2).sum(axis=1) - m) / (m * (m - 1))
    return np.where(m >= 2, np.clip(agreement, 0.0, 1.0), np.nan)


def agreement_weights(interp_vectors: np.ndarray, owner: np.ndarray, n_owners: int, weight: float,
                      mean_agreement: float | None = None) -> tuple[np.ndarray, float]:
    """Per-text weights of the interpretation mean (``represent agreement``) and the mean agreement they
    are scaled by: each text weighs its interpretations in proportion to how much its answers agree
    (:func:`answer_agreement`), and a text of mean agreement gets ``weight``, so the weights average
    ``weight`` over the texts they were fitted on. New texts pass the fitted texts' ``mean_agreement``,
    so a text's weight does not depend on the texts it is predicted with. A text without a measurable
    agreement gets ``weight``."""
    agreement = answer_agreement(interp_vectors, owner, n_owners)
    if mean_agreement is None:
        measured = agreement[~np.isnan(agreement)]
        mean_agreement = float(measured.mean()) if len(measured) else 0.0
    if not mean_agreement > 0:
        return np.full(n_owners, weight, dtype=np.float32), mean_agreement
    weights = np.where(np.isnan(agreement), weight, weight * agreement / mean_agreement)
    return weights.astype(np.float32), mean_agreement


def interpretation_weights(weighting: dict, interp_vectors: np.ndarray, owner: np.ndarray,
                           n_owners: int) -> tuple[float | np.ndarray, dict]:
    """The weight of each text's interpretation mean under a cluster step's ``weighting`` (as cluster.json
    records it), and the weighting to record. Why one function: the fit and predict must weigh texts
    alike. ``interp_weight`` alone weighs every text the same; with ``mean_agreement``
    (``represent agreement``) each text's weight follows its answers' agreement
    (:func:`agreement_weights`), and a ``mean_agreement`` of None is measured on these texts."""
    if "mean_agreement" not in weighting:
        return weighting["interp_weight"], weighting
    weights, mean_agreement = agreement_weights(interp_vectors, owner, n_owners, weighting["interp_weight"],
                                                weighting["mean_agreement"])
    return weights, {**weighting, "mean_agreement": mean_agreement}


def represent(text_vectors: np.ndarray, interp_mean: np.ndarray | None, counts: np.ndarray | None = None, *,
              weight: float | np.ndarray = 1.0) -> np.ndarray:
    """z = normalise(f(x) + weight * mean f(y)), with one weight for all texts or one per text;
    a text without interpretations keeps f(x)."""
    w = np.asarray(weight, dtype=np.float32)
    if interp_mean is None or not w.any():
        return normalize(text_vectors)
    joint = text_vectors + (w[:, None] if w.ndim else w) * interp_mean
    if counts is not None:
        joint = np.where((counts > 0)[:, None], joint, text_vectors)
    return normalize(joint)


@dataclass
class KMeansResult:
    labels: np.ndarray
    centroids: np.ndarray  # unit length
    inertia: float
    backend: str
    centers: np.ndarray | None = None  # as KMeans left them: each label is the nearest of these (Euclidean)


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
    return KMeansResult(labels=labels, centroids=normalize(centroids), inertia=inertia, backend=backend,
                        centers=np.asarray(centroids, dtype=np.float32))


@dataclass(frozen=True)
class KMeansClusterer:
    """The built-in clusterer (``clusterer="kmeans"``): :func:`kmeans` with the run's restarts."""

    n_init: int = 50
    backend: str = "auto"

    def fit(self, x: np.ndarray, n_clusters: int, *, seed: int) -> KMeansResult:
        return kmeans(x, n_clusters, seed=seed, n_init=self.n_init, backend=self.backend)


CLUSTERERS.register("kmeans", lambda config: KMeansClusterer(config.kmeans_init))


def cluster(config: "CoEvoConfig", x: np.ndarray, n_clusters: int, *, seed: int) -> KMeansResult:
    """Every clustering a run makes (the selection's, each round's, recluster's), with the run's clusterer
    (``config.clusterer``, looked up in ``CLUSTERERS``); a result that does not label every row is stopped here."""
    result = CLUSTERERS.create(config.clusterer, config).fit(x, n_clusters, seed=seed)
    labels = np.asarray(result.labels)
    if labels.shape != (len(x),) or (len(x) and (labels.min() < 0 or labels.max() >= len(result.centroids))):
        raise CoevoError(f"clusterer {config.clusterer!r}: expected one label per row in 0..{len(result.centroids) - 1}, "
                         f"got shape {labels.shape}")
    return result


CRITERIA: tuple[str, ...] = ("stability", "silhouette", "consensus")
"""The label-free scores :func:`interp_weight_criteria` can compute."""


def interp_weight_criteria(text_vectors: np.ndarray, interp_mean: np.ndarray, counts: np.ndarray, n_clusters: int,
                           weights, *, seed: int, criteria: tuple[str, ...] = CRITERIA, n_init: int = 5, n_pairs: int = 5,
                           share: float = 0.8) -> list[dict]:
    """Label-free scores of the representation ``represent(..., weight=w)`` for each w in ``weights``.

    ``stability``: mean ARI between KMeans runs on two random ``share`` subsamples, on the texts
    both hold (the resampling stability of Ben-Hur et al. and Lange et al.): a weight at which
    the clusters are a property of the data rather than of the sample scores high.
    ``silhouette``: cosine silhouette of a KMeans clustering in that space.
    ``consensus``: mean NMI of that clustering with the text-only and the interpretation-only
    clusterings: how well it reconciles the two views.
    Only the named ``criteria`` are computed: each costs several KMeans fits per weight.
    """
    from sklearn.metrics import normalized_mutual_info_score, silhouette_score

    unknown = set(criteria) - set(CRITERIA)
    if unknown:
        raise ValueError(f"unknown criteria {sorted(unknown)}; known: {', '.join(CRITERIA)}")
    subsets = subsample_pairs(len(text_vectors), seed=seed, n_pairs=n_pairs, share=share)
    if "consensus" in criteria:
        text_only = kmeans(normalize(text_vectors), n_clusters, seed=seed, n_init=n_init).labels
        has = counts > 0
        interp_only = kmeans(np.where(has[:, None], interp_mean, text_vectors), n_clusters, seed=seed, n_init=n_init).labels
    out = []
    for w in weights:
        z = represent(text_vectors, interp_mean, counts, weight=w)
        point = {}
        if "stability" in criteria:
            point["stability"] = float(np.mean(stability_aris(z, n_clusters, subsets, seed=seed, n_init=n_init)))
        if "silhouette" in criteria or "consensus" in criteria:
            labels = kmeans(z, n_clusters, seed=seed, n_init=n_init).labels
            if "silhouette" in criteria:
                point["silhouette"] = float(silhouette_score(z, labels, metric="cosine"))
            if "consensus" in criteria:
                point["consensus"] = float((normalized_mutual_info_score(text_only, labels)
                                            + normalized_mutual_info_score(interp_only, labels)) / 2)
        out.append(point)
    return out


def seeded_sample(n: int, limit: int, *, seed: int) -> np.ndarray:
    """All ``n`` indices, or a seeded sample of ``limit`` of them (sorted) when there are more: what keeps a
    label-free test that costs more than linearly in the texts bounded on large runs."""
    return np.arange(n) if n <= limit else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def subsample_pairs(n: int, *, seed: int, n_pairs: int, share: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_pairs`` pairs of seeded random subsamples, each of ``share`` of the ``n`` texts (sorted indices)."""
    rng = np.random.default_rng(seed)
    size = int(share * n)
    return [(np.sort(rng.choice(n, size, replace=False)), np.sort(rng.choice(n, size, replace=False)))
            for _ in range(n_pairs)]


def stability_aris(x: np.ndarray, n_clusters: int, subsets, *, seed: int, n_init: int) -> np.ndarray:
    """For each pair of subsamples, the ARI between KMeans on one and on the other, on the texts both hold
    (the resampling stability of Ben-Hur et al. and Lange et al.). Two representations measured on the
    same ``subsets`` and ``seed`` are paired: their difference, pair by pair, holds no subsampling noise
    of its own."""
    from sklearn.metrics import adjusted_rand_score

    aris = []
    for j, (a, b) in enumerate(subsets):
        la = kmeans(x[a], n_clusters, seed=seed + 1 + j, n_init=n_init).labels
        lb = kmeans(x[b], n_clusters, seed=seed + 101 + j, n_init=n_init).labels
        _, ia, ib = np.intersect1d(a, b, return_indices=True)
        aris.append(adjusted_rand_score(la[ia], lb[ib]))
    return np.asarray(aris)


GATE_PAIRS = 10  # subsample pairs of the gate's test
GATE_MARGIN = 1.0  # standard errors by which the join's stability must lead the text's
GATE_TEXTS = 5000  # the test runs on a seeded sample of at most this many texts (its cost stays bounded)


def gate_interp_weight(text_vectors: np.ndarray, interp_mean: np.ndarray, counts: np.ndarray, n_clusters: int,
                       weight: float, *, seed: int, n_init: int = 5) -> tuple[float, dict]:
    """``weight``, or 0 (the text alone) unless the join's clusters are clearly more reproducible than the text's.

    Why: where the interpretations are poor (Biomedical) or the text alone already separates the
    classes, joining them costs ACC, and no fixed weight avoids it without losing the sets they
    lift. Where the interpretations carry what the text lacks, they also make the clusters sharper:
    of the nine runs of docs/results/represent-design-cpu.md that the join lifted by more than two
    points, it made eight more reproducible. So the join must earn its place: both
    representations are clustered on the same subsample pairs, and the join is kept only when its
    mean ARI leads the text's by more than ``GATE_MARGIN`` standard errors of the pair-by-pair
    differences. No labels are read.
    """
    pool, subsets = gate_subsamples(len(text_vectors), seed=seed)
    text = stability_aris(normalize(text_vectors[pool]), n_clusters, subsets, seed=seed, n_init=n_init)
    joined = stability_aris(represent(text_vectors[pool], interp_mean[pool], counts[pool], weight=weight), n_clusters,
                            subsets, seed=seed, n_init=n_init)
    join_earns, lead = clearly_leads(joined, text)
    return (weight if join_earns else 0.0), {"text_stability": float(text.mean()), "joined_stability": float(joined.mean()),
                                             **lead}


def gate_subsamples(n: int, *, seed: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The gate test's seeded sample of at most ``GATE_TEXTS`` of ``n`` texts and its subsample pairs (indices
    into the sample): every representation ``clearly_leads`` compares is clustered on these, only the sampled
    rows built, so the test's cost and memory stay bounded on large runs."""
    pool = seeded_sample(n, GATE_TEXTS, seed=seed)
    return pool, subsample_pairs(len(pool), seed=seed, n_pairs=GATE_PAIRS, share=0.8)


def clearly_leads(leader: np.ndarray, other: np.ndarray) -> tuple[bool, dict]:
    """Whether ``leader``'s stabilities (one ARI per subsample pair) lead ``other``'s, measured on the same
    pairs, by more than ``GATE_MARGIN`` standard errors of the pair-by-pair differences; and the lead and
    its standard error. The gate's test, for any two representations."""
    lead = leader - other
    spread = float(lead.std(ddof=1) / np.sqrt(len(lead)))
    return bool(lead.mean() > GATE_MARGIN * spread), {"lead": float(lead.mean()), "lead_se": spread}


INTERP_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
"""The weights ``represent="auto"`` chooses from (docs/results/represent-levers.md measured them)."""

AUTO_CRITERION = "stability"


def choose_interp_weight(text_vectors: np.ndarray, interp_mean: np.ndarray, counts: np.ndarray, n_clusters: int, *,
                         seed: int) -> tuple[float, list[dict]]:
    """The weight of the interpretation mean that the label-free criterion scores highest, and the curve.

    Why: how much the interpretations should count differs by dataset (they lift the entity and
    relation sets and blur the domain sets), and no fixed weight suits all; a tie goes to the
    smaller weight, so the text decides when the interpretations add nothing measurable.
    """
    curve = interp_weight_criteria(text_vectors, interp_mean, counts, n_clusters, INTERP_WEIGHTS, seed=seed,
                                   criteria=(AUTO_CRITERION,))
    for w, point in zip(INTERP_WEIGHTS, curve):
        point["weight"] = w
    best = max(curve, key=lambda point: (round(point[AUTO_CRITERION], 6), -point["weight"]))
    return best["weight"], curve


K_CRITERIA: tuple[str, ...] = ("silhouette", "calinski_harabasz", "davies_bouldin")
"""The label-free scores of a K that :func:`n_clusters_curve` can compute (scikit-learn's)."""

AUTO_K_CRITERION = "silhouette"
AUTO_K_POINTS = 20  # K values of the sweep, spaced geometrically
AUTO_K_MAX = 200
AUTO_K_MIN_SIZE = 5  # the largest K of the sweep leaves this many texts a cluster on average
AUTO_K_TEXTS = 3000  # the sweep runs on a seeded sample of at most this many texts
AUTO_K_INIT = 3  # KMeans restarts per K of the sweep


def n_clusters_grid(n: int) -> list[int]:
    """The K values a sweep over ``n`` texts tries: about ``AUTO_K_POINTS`` values from 2 to
    min(``AUTO_K_MAX``, n / ``AUTO_K_MIN_SIZE``), spaced geometrically, since a step from 2 to 4
    clusters matters as much as one from 100 to 200."""
    high = max(2, min(AUTO_K_MAX, n // AUTO_K_MIN_SIZE))
    return sorted({int(k) for k in np.round(np.geomspace(2, high, AUTO_K_POINTS))})


def n_clusters_curve(x: np.ndarray, *, seed: int, criteria: tuple[str, ...] = (AUTO_K_CRITERION,),
                     n_init: int = AUTO_K_INIT) -> tuple[list[dict], int]:
    """Label-free scores of KMeans with each K of :func:`n_clusters_grid`, and how many texts they were computed on.

    Each K is one seeded KMeans (``n_init`` restarts) on the unit rows of ``x``, or on a seeded sample of
    ``AUTO_K_TEXTS`` of them: silhouette costs the square of the texts. ``silhouette`` (cosine, higher
    is better), ``calinski_harabasz`` (higher) and ``davies_bouldin`` (lower) are scikit-learn's.
    """
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    unknown = set(criteria) - set(K_CRITERIA)
    if unknown:
        raise ValueError(f"unknown criteria {sorted(unknown)}; known: {', '.join(K_CRITERIA)}")
    x = normalize(x)[seeded_sample(len(x), AUTO_K_TEXTS, seed=seed)]
    distinct = len(np.unique(x, axis=0))
    scores = {"silhouette": lambda labels: silhouette_score(x, labels, metric="cosine"),
              "calinski_harabasz": lambda labels: calinski_harabasz_score(x, labels),
              "davies_bouldin": lambda labels: davies_bouldin_score(x, labels)}
    curve = []
    for k in n_clusters_grid(len(x)):
        if k >= distinct:  # silhouette needs fewer clusters than points
            break
        labels = kmeans(x, k, seed=seed, n_init=n_init, backend="sklearn").labels
        if len(np.unique(labels)) < 2:
            continue
        curve.append({"k": k, **{name: float(scores[name](labels)) for name in criteria}})
    return curve, len(x)


def choose_n_clusters(x: np.ndarray, *, seed: int) -> dict:
    """K for texts whose base embeddings are the rows of ``x``, chosen without labels: the K of the sweep
    (:func:`n_clusters_curve`) with the highest cosine silhouette, the smaller K on a tie.

    Why silhouette: on the dev half of the benchmark, Calinski-Harabasz picked the smallest K of the
    range and Davies-Bouldin the largest (docs/results/auto-k.md shows both per dataset); in an
    exploration not kept here the gap statistic also took the largest K, and affinity propagation's
    count grew with the number of texts rather than with the classes. Silhouette is the one whose
    choice follows the data; it is still a rough estimate of K (it often settles on a coarser or a
    finer level than the labels), which auto-k.md measures. Returns a dict for the run's record: ``k``, ``criterion``, ``curve`` ([K, score] pairs),
    ``range`` (the smallest and largest K tried) and ``texts`` (how many the sweep read).
    """
    if len(np.unique(normalize(x), axis=0)) < 2:
        raise CoevoError("option -k/--clusters: fewer than 2 distinct texts; there is no K to choose")
    return choice_from_curve(*n_clusters_curve(x, seed=seed))


def choice_from_curve(curve: list[dict], texts: int) -> dict:
    """The record of :func:`choose_n_clusters` from a sweep's curve (bench/auto_k.py reads other criteria off
    the same sweep)."""
    if not curve:  # two distinct texts (or three): two clusters is the only K KMeans and silhouette allow
        return {"k": 2, "criterion": AUTO_K_CRITERION, "curve": [], "range": [2, 2], "texts": texts}
    best = max(curve, key=lambda point: (round(point[AUTO_K_CRITERION], 6), -point["k"]))
    return {"k": best["k"], "criterion": AUTO_K_CRITERION,
            "curve": [[point["k"], point[AUTO_K_CRITERION]] for point in curve],
            "range": [curve[0]["k"], curve[-1]["k"]], "texts": texts}
