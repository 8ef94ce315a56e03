"""Cluster names and keywords, written once the last round has clustered.

A run that uses an LLM asks its final LLM (with the LoRA adapter its last round
generated with) for one short name per cluster, shown the cluster's most central
interpretations and texts. The answer goes through the same cleaning and
degenerate-answer rules as the interpretations, and decoding is greedy through
the same ``Interpreter`` (prefill, cache, seed), so a rerun names alike and a
resumed run reads the names from the generation cache. A run without an LLM
names a cluster by its strongest keywords. Keywords are class-based TF-IDF
(``export.class_keywords``). No two clusters keep the same name: a later, smaller
cluster whose name is taken gets its first keyword not in the name, then a number.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from .guards import echoes_prompt
from .prompts import name_instruction, name_request, system_prompt

if TYPE_CHECKING:
    from .config import CoEvoConfig

NAME_TOKENS = 16
"""Longest name, in tokens: 2 to 5 words fit, and a rambling answer is cut (and then refused as degenerate)."""

NAME_MAX_WORDS = 6
"""A longer answer (or central interpretation) is a sentence, not a name, and is passed over."""

KEYWORDS_IN_NAME = 3


def keyword_name(keywords: list[str]) -> str:
    return ", ".join(keywords[:KEYWORDS_IN_NAME])


def llm_names(clusters: list[dict], config: CoEvoConfig, adapter: str | None, *, progress: bool = False) -> list[str]:
    """One greedy answer per cluster, in the order of ``clusters`` ("" where the LLM gave nothing usable).

    ``clusters`` are the cluster step's descriptions: their ``names`` (central
    interpretations) and ``examples`` (central texts) make the request.
    """
    from .generation import Interpreter, SamplingConfig

    sampling = SamplingConfig(samples=1, temperature=0.0, top_p=1.0, max_new_tokens=NAME_TOKENS,
                              batch_size=config.generation_batch_size, seed=config.seed)
    requests = [name_request(entry["names"], entry["examples"]) for entry in clusters]
    interpreter = Interpreter(config.llm, adapter, cache_dir=config.cache_dir, trust_remote_code=config.trust_remote_code,
                              backend=config.generation_backend)
    try:
        answers = interpreter.interpret(requests, config.task, name_instruction(config.task), sampling, progress=progress)
    finally:
        del interpreter
        gc.collect()
    return [ys[0] if ys else "" for ys in answers]


def unique_names(names: list[str], keywords: list[list[str]], clusters: list[int]) -> list[str]:
    """``names`` made distinct, in order (largest cluster first, so it keeps its name).

    An empty name becomes the cluster's keywords, or ``cluster <id>`` when it has
    none. A name already taken gets the cluster's first keyword that is not a
    word of it, in brackets; when that is taken too (or there is no such
    keyword), a number.
    """
    taken: set[str] = set()
    out = []
    for name, words, cluster in zip(names, keywords, clusters):
        name = name or keyword_name(words) or f"cluster {cluster}"
        if name in taken:
            extra = next((w for w in words if w not in name.split()), None)
            name = f"{name} ({extra})" if extra else name
        base, number = name, 2
        while name in taken:
            name, number = f"{base} {number}", number + 1
        taken.add(name)
        out.append(name)
    return out


def name_clusters(clusters: list[dict], keywords: dict[int, list[str]], config: CoEvoConfig, adapter: str | None, *,
                  progress: bool = False) -> tuple[list[str], list[str]]:
    """The distinct name of each cluster of ``clusters`` (the cluster step's descriptions, largest first),
    and where each came from: ``llm``, ``interpretation`` or ``keywords``.

    With an LLM: its answer, or where it gave nothing usable (more than
    ``NAME_MAX_WORDS`` words, or only words of its own instructions: on
    StackExchange the 0.5B LLM answered "no sentence" for 41 of 121 clusters) the
    cluster's most central interpretation if that is short enough. Otherwise,
    and for a run without an LLM: the cluster's strongest keywords.
    """
    ids = [int(entry["cluster"]) for entry in clusters]
    words = [keywords.get(c, []) for c in ids]
    answers = llm_names(clusters, config, adapter, progress=progress) if config.uses_llm else [""] * len(clusters)
    prompt = system_prompt(config.task, name_instruction(config.task))

    def usable(name: str) -> bool:
        return 0 < len(name.split()) <= NAME_MAX_WORDS and not echoes_prompt(name, prompt)

    names, sources = [], []
    for answer, entry, kw in zip(answers, clusters, words):
        candidates = [(answer, "llm"), *((n, "interpretation") for n in entry["names"][:1])]
        name, source = next(((n, src) for n, src in candidates if usable(n)), (keyword_name(kw), "keywords"))
        names.append(name)
        sources.append(source)
    return unique_names(names, words, ids), sources
