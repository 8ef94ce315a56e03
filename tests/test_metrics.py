"""Cluster metrics against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from coevo.metrics import clustering_accuracy, evaluate


def test_perfect_clustering_with_permuted_ids() -> None:
    # Cluster 2 is class 0, cluster 0 is class 1, cluster 1 is class 2: a relabeling only.
    assert clustering_accuracy([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1]) == 1.0


def test_six_points_best_matching() -> None:
    # Contingency (rows = true class, columns = cluster):
    #   class 0: cluster 0 -> 1 (point 2), cluster 1 -> 2 (points 0, 1)
    #   class 1: cluster 0 -> 3,           cluster 1 -> 0
    # Matching 0-0, 1-1 gets 1 + 0 = 1; matching 0-1, 1-0 gets 2 + 3 = 5. Best: 5/6.
    assert clustering_accuracy([0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0]) == pytest.approx(5 / 6)


def test_more_clusters_than_classes() -> None:
    # a: cluster 0 -> 1, cluster 1 -> 1; b: cluster 2 -> 2. Best: a-0 (or a-1) and b-2 = 1 + 2;
    # the third cluster is unmatched, so its point counts as wrong: 3/4.
    assert clustering_accuracy(["a", "a", "b", "b"], [0, 1, 2, 2]) == 0.75


def test_fewer_clusters_than_classes() -> None:
    # a: cluster 0 -> 2; b: cluster 0 -> 2; c: cluster 1 -> 2. Only two clusters to match:
    # a-0 (or b-0) gives 2, c-1 gives 2; the other class is unmatched: 4/6.
    assert clustering_accuracy(list("aabbcc"), [0, 0, 0, 0, 1, 1]) == pytest.approx(4 / 6)


def test_single_cluster() -> None:
    # Everything in one cluster: it matches the biggest class (3 of 5).
    assert clustering_accuracy(list("xxxyy"), [7] * 5) == pytest.approx(3 / 5)


def test_string_labels_on_both_sides() -> None:
    # "cat" -> "k1" (2 of 3), "dog" -> "k2" (2 of 2): 4/5.
    true = ["cat", "cat", "cat", "dog", "dog"]
    pred = ["k1", "k1", "k2", "k2", "k2"]
    assert clustering_accuracy(true, pred) == pytest.approx(4 / 5)


def test_numpy_input() -> None:
    assert clustering_accuracy(np.array([1, 1, 2, 2]), np.array([5, 5, 9, 9])) == 1.0


def test_evaluate_identical_partitions_is_100() -> None:
    scores = evaluate(["a", "a", "b", "c"], [3, 3, 1, 0])
    assert scores == pytest.approx({"acc": 100.0, "nmi": 100.0, "ari": 100.0})
    assert all(isinstance(v, float) for v in scores.values())


def test_evaluate_agrees_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, size=200)
    pred = rng.integers(0, 6, size=200)
    scores = evaluate([f"class{t}" for t in true], pred)
    assert scores["nmi"] == pytest.approx(100 * normalized_mutual_info_score(true, pred))
    assert scores["ari"] == pytest.approx(100 * adjusted_rand_score(true, pred))
    assert scores["acc"] == pytest.approx(100 * clustering_accuracy(true, pred))


def test_evaluate_six_point_case_in_percent() -> None:
    assert evaluate([0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0])["acc"] == pytest.approx(500 / 6)


@pytest.mark.parametrize("func", [clustering_accuracy, evaluate])
def test_length_mismatch_and_empty_raise(func) -> None:
    with pytest.raises(ValueError, match="3 true labels but 2"):
        func([0, 1, 1], [0, 1])
    with pytest.raises(ValueError):
        func([], [])
