"""The method levers of issue 13 on synthetic data: each must do what its rule says, without labels."""

from __future__ import annotations

import numpy as np
import pytest

from coevo.clustering import (agreement_weights, answer_agreement, choose_interp_weight, gate_interp_weight, normalize,
                              represent)
from coevo.guards import answer_cluster_nmi, guard_stats, guard_violations


def _views(text_noise: float, interp_noise: float, n: int = 120, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = normalize(rng.normal(size=(k, 64)))
    truth = np.repeat(np.arange(k), n // k)
    text = normalize(centres[truth] + text_noise * rng.normal(size=(n, 64)))
    interp = normalize(centres[truth] + interp_noise * rng.normal(size=(n, 64)))
    return text, interp, np.full(n, 4)


def test_auto_weight_leans_on_the_text_when_interpretations_are_noise():
    text, _, counts = _views(0.12, 0.0)
    noise = normalize(np.random.default_rng(1).normal(size=text.shape))
    weight, curve = choose_interp_weight(text, noise, counts, 4, seed=0)
    assert weight == 0.0
    assert [p["weight"] for p in curve] == [0.0, 0.25, 0.5, 1.0]


def test_auto_weight_reads_interpretations_that_separate_what_the_text_blurs():
    text, interp, counts = _views(0.5, 0.05)
    weight, _ = choose_interp_weight(text, interp, counts, 4, seed=0)
    assert weight > 0.0


def test_gate_takes_the_text_alone_when_interpretations_group_the_texts_otherwise():
    text, _, counts = _views(0.2, 0.0)
    rng = np.random.default_rng(2)
    other = normalize(rng.normal(size=(5, 64)))  # interpretations that sort the texts into 5 unrelated groups
    misleading = normalize(other[rng.integers(0, 5, len(text))] + 0.1 * rng.normal(size=text.shape))
    weight, test = gate_interp_weight(text, misleading, counts, 4, 1.0, seed=0)
    assert weight == 0.0
    assert test["text_stability"] > test["joined_stability"] and test["lead"] < 0


def test_gate_keeps_interpretations_that_separate_what_the_text_blurs():
    text, interp, counts = _views(0.5, 0.05)
    weight, test = gate_interp_weight(text, interp, counts, 4, 0.5, seed=0)
    assert weight == 0.5
    assert test["lead"] > test["lead_se"]
    assert test["lead"] == pytest.approx(test["joined_stability"] - test["text_stability"])


def test_represent_weight_zero_is_the_text_alone():
    text, interp, counts = _views(0.2, 0.2)
    assert np.allclose(represent(text, interp, counts, weight=0.0), text, atol=1e-6)
    half = represent(text, interp, counts, weight=0.5)
    assert np.allclose(half, normalize(text + 0.5 * interp), atol=1e-6)


def test_consolidated_vocabulary_is_not_a_collapse():
    texts = [f"text {i}" for i in range(40)]
    clusters = [i % 4 for i in range(40)]
    varied = [[f"answer {i} {j}" for j in range(2)] for i in range(40)]
    vocabulary = [[f"label{i % 4}"] * 2 for i in range(40)]  # one short answer per cluster
    collapse = [["generic"] * 2 for _ in range(40)]
    first, now = guard_stats(texts, varied, "prompt"), guard_stats(texts, vocabulary, "prompt")
    assert answer_cluster_nmi(vocabulary, clusters) > answer_cluster_nmi(varied, clusters)
    assert answer_cluster_nmi(collapse, clusters) < answer_cluster_nmi(varied, clusters)
    problems = guard_violations(first, now)
    assert any("distinct" in p for p in problems) and any("length" in p for p in problems)
    assert not guard_violations(first, now, consolidated=True)
    copying = [[f"text {i}"] * 2 for i in range(40)]  # copies are never waived
    assert any("copy" in p for p in guard_violations(first, guard_stats(texts, copying, "prompt"), consolidated=True))


def test_answer_agreement_is_the_mean_pairwise_cosine():
    rng = np.random.default_rng(0)
    vectors = normalize(rng.normal(size=(9, 16)))
    owner = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3])
    vectors[3:7] = vectors[3]  # text 1: four identical answers
    agreement = answer_agreement(vectors, owner, 5)
    sims = vectors[:3] @ vectors[:3].T
    expected = max(0.0, (sims.sum() - 3) / 6)
    assert np.isclose(agreement[0], expected, atol=1e-6)
    assert np.isclose(agreement[1], 1.0, atol=1e-6)
    assert np.isnan(agreement[2]) and np.isnan(agreement[4])  # one answer, none: nothing to agree


def test_agreement_weights_average_the_weight_and_follow_agreement():
    rng = np.random.default_rng(0)
    centre = normalize(rng.normal(size=(3, 16)))
    spread = (0.2, 0.6, 1.5)  # text 0's answers agree most, text 2's least
    vectors = normalize(np.concatenate([centre[i] + s * rng.normal(size=(4, 16)) for i, s in enumerate(spread)]))
    owner = np.repeat(np.arange(3), 4)  # four answers each for texts 0-2; text 3 has none
    w, mean = agreement_weights(vectors, owner, 4, 0.5)
    assert np.isclose(w[:3].mean(), 0.5, atol=1e-6) and w[0] > w[1] > w[2] and w[3] == 0.5  # text 3: no answers
    again, same_mean = agreement_weights(vectors[:4], owner[:4], 1, 0.5, mean_agreement=mean)  # a new text alone
    assert same_mean == mean and np.isclose(again[0], w[0], atol=1e-6)
    text, interp, counts = _views(0.2, 0.2, n=4, k=2)
    z = represent(text, interp, counts, weight=w)
    assert np.allclose(z[1], normalize(text[1] + w[1] * interp[1]), atol=1e-6)
