"""The contrastive step's one-per-cluster batches: no in-batch negative from the anchor's own cluster."""

from collections import Counter

import pytest

from coevo.contrastive import OnePerClusterBatchSampler, one_per_cluster_batches


def _pairs(n):
    return [(f"text {i}", f"answer {i}") for i in range(n)]


def test_no_batch_holds_two_texts_of_one_cluster_and_the_clusters_run_out_together():
    clusters = [i % 3 for i in range(30)] + [3] * 12  # three clusters of 10, one of 12
    batches = one_per_cluster_batches(clusters, _pairs(len(clusters)), batch_size=32, seed=0)
    for batch in batches:
        assert len({clusters[i] for i in batch}) == len(batch) >= 2
    used = [i for batch in batches for i in batch]
    assert len(used) == len(set(used))
    # the largest cluster goes first, so all but its last two texts find partners: 40 of 42 used
    assert len(used) == 40 and Counter(clusters[i] for i in set(range(42)) - set(used)) == {3: 2}


def test_batches_are_capped_by_the_batch_size_and_follow_the_seed():
    clusters = list(range(50)) * 2
    batches = one_per_cluster_batches(clusters, _pairs(100), batch_size=8, seed=1)
    assert max(map(len, batches)) == 8 and sum(map(len, batches)) == 100
    assert batches == one_per_cluster_batches(clusters, _pairs(100), batch_size=8, seed=1)
    assert batches != one_per_cluster_batches(clusters, _pairs(100), batch_size=8, seed=2)


def test_a_repeated_answer_never_shares_a_batch():
    clusters = [0, 1, 2, 3] * 5
    pairs = [(f"text {i}", "music" if i % 4 < 2 else f"answer {i}") for i in range(20)]
    for batch in one_per_cluster_batches(clusters, pairs, batch_size=32, seed=0):
        answers = [pairs[i][1] for i in batch]
        assert len(answers) == len(set(answers))


def test_the_sampler_yields_the_batches_its_length_counts_and_reshuffles_each_epoch():
    clusters = list(range(10)) * 4
    dataset = [{"anchor": a, "positive": p} for a, p in _pairs(40)]
    sampler = OnePerClusterBatchSampler(dataset, clusters=clusters, batch_size=4, seed=3, drop_last=False)
    first = list(sampler)
    assert len(sampler) == len(first) and first == one_per_cluster_batches(clusters, _pairs(40), 4, seed=3)
    assert list(sampler) == first  # the same epoch asked again
    sampler.set_epoch(1)
    assert list(sampler) == one_per_cluster_batches(clusters, _pairs(40), 4, seed=4) != first
    with pytest.raises(ValueError, match="39 clusters for 40 pairs"):
        OnePerClusterBatchSampler(dataset, clusters=clusters[:-1], batch_size=4)


def test_a_same_steps_sampler_stops_each_epoch_at_its_step_count():
    clusters = list(range(10)) * 4  # ten clusters of four pairs: four batches of ten an epoch
    dataset = [{"anchor": a, "positive": p} for a, p in _pairs(40)]
    full = OnePerClusterBatchSampler(dataset, clusters=clusters, batch_size=32, seed=3)
    capped = OnePerClusterBatchSampler(dataset, clusters=clusters, batch_size=32, seed=3, max_batches=2)
    assert len(full) == 4 and len(capped) == 2 and list(capped) == list(full)[:2]
    assert all(len({clusters[i] for i in batch}) == len(batch) == 10 for batch in capped)  # every cluster alike
