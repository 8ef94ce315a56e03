"""Loading texts: every bad input gives a one-line CoevoError naming file, line and field."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from coevo.data import Corpus, check_n_clusters, demo_path, load_corpus, stratified_sample
from coevo.errors import CoevoError


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(*rows: object) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def load_error(source: Path | str, **kwargs) -> str:
    with pytest.raises(CoevoError) as info:
        load_corpus(str(source), **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- formats ---------------------------------------------------------------


def test_jsonl_with_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"text": "a b", "label": 1}, {"text": "c", "label": "x", "extra": 3}))
    corpus = load_corpus(str(path))
    assert corpus.texts == ["a b", "c"]
    assert corpus.labels == ["1", "x"]  # labels become strings
    assert corpus.source == str(path)


def test_csv_quoted_multiline_text(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'id,text,label\n1,"hello, world",greet\n2,"two\nlines",other\n')
    corpus = load_corpus(str(path))
    assert corpus.texts == ["hello, world", "two lines"]
    assert corpus.labels == ["greet", "other"]


def test_tsv(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tsv", "text \t label\nfirst text\ta\nsecond, with comma\tb\n")  # padded header
    corpus = load_corpus(str(path))
    assert corpus.texts == ["first text", "second, with comma"]
    assert corpus.labels == ["a", "b"]


def test_txt_has_no_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "d.txt", "one\r\ntwo\nthree")
    corpus = load_corpus(str(path))
    assert corpus.texts == ["one", "two", "three"]
    assert corpus.labels is None


def test_format_overrides_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "d.data", jsonl({"text": "a"}, {"text": "b"}))
    assert load_corpus(str(path), format="jsonl").texts == ["a", "b"]


def test_custom_fields_and_no_label_field(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"body": "a", "label": "x"}, {"body": "b", "label": "y"}))
    assert load_corpus(str(path), text_field="body").labels == ["x", "y"]
    assert load_corpus(str(path), text_field="body", label_field=None).labels is None


def test_utf8_bom_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "\ufefftext,label\ncafé,a\nb,b\n".encode())
    corpus = load_corpus(str(path))
    assert corpus.texts == ["café", "b"]


def test_strip_and_newlines(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"text": "  padded  "}, {"text": "line one\n  line two\r\nthree"}))
    assert load_corpus(str(path)).texts == ["padded", "line one line two three"]


def test_blank_texts_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"text": "a"}, {"text": "   "}) + "\n" + jsonl({"text": "b"}))
    corpus = load_corpus(str(path))
    assert corpus.texts == ["a", "b"]
    assert corpus.n_blank_skipped == 2
    assert "2 blank texts skipped" in corpus.summary()


def test_duplicates_kept_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "d.txt", "a\nb\na\na\n")
    corpus = load_corpus(str(path))
    assert corpus.texts == ["a", "b", "a", "a"]
    assert (corpus.n_distinct, corpus.n_duplicates) == (2, 2)
    assert corpus.summary() == "4 texts (2 duplicates kept), no labels"


def test_summary_with_labels() -> None:
    corpus = Corpus(["a", "b", "c"], ["x", "y", "x"], "mem")
    assert corpus.summary() == "3 texts, 2 labels"


def test_labels_absent_everywhere_gives_none(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"text": "a"}, {"text": "b"}))
    assert load_corpus(str(path)).labels is None
    path = write(tmp_path / "d.csv", "text\na\nb\n")
    assert load_corpus(str(path)).labels is None


def test_labels_partly_missing_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"text": "a", "label": "x"}, {"text": "b", "label": "y"}, {"text": "c"}))
    message = load_error(path)
    assert "d.jsonl" in message and "line 3" in message and "'label'" in message


def test_csv_label_partly_empty_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\na,x\nb,\n")
    message = load_error(path)
    assert "d.csv" in message and "line 3" in message and "'label'" in message


# --- errors ----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    message = load_error(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in message and "not found" in message


def test_directory(tmp_path: Path) -> None:
    message = load_error(tmp_path)
    assert str(tmp_path) in message and "folder" in message


def test_empty_file(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "d.jsonl", ""))
    assert "d.jsonl" in message and "no texts" in message


def test_only_blank_lines(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "d.txt", "\n  \n\n"))
    assert "d.txt" in message and "no texts" in message and "3 blank texts skipped" in message


def test_fewer_than_two_texts(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "d.txt", "only one\n"))
    assert "d.txt" in message and "only 1 text" in message and "at least 2" in message


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "d.txt", b"fine\nalso fine\nbad \xff byte\n"))
    assert "d.txt" in message and "line 3" in message and "UTF-8" in message and "0xff" in message


def test_malformed_json(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"text": "a"}, {"text": "b"}) + '{"text": "c",\n')
    message = load_error(path)
    assert "d.jsonl" in message and "line 3" in message and "not valid JSON" in message


def test_json_line_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"text": "a"}, {"text": "b"}, ["c"]))
    message = load_error(path)
    assert "d.jsonl" in message and "line 3" in message and "array" in message and "object" in message


def test_missing_text_field_lists_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"text": "a"}, {"text": "b"}, {"body": "c", "label": "x"}))
    message = load_error(path)
    assert "d.jsonl" in message and "line 3" in message and "'text'" in message and "body, label" in message


def test_text_not_a_string(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", jsonl({"text": "a"}, {"text": "b"}, {"text": 42}))
    message = load_error(path)
    assert "d.jsonl" in message and "line 3" in message and "'text'" in message and "not a string" in message


def test_csv_missing_text_column(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "d.csv", "body,label\na,x\nb,y\n"))
    assert "d.csv" in message and "line 1" in message and "'text'" in message and "body, label" in message


def test_csv_too_many_fields(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "d.csv", "text,label\na,x\nb,y\nc, d,z\n"))
    assert "d.csv" in message and "line 4" in message and "quote" in message


def test_unknown_extension(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "d.xlsx", "a\nb\n"))
    assert "d.xlsx" in message and "'.xlsx'" in message and ".jsonl" in message


def test_unknown_format(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "d.txt", "a\nb\n"), format="parquet")
    assert "parquet" in message and "jsonl" in message


def test_hf_name_offline_fails_fast_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # Both libraries read the variables at import, which may already have happened.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    start = time.monotonic()
    message = load_error("nobody-xyz/no-such-dataset")
    assert time.monotonic() - start < 10
    assert message.startswith(
        "data 'nobody-xyz/no-such-dataset': not a file here, and loading it as a Hugging Face dataset failed ("
    )
    assert message.endswith("); give a .jsonl/.csv/.tsv/.txt path")


def test_csv_unterminated_quote_names_the_row(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "d.csv", 'text,label\na,x\n"never closed,y\nb,z\n'))
    assert "d.csv" in message and "line 3" in message and "quotes" in message


def test_hf_dataset_fields_and_class_names(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    table = datasets.Dataset.from_dict({"sentence": ["bad", " ", "good"], "label": [0, 0, 1]}, features=features)
    seen = {}

    def fake_load_dataset(name: str, split: str) -> datasets.Dataset:
        seen.update(name=name, split=split)
        return table

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    corpus = load_corpus("org/name", text_field="sentence", split="test")
    assert seen == {"name": "org/name", "split": "test"}
    assert corpus.texts == ["bad", "good"] and corpus.labels == ["neg", "pos"] and corpus.n_blank_skipped == 1
    message = load_error("org/name")
    assert "org/name" in message and "'text'" in message and "sentence, label" in message
    table = datasets.Dataset.from_dict({"sentence": ["a", "b"], "label": [-1, -1]}, features=features)
    assert load_corpus("org/name", text_field="sentence").labels is None  # -1: an unlabeled split


# --- sampling and k --------------------------------------------------------


def labeled_corpus() -> Corpus:
    # 60 texts: class a has 40, b 15, c 5.
    labels = ["a"] * 40 + ["b"] * 15 + ["c"] * 5
    return Corpus([f"text {i}" for i in range(60)], labels, "mem")


def test_stratified_sample_keeps_every_class() -> None:
    sample = stratified_sample(labeled_corpus(), 12, seed=0)
    assert len(sample) == 12
    # one per class, then 9 shared in proportion to 39:14:4 -> 6.16, 2.21, 0.63 -> 6, 2, 1
    assert Counter(sample.labels) == {"a": 7, "b": 3, "c": 2}
    assert sample.texts == sorted(sample.texts, key=lambda t: int(t.split()[1]))  # input order kept


def test_stratified_sample_even_tiny_classes() -> None:
    labels = ["big"] * 97 + ["x", "y", "z"]
    sample = stratified_sample(Corpus([str(i) for i in range(100)], labels, "mem"), 5, seed=3)
    assert len(sample) == 5 and set(sample.labels) == {"big", "x", "y", "z"}


def test_stratified_sample_deterministic_per_seed() -> None:
    corpus = labeled_corpus()
    assert stratified_sample(corpus, 20, seed=1) == stratified_sample(corpus, 20, seed=1)
    assert stratified_sample(corpus, 20, seed=1).texts != stratified_sample(corpus, 20, seed=2).texts


def test_stratified_sample_without_labels() -> None:
    corpus = Corpus([f"t{i}" for i in range(50)], None, "mem")
    sample = stratified_sample(corpus, 10, seed=0)
    assert len(sample) == 10 and sample.labels is None
    assert sample == stratified_sample(corpus, 10, seed=0)
    assert sample.texts != stratified_sample(corpus, 10, seed=1).texts


def test_stratified_sample_whole_corpus_when_n_large() -> None:
    corpus = labeled_corpus()
    assert stratified_sample(corpus, 60, seed=0) is corpus
    assert stratified_sample(corpus, 1000, seed=0) is corpus


def test_stratified_sample_fewer_than_classes() -> None:
    with pytest.raises(CoevoError, match="3 classes"):
        stratified_sample(labeled_corpus(), 2, seed=0)


def test_subset() -> None:
    sub = labeled_corpus().subset([0, 45, 59])
    assert sub.texts == ["text 0", "text 45", "text 59"] and sub.labels == ["a", "b", "c"]


def test_check_n_clusters() -> None:
    corpus = Corpus(["a", "b", "a", "c"], None, "d.txt")
    check_n_clusters(corpus, 2)
    check_n_clusters(corpus, 3)
    with pytest.raises(CoevoError, match="at least 2"):
        check_n_clusters(corpus, 1)
    with pytest.raises(CoevoError, match=r"d\.txt' has only 3 distinct texts"):
        check_n_clusters(corpus, 4)


def test_demo_dataset() -> None:
    corpus = load_corpus(str(demo_path()))
    counts = Counter(corpus.labels)
    assert 280 <= len(corpus) <= 320
    assert len(counts) >= 10 and all(25 <= c <= 35 for c in counts.values())
    assert corpus.n_duplicates == 0 and corpus.n_blank_skipped == 0
