"""Cluster quality against gold labels: ACC, NMI and ARI, as reported in the literature.

Cluster ids are arbitrary, so accuracy first matches clusters to classes one to
one (Hungarian method) and counts the texts that land in their matched class.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def clustering_accuracy(labels_true: Sequence[Hashable], labels_pred: Sequence[Hashable]) -> float:
    """Best one-to-one matching accuracy, in [0, 1].

    With more clusters than classes the unmatched clusters count as wrong; with
    fewer, the unmatched classes do. Labels may be any hashable values.
    """
    true, pred = _encode_pair(labels_true, labels_pred)
    table = np.zeros((true.max() + 1, pred.max() + 1), dtype=np.int64)
    np.add.at(table, (true, pred), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(true))


def evaluate(labels_true: Sequence[Hashable], labels_pred: Sequence[Hashable]) -> dict[str, float]:
    """ACC, NMI and ARI in percent, the scale used by the papers we compare with."""
    true, pred = _encode_pair(labels_true, labels_pred)
    return {
        "acc": 100.0 * clustering_accuracy(true, pred),
        "nmi": 100.0 * float(normalized_mutual_info_score(true, pred)),
        "ari": 100.0 * float(adjusted_rand_score(true, pred)),
    }


def _encode_pair(labels_true: Sequence[Hashable], labels_pred: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    # Integer codes via a dict, so mixed or string labels never reach numpy's sorting.
    labels_true, labels_pred = list(labels_true), list(labels_pred)
    if len(labels_true) != len(labels_pred):
        raise ValueError(f"{len(labels_true)} true labels but {len(labels_pred)} predicted labels")
    if not labels_true:
        raise ValueError("no labels to compare")
    return _encode(labels_true), _encode(labels_pred)


def _encode(labels: list[Hashable]) -> np.ndarray:
    codes: dict[Hashable, int] = {}
    return np.array([codes.setdefault(label, len(codes)) for label in labels], dtype=np.int64)
