"""Step 4: turn density scores into preference pairs for DPO and the contrastive step.

For each text, chosen = its best-scoring *eligible* interpretation and
rejected = its worst one. An interpretation that copies most of its text or
leaks the prompt is never eligible as chosen, and is preferred as rejected:
this is what keeps DPO from teaching the LLM to echo its input (docs/method.md
measured 5.5% -> 59.6% echoes without the rule). Only the pairs with the
largest margin are kept, since a small margin is mostly sampling noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .guards import copy_share, leaks_prompt, words

MIN_WORDS_FOR_COPY = 5  # a shorter text leaves an honest answer no words of its own


@dataclass(frozen=True)
class PreferencePair:
    text_index: int
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float

    @property
    def margin(self) -> float:
        return self.chosen_score - self.rejected_score

    def to_dict(self) -> dict:
        return {**asdict(self), "margin": self.margin}


def select_pairs(
    texts: list[str],
    interpretations: list[list[str]],
    scores: list[list[float]],
    *,
    prompt: str,
    keep_fraction: float = 0.5,
    max_pairs: int | None = None,
    max_copy_rate: float = 0.6,
    random_choice: bool = False,
    rng: np.random.Generator | None = None,
) -> list[PreferencePair]:
    """One candidate pair per text with two distinct eligible answers; the top margins kept.

    ``random_choice`` is the `random-select` ablation: chosen and rejected are
    drawn at random (the eligibility rule still holds) and the kept subset is
    random, so only the density signal differs from the full method.
    """
    rng = rng or np.random.default_rng(0)
    candidates: list[PreferencePair] = []
    for i, (text, answers, answer_scores) in enumerate(zip(texts, interpretations, scores)):
        if len(set(answers)) < 2:
            continue
        copyable = len(set(words(text))) >= MIN_WORDS_FOR_COPY
        bad = [(copyable and copy_share(a, text) >= max_copy_rate) or leaks_prompt(a, prompt) for a in answers]
        eligible = [j for j in range(len(answers)) if not bad[j]]
        if not eligible:
            continue
        if random_choice:
            c = int(rng.choice(eligible))
            others = [j for j in range(len(answers)) if answers[j] != answers[c]]
            if not others:
                continue
            r = int(rng.choice(others))
        else:
            c = max(eligible, key=lambda j: answer_scores[j])
            ruled_out = [j for j in range(len(answers)) if bad[j] and answers[j] != answers[c]]
            others = ruled_out or [j for j in range(len(answers)) if answers[j] != answers[c]]
            if not others:
                continue
            r = min(others, key=lambda j: answer_scores[j])
        candidates.append(PreferencePair(i, answers[c], answers[r], float(answer_scores[c]), float(answer_scores[r])))
    n_keep = max(1, int(round(len(candidates) * keep_fraction))) if candidates else 0
    if max_pairs is not None:
        n_keep = min(n_keep, max_pairs)
    if random_choice:
        keep = sorted(rng.choice(len(candidates), size=n_keep, replace=False).tolist()) if n_keep else []
        return [candidates[j] for j in keep]
    ranked = sorted(range(len(candidates)), key=lambda j: (-candidates[j].margin, candidates[j].text_index))
    return sorted((candidates[j] for j in ranked[:n_keep]), key=lambda p: p.text_index)
