"""Guard metrics: is an interpretation still an interpretation?

After a DPO round the clustering numbers can rise while the LLM degenerates:
it may collapse to a few generic phrases, or learn to echo the input (an echo
sits in its text's cluster, so the metrics reward it). docs/method.md measured both.
Every round therefore logs these figures, and the run backs off when one of
them degrades past the limits below.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_WORD = re.compile(r"[a-z0-9']+")

COPY_THRESHOLD = 0.8  # an interpretation covering this share of its text's words is a copy


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def copy_share(interpretation: str, text: str) -> float:
    """Share of the text's distinct words that the interpretation repeats."""
    text_words = set(words(text))
    if not text_words:
        return 0.0
    return len(text_words & set(words(interpretation))) / len(text_words)


def leaks_prompt(interpretation: str, prompt: str, n: int = 4) -> bool:
    """True when the answer repeats any n consecutive words of the system prompt."""
    answer, instruction = words(interpretation), words(prompt)
    grams = {tuple(instruction[i : i + n]) for i in range(len(instruction) - n + 1)}
    return any(tuple(answer[i : i + n]) in grams for i in range(len(answer) - n + 1))


def echoes_prompt(answer: str, prompt: str) -> bool:
    """True when the whole answer is a run of the prompt's own words, however short ("no sentence",
    "customer messages"): an echo of the instructions says nothing about the texts. ``leaks_prompt``
    needs four words in a row, so a two-word echo passes it."""
    said, instruction = words(answer), words(prompt)
    n = len(said)
    return n > 0 and any(instruction[i : i + n] == said for i in range(len(instruction) - n + 1))


@dataclass(frozen=True)
class GuardStats:
    n_interpretations: int
    distinct_share: float
    mean_words: float
    copy_rate: float
    leak_rate: float

    def to_dict(self) -> dict:
        return asdict(self)


def guard_stats(texts: list[str], interpretations: list[list[str]], prompt: str) -> GuardStats:
    flat = [(text, y) for text, ys in zip(texts, interpretations) for y in ys]
    n = len(flat)
    if n == 0:
        return GuardStats(0, 0.0, 0.0, 0.0, 0.0)
    return GuardStats(
        n_interpretations=n,
        distinct_share=len({y for _, y in flat}) / n,
        mean_words=sum(len(y.split()) for _, y in flat) / n,
        copy_rate=sum(copy_share(y, text) >= COPY_THRESHOLD for text, y in flat) / n,
        leak_rate=sum(leaks_prompt(y, prompt) for _, y in flat) / n,
    )


@dataclass(frozen=True)
class GuardLimits:
    max_distinct_drop: float = 0.10  # relative to round 1
    max_copy_rate: float = 0.10
    max_leak_rate: float = 0.01
    max_length_change: float = 0.30  # relative to round 1, either way


def answer_cluster_nmi(interpretations: list[list[str]], clusters) -> float:
    """NMI (%) between the answers, each a class of its own, and the clusters of the texts that gave them.

    Why: fewer distinct answers is a collapse when one answer is given to texts
    of many clusters, and a consolidated label vocabulary when the texts that
    share an answer share a cluster. NMI tells the two apart without labels:
    a collapse lowers it (an answer says little about the cluster), and a long
    tail of one-off answers lowers it too (the answers' entropy grows), so
    only answers that mark clusters raise it.
    """
    from sklearn.metrics import normalized_mutual_info_score

    answers, owners = [], []
    for i, ys in enumerate(interpretations):
        answers += [y.strip().lower() for y in ys]
        owners += [int(clusters[i])] * len(ys)
    if not answers:
        return 0.0
    return 100.0 * float(normalized_mutual_info_score(owners, answers))


def guard_violations(first: GuardStats, now: GuardStats, limits: GuardLimits = GuardLimits(), *,
                     consolidated: bool = False) -> list[str]:
    """Human-readable reasons why ``now`` degraded against the untrained LLM's ``first`` round.

    ``consolidated``: the answers mark the current clusters at least as well as round 1's did
    (:func:`answer_cluster_nmi`), so changes of form (fewer distinct answers, shorter or longer
    ones) are not counted: a label vocabulary is short and repetitive, and a fuller answer
    that still marks its cluster is no collapse. Copies and prompt leaks always count.
    """
    problems = []
    if (first.distinct_share and now.distinct_share < first.distinct_share * (1 - limits.max_distinct_drop)
            and not consolidated):
        problems.append(f"distinct share fell {first.distinct_share:.1%} -> {now.distinct_share:.1%}")
    # Where the untrained LLM already sits above a limit, only a clear rise counts.
    copy_limit = max(limits.max_copy_rate, first.copy_rate + 0.02)
    leak_limit = max(limits.max_leak_rate, first.leak_rate + 0.005)
    if now.copy_rate > copy_limit:
        problems.append(f"copy rate {now.copy_rate:.1%} (limit {copy_limit:.1%})")
    if now.leak_rate > leak_limit:
        problems.append(f"prompt-leak rate {now.leak_rate:.1%} (limit {leak_limit:.1%})")
    if (first.mean_words and abs(now.mean_words / first.mean_words - 1) > limits.max_length_change
            and not consolidated):
        problems.append(f"mean length {first.mean_words:.1f} -> {now.mean_words:.1f} words")
    return problems
