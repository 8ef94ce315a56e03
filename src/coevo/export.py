"""A finished run as tables: one row a cluster, one row a text (as BERTopic's
``get_topic_info`` and ``get_document_info``), written with pandas' own writers.

A cluster's ``name`` and ``keywords`` are those the run wrote at its finish
(``naming``: the LLM's name, or the strongest keywords for a run without an LLM).
Keywords are class-based TF-IDF: the texts of a cluster are joined into one
document, and a word ranks high where it is frequent in that cluster and rare in
the others. A run finished before names were written gets its most central
interpretation as its name, and keywords computed here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from .atomic import atomic_target
from .errors import CoevoError

if TYPE_CHECKING:
    import pandas as pd

    from .pipeline import CoEvolution

ExportFormat = Literal["csv", "parquet", "jsonl"]
ExportTable = Literal["documents", "clusters"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
N_KEYWORDS = 10


def class_keywords(texts: list[str], labels: np.ndarray, n: int = N_KEYWORDS) -> dict[int, list[str]]:
    """The ``n`` words of highest class-based TF-IDF per cluster (English stop words left out)."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

    labels = np.asarray(labels)
    clusters = sorted(set(labels.tolist()))
    documents = [" ".join(texts[i] for i in np.flatnonzero(labels == c)) for c in clusters]
    vectorizer = CountVectorizer(stop_words="english")
    try:
        counts = vectorizer.fit_transform(documents)
    except ValueError:  # no word left (all stop words, or no letters at all)
        return {c: [] for c in clusters}
    scores = TfidfTransformer().fit_transform(counts).toarray()
    words = vectorizer.get_feature_names_out()
    return {c: [str(words[j]) for j in np.argsort(-row, kind="stable")[:n] if row[j] > 0]
            for c, row in zip(clusters, scores)}


def cluster_keywords(model: CoEvolution) -> dict[int, list[str]]:
    """The keywords the run stored with its clusters, or (for an older run) computed now."""
    if all("keywords" in entry for entry in model.clusters_):
        return {int(entry["cluster"]): list(entry["keywords"]) for entry in model.clusters_}
    return class_keywords(model.texts_, model.labels_)


def cluster_names(model: CoEvolution) -> dict[int, str]:
    """The name of each cluster: the stored one, else (an older run) its most central interpretation or keywords."""
    if all("name" in entry for entry in model.clusters_):
        return {int(entry["cluster"]): entry["name"] for entry in model.clusters_}
    keywords = cluster_keywords(model)
    return {int(entry["cluster"]): entry["names"][0] if entry["names"] else ", ".join(keywords.get(entry["cluster"], [])[:3])
            for entry in model.clusters_}


def cluster_info(model: CoEvolution) -> pd.DataFrame:
    """One row a cluster, largest first: cluster, size, name, names, keywords, representative_texts."""
    import pandas as pd

    keywords = cluster_keywords(model)
    names = cluster_names(model)
    return pd.DataFrame([
        {"cluster": int(entry["cluster"]), "size": int(entry["size"]), "name": names[int(entry["cluster"])],
         "names": list(entry["names"]), "keywords": keywords.get(entry["cluster"], []),
         "representative_texts": list(entry["examples"])}
        for entry in model.clusters_
    ])


def document_info(model: CoEvolution) -> pd.DataFrame:
    """One row a training text, in input order: text, cluster, name, label (with gold labels),
    distance (to its cluster's centre, in the representation the run clustered), interpretations
    (when the run generated them)."""
    import pandas as pd

    from .predict import fitted_distances

    names = cluster_names(model)
    table = {"text": model.texts_, "cluster": np.asarray(model.labels_, dtype=np.int64),
             "name": [names[int(c)] for c in model.labels_]}
    if model.gold_ is not None:
        table["label"] = model.gold_
    table["distance"] = fitted_distances(model)
    if model.config.uses_llm:
        table["interpretations"] = [list(ys) for ys in model.interpretations_]
    return pd.DataFrame(table)


def write_table(frame: pd.DataFrame, path: str | Path, format: str) -> Path:
    """Written atomically. In CSV a list cell becomes its items joined by `` | ``, so the file
    opens in a spreadsheet; Parquet and JSONL keep lists as lists."""
    if format not in FORMATS:
        raise CoevoError(f"option --format: {format!r} is not one of {', '.join(FORMATS)}")
    if format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise CoevoError("option --format parquet: needs pyarrow, which is not installed; "
                         "install it (pip install pyarrow) or use --format csv or jsonl")
    path = Path(path)
    with atomic_target(path) as tmp:
        if format == "csv":
            flat = frame.copy()
            for column in flat.columns:
                if flat[column].map(lambda v: isinstance(v, list)).any():
                    flat[column] = flat[column].map(lambda v: " | ".join(map(str, v)) if isinstance(v, list) else v)
            flat.to_csv(tmp, index=False)
        elif format == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
    return path
