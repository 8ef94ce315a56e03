"""Name quality against gold labels (coevo.name_quality, used by bench/names.py): hand-made names and labels."""

from __future__ import annotations

import numpy as np
import pytest

from coevo.name_quality import base_name, label_text, majority_labels, normalise, score_names, summarise


def word_overlap(a: list[str], b: list[str]) -> np.ndarray:
    """A stand-in for embeddings: Jaccard overlap of the words, so a test needs no model."""
    return np.array([[len(set(x.split()) & set(y.split())) / max(1, len(set(x.split()) | set(y.split())))
                      for y in b] for x in a])


def test_normalising_removes_case_separators_and_punctuation():
    assert normalise("Card_Arrival") == normalise("card-arrival.") == normalise("  CARD  arrival!") == "card arrival"
    assert normalise("attack, battle ,war") == "attack battle war"
    assert normalise("card's stolen?") == "cards stolen"
    assert normalise("refunds") != normalise("refund")  # no stemming: left to the embedding


def test_labels_written_as_identifiers_are_read_as_words():
    assert label_text("english.stackexchange.com") == "english"
    assert label_text("superuser.com") == "superuser"
    assert normalise(label_text("es.stackoverflow.com")) == "es stackoverflow"
    assert label_text("AskReddit") == "Ask Reddit" and label_text("classicalmusic") == "classicalmusic"
    assert label_text("card arrival") == "card arrival" and normalise(label_text("small_talk")) == "small talk"


def test_the_majority_label_and_its_share():
    clusters = [0, 0, 0, 1, 1, 2, 2, 0]
    gold = ["a", "b", "a", "c", "c", "z", "y", "a"]
    assert majority_labels(clusters, gold) == {0: ("a", 3, 4), 1: ("c", 2, 2), 2: ("y", 1, 2)}  # a tie: sorted first
    with pytest.raises(ValueError):
        majority_labels([0, 1], ["a"])


def test_an_exact_match_after_normalising():
    rows = score_names({0: "Card_Arrival", 1: "weather"}, [0, 0, 0, 1], ["card arrival", "card arrival", "x", "get weather"],
                       word_overlap, threshold=0.9)
    by = {row["cluster"]: row for row in rows}
    assert [row["cluster"] for row in rows] == [0, 1]  # largest first
    assert by[0]["exact"] and by[0]["match"] and by[0]["share"] == pytest.approx(2 / 3)
    assert by[0]["label"] == "card arrival" and by[0]["nearest_label"] == "card arrival"
    assert not by[1]["exact"] and by[1]["similarity"] == pytest.approx(0.5) and not by[1]["match"]
    summary = summarise(rows, (0.4, 0.9))
    assert summary["exact"] == 0.5 and summary["match"] == 0.5 and summary["match_at"] == {"0.4": 1.0, "0.9": 0.5}
    assert summary["labels_named"] == 1 and summary["majority_labels"] == 2


def test_a_name_made_distinct_by_naming_is_judged_without_its_suffix():
    names = {0: "card lost", 1: "card lost (stolen)", 2: "card lost 2", 3: "top 10"}
    assert base_name("card lost (stolen) 2", {"card lost", "card lost (stolen)"}) == "card lost"
    assert base_name("top 10", {"card lost"}) == "top 10"  # not a copy of another cluster's name
    rows = score_names(names, [0, 1, 2, 3], ["card lost", "card lost", "card lost", "top 10"], word_overlap, threshold=0.9)
    assert all(row["exact"] for row in rows)
    assert {row["compared"] for row in rows} == {"card lost", "top 10"}
    assert {row["name"] for row in rows} == set(names.values())  # the report shows the names as the run wrote them


def test_a_cluster_without_a_name_is_an_error():
    with pytest.raises(ValueError, match="without a name"):
        score_names({0: "a"}, [0, 1], ["a", "b"], word_overlap, threshold=0.5)


def test_embeddings_match_a_synonym_and_not_an_unrelated_label():
    from coevo.models import load_embedder
    from coevo.name_quality import embedding_similarity

    from tests.conftest import TEST_EMBEDDER

    similarity = embedding_similarity(load_embedder(TEST_EMBEDDER, device="cpu"))
    clusters = [0, 0, 1, 1, 2, 2]
    gold = ["card lost or stolen", "card lost or stolen", "gratitude", "gratitude", "weather", "weather"]
    rows = {row["cluster"]: row for row in score_names({0: "lost card", 1: "thankful", 2: "card arrival"}, clusters, gold,
                                                       similarity, threshold=0.5)}
    assert not rows[0]["exact"] and rows[0]["similarity"] >= 0.5 and rows[0]["match"]  # a synonym, other words
    assert rows[1]["match"] and rows[1]["nearest_label"] == "gratitude"
    assert rows[2]["similarity"] < 0.3 and not rows[2]["match"]  # unrelated
    assert rows[2]["nearest_label"] == "card lost or stolen"


def names_script():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("names_script", Path(__file__).parents[1] / "bench" / "names.py")
    names = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(names)
    return names


def test_the_names_script_keeps_datasets_scored_before_whose_folders_are_gone(tmp_path):
    """Re-running bench/names.py on new cells extends names.md; a dataset it cannot find now keeps its
    earlier scores (marked with that file's commit), but only if they were scored the same way."""
    import json
    from types import SimpleNamespace

    names = names_script()
    before = {"commit": "abc1234", "date": "2026-12-01 10:00 UTC",
              "settings": {"embedder": "all-MiniLM-L6-v2", "threshold": 0.5, "seed": 0, "method": "full"},
              "datasets": [{"dataset": "goemo", "summary": {}}, {"dataset": "fewnerd", "summary": {}}]}
    path = tmp_path / "names.json"
    path.write_text(json.dumps(before))
    args = SimpleNamespace(threshold=0.5, seed=0, method="full")
    missing = {"goemo": "not run yet", "bank77": "not run yet"}
    kept = names.kept_from_before(path, {"fewnerd": {}}, "all-MiniLM-L6-v2", args, missing)
    assert [r["dataset"] for r in kept] == ["goemo"] and kept[0]["kept"]["names_json_commit"] == "abc1234"
    assert missing == {"bank77": "not run yet"}
    other = SimpleNamespace(threshold=0.6, seed=0, method="full")
    assert names.kept_from_before(path, {}, "all-MiniLM-L6-v2", other, {}) == []


def test_the_names_script_finds_the_commit_of_a_cell_run_with_an_out_dir(tmp_path):
    """`coevo bench --out-dir DIR` records its cells in DIR/<tier>.json; the names table cites that commit."""
    import json

    names = names_script()
    cell = tmp_path / "extra" / "cpu" / "default" / "goemo" / "full-seed0"
    cell.mkdir(parents=True)
    record = {"run_dir": str(cell), "source": "run", "commit": "abc1234", "date": "2026-12-03T05:00:00+00:00"}
    (tmp_path / "extra" / "cpu.json").write_text(json.dumps([record]))
    found = names.bench_record(cell, finished=0.0)  # the run finished before the record was written: its own
    assert found["commit"] == "abc1234" and found["results"] == str(tmp_path / "extra" / "cpu.json")
    assert names.bench_record(tmp_path / "extra" / "cpu" / "default" / "fewrel" / "full-seed0", 0.0)["commit"] is None
    (tmp_path / "extra" / "cpu.json").unlink()
    assert "not a bench cell" in names.bench_record(cell, 0.0)["note"]
