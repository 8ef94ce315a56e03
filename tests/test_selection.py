"""Density scores and pair selection on synthetic embeddings where the right answer is known."""

import numpy as np
import pytest

from coevo.clustering import normalize
from coevo.config import CoEvoConfig
from coevo.density import density_scores, knn_scores, posterior_scores
from coevo.selection import select_pairs


def _two_clusters(rng, n_per=10, dim=16):
    """Texts 0..n-1 in cluster 0, n..2n-1 in cluster 1; each text has two answers:
    answer 0 lies near its own cluster's direction, answer 1 near the other cluster's."""
    centres = normalize(rng.normal(size=(2, dim)))
    owner, vectors, good = [], [], []
    cluster = np.repeat([0, 1], n_per)
    for i, c in enumerate(cluster):
        for j, target in enumerate((c, 1 - c)):
            owner.append(i)
            vectors.append(centres[target] + 0.15 * rng.normal(size=dim))
            good.append(j == 0)
    return normalize(np.array(vectors)), np.array(owner), cluster, np.array(good)


def test_posterior_prefers_the_answer_near_its_own_cluster():
    rng = np.random.default_rng(0)
    interp, owner, cluster, good = _two_clusters(rng)
    scores = posterior_scores(interp, owner, cluster, 2, tau=0.05)
    assert scores.shape == (len(interp),)
    assert np.all((scores >= 0) & (scores <= 1))
    by_text = scores.reshape(-1, 2)
    assert np.all(by_text[:, 0] > by_text[:, 1])  # the in-cluster answer wins for every text


def test_posterior_leaves_the_text_itself_out():
    # One text alone in its cluster: with its own answers removed the cluster centroid is empty,
    # so the text cannot vote for itself and its answers get a low posterior.
    rng = np.random.default_rng(1)
    interp, owner, cluster, _ = _two_clusters(rng, n_per=5)
    cluster = cluster.copy()
    cluster[0] = 2  # text 0 alone in cluster 2
    scores = posterior_scores(interp, owner, cluster, 3, tau=0.05)
    assert scores[owner == 0].max() < 0.01


def test_knn_scores_dense_region_higher():
    rng = np.random.default_rng(2)
    dense = normalize(np.ones((8, 4)) + 0.01 * rng.normal(size=(8, 4)))
    lonely = normalize(np.array([[1.0, -1.0, 0.0, 0.0]]))
    interp = np.vstack([dense, lonely])
    owner = np.arange(9)
    scores = knn_scores(interp, owner, k=3, samples_per_text=1)
    assert scores[:8].min() > scores[8]


@pytest.mark.parametrize("method", ["posterior", "knn", "kde"])
def test_every_density_runs(method):
    rng = np.random.default_rng(3)
    interp, owner, cluster, _ = _two_clusters(rng)
    config = CoEvoConfig(n_clusters=2, density=method, samples=2)
    scores = density_scores(config, interp, owner, cluster, 2)
    assert scores.shape == (len(interp),) and np.all(np.isfinite(scores))


def test_select_pairs_takes_best_and_worst_and_keeps_top_margins():
    texts = ["lost my card", "refund please", "app crashed", "reset password"]
    answers = [["card lost", "help", "bank"], ["get refund", "money"], ["app crash", "phone"], ["same", "same"]]
    scores = [[0.9, 0.1, 0.5], [0.6, 0.5], [0.8, 0.1], [0.5, 0.5]]
    pairs = select_pairs(texts, answers, scores, prompt="Name the intent.", keep_fraction=0.67)
    # text 3 has no two distinct answers; of the 3 candidates the top 2 margins are kept (0.8 and 0.7)
    assert [(p.text_index, p.chosen, p.rejected) for p in pairs] == [(0, "card lost", "help"), (2, "app crash", "phone")]
    assert select_pairs(texts, answers, scores, prompt="x", keep_fraction=1.0, max_pairs=1)[0].text_index == 0


def test_copies_and_prompt_leaks_are_never_chosen_and_are_rejected_first():
    text = "my card was stolen at the train station yesterday"
    answers = [["my card was stolen at the train station", "report stolen card", "name the intent of", "card"]]
    prompt = "Name the intent of the user message."
    # the copy scores highest, the leak second: neither may be chosen
    pairs = select_pairs([text], answers, [[0.99, 0.5, 0.9, 0.1]], prompt=prompt, keep_fraction=1.0)
    assert pairs[0].chosen == "report stolen card"
    assert pairs[0].rejected in ("my card was stolen at the train station", "name the intent of")


def test_random_choice_is_seeded():
    texts = [f"text {i}" for i in range(20)]
    answers = [[f"a{i}", f"b{i}", f"c{i}"] for i in range(20)]
    scores = [[0.0, 0.0, 0.0]] * 20
    run = lambda seed: [
        (p.text_index, p.chosen, p.rejected)
        for p in select_pairs(texts, answers, scores, prompt="x", random_choice=True, rng=np.random.default_rng(seed))
    ]
    assert run(1) == run(1)
    assert run(1) != run(2)
    assert len(run(1)) == 10
