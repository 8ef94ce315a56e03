"""How well a run's cluster names say what its clusters hold, against gold labels.

A name is judged against its cluster's *majority gold label*: the label most of
the cluster's texts carry. It matches when the two are the same words after
``normalise`` (case, ``_``/``-``, punctuation), or when their embeddings are at
least ``threshold`` apart in cosine similarity: "lost card" should count for
the label "card lost or stolen" though no word order or spelling agrees. Exact
match alone would call almost every LLM name wrong; similarity alone would let
a loose threshold call anything right, so the report gives both, and the rate
at several thresholds, and the label each name is nearest to among all the
dataset's labels (which needs no threshold).

``bench/names.py`` runs this over the benchmark's run folders; the pieces here
take plain lists so they can be tested with hand-made names and labels.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np

Similarity = Callable[[list[str], list[str]], np.ndarray]
"""``similarity(a, b)``: the ``len(a) x len(b)`` matrix of cosine similarities of the strings' embeddings."""

_APOSTROPHES = "'\u2019"
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_SITE = re.compile(r"(\.stackexchange)?\.com$")
_COPY_NUMBER = re.compile(r"^(.*) \d+$")
_COPY_KEYWORD = re.compile(r"^(.*) \([^()]+\)$")


def normalise(text: str) -> str:
    """Lower case, ``_`` and ``-`` as spaces, punctuation removed, spaces collapsed.

    Apostrophes vanish ("card's" is "cards"); other punctuation separates words
    ("attack, battle ,war" is "attack battle war", "e.g." is "e g").

    What two spellings of one name differ by ("Card_Arrival", "card-arrival.")
    and nothing else: no stemming, so "refunds" and "refund" are left to the
    embedding comparison.
    """
    text = text.lower().replace("_", " ").replace("-", " ")
    text = "".join("" if ch in _APOSTROPHES else " " if unicodedata.category(ch).startswith("P") else ch
                   for ch in text)
    return " ".join(text.split())


def label_text(label: str) -> str:
    """A gold label as words, for datasets whose labels are written as identifiers.

    StackExchange labels are site addresses ("english.stackexchange.com",
    "superuser.com"): the site's own name is the topic, so the address part is
    dropped. Reddit labels are subreddit names, some in CamelCase ("AskReddit"),
    which are split into words. Other labels are returned as they are.
    """
    label = _SITE.sub("", label.strip()).replace(".", " ")
    return _CAMEL.sub(" ", label)


def base_name(name: str, others: set[str]) -> str:
    """``name`` without the suffix ``naming.unique_names`` added to tell it from a larger cluster's name.

    A name taken by a larger cluster gets `` (keyword)``, then `` 2``, `` 3``...:
    the LLM (or fallback) named this cluster like the other one, and that name
    is what is judged. A suffix is only dropped when what is left is another
    cluster's name in ``others``, so a name such as "top 10" stays whole.
    """
    while True:
        for pattern in (_COPY_NUMBER, _COPY_KEYWORD):
            found = pattern.match(name)
            if found and found.group(1) in others:
                name = found.group(1)
                break
        else:
            return name


def majority_labels(clusters: Sequence[int], gold: Sequence[str]) -> dict[int, tuple[str, int, int]]:
    """Per cluster: (its most frequent gold label, that label's count, the cluster's size).

    A tie goes to the label first in sorted order, so the answer does not
    depend on the order of the texts.
    """
    if len(clusters) != len(gold):
        raise ValueError(f"{len(clusters)} cluster ids but {len(gold)} gold labels")
    counts: dict[int, Counter] = {}
    for cluster, label in zip(clusters, gold):
        counts.setdefault(int(cluster), Counter())[str(label)] += 1
    out = {}
    for cluster, counter in counts.items():
        label, count = min(counter.items(), key=lambda item: (-item[1], item[0]))
        out[cluster] = (label, count, sum(counter.values()))
    return out


def score_names(names: Mapping[int, str], clusters: Sequence[int], gold: Sequence[str], similarity: Similarity, *,
                threshold: float) -> list[dict]:
    """One row per named cluster, largest first: the name, the majority label and whether they match.

    Each row holds ``cluster``, ``size``, ``name`` (as the run wrote it),
    ``compared`` (``base_name`` of it, normalised), ``label`` (as in the data),
    ``label_words`` (``label_text``, normalised), ``share`` (of the cluster's
    texts that carry the label), ``exact``, ``similarity`` (cosine of the two
    embeddings), ``match`` (exact, or similarity >= ``threshold``),
    ``nearest_label`` (the dataset label whose embedding is nearest the name's:
    the majority label when the name singles it out among all labels) and
    ``near_others`` (the share of the dataset's other labels at or above
    ``threshold``: how many wrong labels the same threshold would have let match).
    """
    majority = majority_labels(clusters, gold)
    missing = sorted(set(majority) - set(names))
    if missing:
        raise ValueError(f"clusters without a name: {missing[:5]}")
    order = sorted(majority, key=lambda c: (-majority[c][2], c))
    all_names = set(names.values())
    compared = [normalise(base_name(names[c], all_names - {names[c]})) for c in order]
    labels = sorted(set(map(str, gold)))
    words = [normalise(label_text(label)) for label in labels]
    index = {label: i for i, label in enumerate(labels)}
    sims = np.asarray(similarity(compared, words), dtype=np.float64).reshape(len(compared), len(words))
    rows = []
    for row, (cluster, text) in enumerate(zip(order, compared)):
        label, count, size = majority[cluster]
        j = index[label]
        exact = bool(text) and text == words[j]
        sim = float(sims[row, j]) if text else 0.0
        others = [k for k in range(len(labels)) if k != j]
        rows.append({
            "cluster": cluster, "size": size, "name": names[cluster], "compared": text, "label": label,
            "label_words": words[j], "share": count / size, "exact": exact, "similarity": sim,
            "match": exact or sim >= threshold,
            "nearest_label": labels[int(np.argmax(sims[row]))] if text else None,
            "near_others": float(np.mean(sims[row, others] >= threshold)) if others and text else 0.0,
        })
    return rows


def summarise(rows: Sequence[dict], thresholds: Sequence[float]) -> dict:
    """A run's rates: exact matches, matches at each threshold, mean similarity, nearest label right.

    Rates are shares of clusters (0 to 1); ``labels_named`` counts the distinct
    majority labels that at least one matching cluster names.
    """
    n = len(rows)
    if n == 0:
        return {"clusters": 0}
    at = {f"{t:g}": sum(r["exact"] or r["similarity"] >= t for r in rows) / n for t in thresholds}
    majority = {r["label"] for r in rows}
    return {
        "clusters": n,
        "exact": sum(r["exact"] for r in rows) / n,
        "match": sum(r["match"] for r in rows) / n,
        "match_at": at,
        "mean_similarity": float(np.mean([r["similarity"] for r in rows])),
        "nearest_is_majority": sum(r["nearest_label"] == r["label"] for r in rows) / n,
        "near_others": float(np.mean([r["near_others"] for r in rows])),
        "mean_share": float(np.mean([r["share"] for r in rows])),
        "majority_labels": len(majority),
        "labels_named": len({r["label"] for r in rows if r["match"]}),
    }


def embedding_similarity(embedder) -> Similarity:
    """``Similarity`` through a sentence-transformers model (unit vectors, so a dot product is the cosine)."""
    from .clustering import embed

    def similarity(a: list[str], b: list[str]) -> np.ndarray:
        return embed(embedder, list(a), progress=False) @ embed(embedder, list(b), progress=False).T

    return similarity
