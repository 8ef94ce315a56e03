"""The steps as objects: which steps each method makes (``plan``), and steps run on their own
against a context whose embedder is a stand-in, so no model is loaded."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from coevo.atomic import atomic_write_json, atomic_write_jsonl, read_json, read_jsonl
from coevo.clustering import GATE_MARGIN
from coevo.config import CoEvoConfig
from coevo.run_folder import STEPS, RunFolder
from coevo.guards import guard_stats
from coevo.steps import ROUND_STEPS, Cluster, Generate, RunContext, Select, plan


class WordEmbedder:
    """Hashed bag of words: texts that share words get near vectors. Enough for KMeans and density."""

    max_seq_length = 256
    dim = 64

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts, *, batch_size=32, show_progress_bar=False, convert_to_numpy=True, normalize_embeddings=True):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class StandInContext(RunContext):
    def embedder(self, r: int):
        return WordEmbedder()


TEXTS = [f"card payment declined at shop {i}" for i in range(6)] + [f"flight booking to city {i} tomorrow" for i in range(6)]
GOLD = ["card"] * 6 + ["travel"] * 6
ANSWERS = [["card payment problem", "card declined", "payment failed", "weather today"] for _ in range(6)] + \
          [["flight booking", "book a flight", "travel plans", "card payment"] for _ in range(6)]


def _context(tmp_path, method: str = "full", answers: list[list[str]] = ANSWERS, **settings) -> StandInContext:
    folder = RunFolder(tmp_path)
    folder.round(1).mkdir(parents=True)
    atomic_write_jsonl(folder.round(1) / "interpretations.jsonl",
                       [{"index": i, "interpretations": ys} for i, ys in enumerate(answers)])
    config = CoEvoConfig(n_clusters=2, method=method, rounds=2, kmeans_init=3, max_pairs=4, **settings)
    return StandInContext(config, folder, TEXTS, GOLD, progress=False)


def _names(config: CoEvoConfig) -> list[str]:
    return [f"{r}/{step.name}" for r, step in plan(config)]


def test_round_steps_are_the_run_folders_steps_in_order():
    assert tuple(step.name for step in ROUND_STEPS) == STEPS


@pytest.mark.parametrize("method, expected", [
    ("kmeans", ["1/cluster"]),
    ("expand", ["1/generate", "1/cluster"]),
    ("no-dpo", ["1/generate", "1/select", "1/contrastive", "1/cluster", "2/generate", "2/select", "2/contrastive",
                "2/cluster", "3/generate", "3/select", "3/contrastive", "3/cluster"]),
    ("full", ["1/generate", "1/select", "1/dpo", "1/contrastive", "1/cluster", "2/generate", "2/select", "2/dpo",
              "2/contrastive", "2/cluster", "3/generate", "3/select", "3/contrastive", "3/cluster"]),
])
def test_plan_follows_the_method_table(method, expected):
    """The table in ``steps``' docstring: DPO never in the last round, nothing trained for kmeans/expand."""
    assert _names(CoEvoConfig(n_clusters=5, method=method, rounds=3)) == expected


def test_auto_k_comes_first_as_round_zero():
    names = _names(CoEvoConfig(n_clusters="auto", method="no-dpo", rounds=1))
    assert names == ["0/auto_k", "1/generate", "1/select", "1/contrastive", "1/cluster"]


def test_select_step_writes_pairs_that_prefer_the_dense_answers(tmp_path):
    ctx = _context(tmp_path)
    Select().run(ctx, 1)
    info = read_json(ctx.folder.round(1) / "select.json")
    positives = read_jsonl(ctx.folder.round(1) / "positives.jsonl")
    pairs = read_jsonl(ctx.folder.round(1) / "pairs.jsonl")
    assert info["n_positives"] == len(positives) == len(TEXTS)
    assert 0 < len(pairs) <= 4 and all(p["chosen"] != p["rejected"] for p in pairs)
    assert all(p["chosen_score"] >= p["rejected_score"] for p in pairs)
    # the odd answer out of each card text ("weather today") is never the one chosen
    assert not any(p["chosen"] == "weather today" for p in positives)
    assert "interp_only" in info  # gold labels were given, so the step reports them


def test_positives_record_the_select_steps_cluster_and_an_older_folder_gets_it_built_again(tmp_path):
    ctx = _context(tmp_path)
    Select().run(ctx, 1)
    positives = read_jsonl(ctx.folder.round(1) / "positives.jsonl")
    recorded = [p["cluster"] for p in positives]
    assert recorded == ctx.positive_clusters(1, positives)
    assert len(set(recorded)) == ctx.n_clusters()
    assert recorded == [int(ctx.selection_view(1).labels[p["text_index"]]) for p in positives]
    written_before = [{k: v for k, v in p.items() if k != "cluster"} for p in positives]
    assert ctx.positive_clusters(1, written_before) == recorded


@pytest.mark.parametrize("batches, given", [("no-duplicates", False), ("one-per-cluster", True),
                                            ("one-per-cluster-same-steps", True)])
def test_the_contrastive_step_hands_the_select_clusters_over_only_for_one_per_cluster_batches(tmp_path, monkeypatch,
                                                                                              batches, given):
    import coevo.steps as steps

    ctx = _context(tmp_path, contrastive_batches=batches)
    Select().run(ctx, 1)
    seen = {}

    def train(embedder, anchors, positives, output_dir, *, settings, guide, clusters, progress):
        seen.update(batches=settings.batches, clusters=clusters)
        return {"steps": 2, "loss_first": 1.0, "loss_last": 0.5}

    monkeypatch.setattr(steps, "train_contrastive", train)
    monkeypatch.setattr(steps, "atomic_publish_dir", lambda build, target: None)
    steps.Contrastive().run(ctx, 1)
    recorded = [p["cluster"] for p in read_jsonl(ctx.folder.round(1) / "positives.jsonl")]
    assert seen == {"batches": batches, "clusters": recorded if given else None}


def test_one_per_previous_cluster_batches_keep_the_runs_last_clusters_apart(tmp_path, monkeypatch):
    """Round 1 has no clusters of its own yet: the base embedder's text clusters, which here keep the gold groups
    where the select step's joined view mixes them. Round 2 reads round 1's reported clusters."""
    import coevo.steps as steps

    flight = ["flight booking to city", "book a flight to city", "flight to city tomorrow", "booking to city"]
    card = ["card payment declined at shop", "card declined at shop", "payment declined at shop", "declined card payment"]
    answers = [flight if i < 3 else card for i in range(6)] + [card if i < 3 else flight for i in range(6)]
    ctx = _context(tmp_path, answers=answers, contrastive_batches="one-per-previous-cluster")
    Select().run(ctx, 1)
    seen = {}

    def train(embedder, anchors, positives, output_dir, *, settings, guide, clusters, progress):
        seen["clusters"] = clusters
        return {"steps": 2, "loss_first": 1.0, "loss_last": 0.5}

    monkeypatch.setattr(steps, "train_contrastive", train)
    monkeypatch.setattr(steps, "atomic_publish_dir", lambda build, target: None)
    steps.Contrastive().run(ctx, 1)
    positives = read_jsonl(ctx.folder.round(1) / "positives.jsonl")
    by_group = {GOLD[p["text_index"]]: set() for p in positives}
    for p, c in zip(positives, seen["clusters"]):
        by_group[GOLD[p["text_index"]]].add(c)
    assert [len(c) for c in by_group.values()] == [1, 1] and by_group["card"] != by_group["travel"]
    assert seen["clusters"] != [p["cluster"] for p in positives]  # the select step's view mixed the groups

    reported = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]  # any clustering round 1 wrote
    atomic_write_jsonl(ctx.folder.round(1) / "assignments.jsonl", [{"text": t, "cluster": c} for t, c in zip(TEXTS, reported)])
    assert ctx.batch_clusters(2, positives, "one-per-previous-cluster") == [reported[p["text_index"]] for p in positives]
    assert ctx.batch_clusters(2, positives, "no-duplicates") is None


@pytest.mark.parametrize("weight, follows_text", [(1.0, False), (0.0, True)])
def test_select_interp_weight_sets_what_the_density_clusters(tmp_path, monkeypatch, weight, follows_text):
    """Half of each group answers like the other group: the joined view (weight 1) mixes the groups in
    the clusters the density reads, the text view (weight 0) keeps them as the texts have them."""
    import coevo.steps as steps

    flight = ["flight booking to city", "book a flight to city", "flight to city tomorrow", "booking to city"]
    card = ["card payment declined at shop", "card declined at shop", "payment declined at shop", "declined card payment"]
    answers = [flight if i < 3 else card for i in range(6)] + [card if i < 3 else flight for i in range(6)]
    read: dict = {}
    density = steps.density_scores

    def spy(cfg, interp, owner, text_cluster, k):
        read["clusters"] = np.asarray(text_cluster)
        return density(cfg, interp, owner, text_cluster, k)

    monkeypatch.setattr(steps, "density_scores", spy)
    Select().run(_context(tmp_path, answers=answers, select_interp_weight=weight), 1)
    groups = read["clusters"]
    as_texts = len(set(groups[:6])) == 1 and len(set(groups[6:])) == 1 and groups[0] != groups[6]
    assert as_texts == follows_text


def test_cluster_step_writes_assignments_centres_and_metrics(tmp_path):
    ctx = _context(tmp_path, method="expand")
    Cluster().run(ctx, 1)
    info = read_json(ctx.folder.round(1) / "cluster.json")
    rows = read_jsonl(ctx.folder.round(1) / "assignments.jsonl")
    assert [row["text"] for row in rows] == TEXTS and all(row["interpretations"] for row in rows)
    assert info["metrics"]["acc"] == 100.0  # two word-disjoint groups
    gate = info["gate"]  # the default representation: the join only where it clearly leads in stability
    joined = gate["lead"] > GATE_MARGIN * gate["lead_se"]
    assert info["interp_weight"] == (ctx.config.interp_weight if joined else 0.0)
    assert (ctx.folder.round(1) / "centroids.npy").is_file()
    # expand has no select step, so the cluster step says what the interpretations alone give:
    # here two answers per group name the other group's topic, so they alone are not perfect
    assert 0 < info["interp_only"]["acc"] <= 100.0 and set(info["interp_only"]) >= {"acc", "nmi", "ari"}
    Cluster().run(full := _context(tmp_path / "full"), 1)
    assert "interp_only" not in read_json(full.folder.round(1) / "cluster.json")  # select measures it there


def test_a_context_without_gold_labels_reports_no_metrics(tmp_path):
    ctx = _context(tmp_path, method="expand")
    ctx.gold = None
    Cluster().run(ctx, 1)
    assert "metrics" not in read_json(ctx.folder.round(1) / "cluster.json")
    assert all("label" not in row for row in read_jsonl(ctx.folder.round(1) / "assignments.jsonl"))


class ScriptedLLM(StandInContext):
    """The base LLM gives ``ANSWERS``; the trained adapter answers with one short label per group."""

    def interpret(self, adapter, sampling):
        if adapter is None:
            return ANSWERS, None
        return [["payments" if i < 6 else "travel"] * 4 for i in range(len(TEXTS))], None


@pytest.mark.parametrize("consolidation", [False, True])
def test_generate_backs_off_a_degraded_adapter_unless_its_answers_consolidated(tmp_path, consolidation):
    """A label vocabulary has fewer and shorter answers than round 1's, which the guard counts as
    degradation; with ``guard_consolidation`` the answers still mark round 1's clusters (better than
    round 1's own answers did), so the adapter is kept and what was waived is recorded."""
    folder = RunFolder(tmp_path)
    folder.round(1).mkdir(parents=True)
    config = CoEvoConfig(n_clusters=2, method="full", rounds=2, guard_consolidation=consolidation)
    ctx = ScriptedLLM(config, folder, TEXTS, GOLD, progress=False, warn=lambda msg: None)
    atomic_write_jsonl(folder.round(1) / "interpretations.jsonl",
                       [{"index": i, "interpretations": ys} for i, ys in enumerate(ANSWERS)])
    atomic_write_jsonl(folder.round(1) / "assignments.jsonl", [{"index": i, "cluster": int(i >= 6)} for i in range(12)])
    atomic_write_json(folder.round(1) / "generate.json", {"guards": guard_stats(TEXTS, ANSWERS, ctx.prompt).to_dict()})
    folder.save_state({"done": [], "adapter": "round1/adapter", "adapter_history": ["round1/adapter"]})
    Generate().run(ctx, 2)
    info = read_json(folder.round(2) / "generate.json")
    answers = [row["interpretations"] for row in read_jsonl(folder.round(2) / "interpretations.jsonl")]
    if consolidation:
        assert info["backed_off"] is None and info["adapter"] == "round1/adapter" and answers[0] == ["payments"] * 4
        assert info["answer_cluster_nmi"]["now"] > info["answer_cluster_nmi"]["round1"]
        assert any("distinct" in p for p in info["waived"]) and any("length" in p for p in info["waived"])
    else:
        assert info["backed_off"]["to"] is None and info["adapter"] is None and answers == ANSWERS
        assert any("distinct" in p for p in info["backed_off"]["problems"])
