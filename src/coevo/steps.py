"""The steps of a run, one small class each: ``applies(config, round)`` says whether a method makes
the step in that round, ``run(context, round)`` makes it and writes its outputs into the round's
folder. The stages' algorithms live in their own modules (generation, density, selection,
preference, contrastive, clustering); a step is the glue that feeds a stage what earlier steps
wrote and records what it made, so ``--resume`` can start at any step.

``RunContext`` is everything a step reads: the settings, the texts (and gold labels, used only
to report metrics), the run folder and the models as each round left them. Steps keep no state
of their own between calls; what they pass on goes through the folder. A step can therefore be
run by a test against a context whose embedder or LLM is a stand-in. The step numbers in the
docstrings are those of ``docs/method.md``.

Which steps run depends on ``config.method`` (docs/method.md, baselines table):

============== ======== ========== ====== ============ =========
method         generate select      DPO    contrastive  cluster
============== ======== ========== ====== ============ =========
kmeans         -        -          -      -            f(x)
expand         round 1  -          -      -            f(x)+f(y)
contrastive-   yes      random y   -      yes          yes
only
random-select  yes      random     yes    yes          yes
no-dpo         yes      density    -      yes          yes
full           yes      density    yes    yes          yes
============== ======== ========== ====== ============ =========

DPO runs in rounds 1..T-1 only: the adapter of round T would never write an interpretation that
the clustering reads. With ``n_clusters="auto"``, ``AutoK`` comes first, as round 0.
"""

from __future__ import annotations

import gc
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import models
from .atomic import atomic_publish_dir, atomic_write_bytes, atomic_write_json, atomic_write_jsonl, read_json, read_jsonl
from .clustering import (choose_interp_weight, choose_n_clusters, cluster, embed, gate_interp_weight,
                         interpretation_weights, mean_by_owner, represent)
from .config import CoEvoConfig
from .contrastive import ContrastiveSettings, train_contrastive
from .density import density_scores
from .errors import CoevoError
from .guards import GuardStats, answer_cluster_nmi, guard_stats, guard_violations
from .metrics import evaluate
from .predict import save_centers
from .prompts import MAX_TEXT_TOKENS, system_prompt
from .report import describe_clusters
from .run_folder import AUTO_K_STEP, STEPS, RunFolder
from .selection import PreferencePair, select_pairs


def step_seed(seed: int, round_index: int, step: str) -> int:
    """The seed of one step of one round: every random choice of a run derives from the run's seed."""
    return int(np.random.SeedSequence([seed, round_index, STEPS.index(step)]).generate_state(1)[0] % (2**31))


class Representation(NamedTuple):
    """What KMeans clusters after a round, and what it was made of."""

    z: np.ndarray  # unit rows, one a text
    interpretations: list[list[str]] | None  # None for a method without an LLM
    interp_vec: np.ndarray  # one row an interpretation
    owner: np.ndarray  # the text of each interpretation row
    interp_mean: np.ndarray  # one row a text: the mean of its interpretations' rows (zeros without any)
    counts: np.ndarray  # how many interpretations each text has
    weight: dict  # {"interp_weight": w}, the criterion's curve when chosen here, the mean agreement: for cluster.json
    text_vec: np.ndarray  # f_r(x) of every text before any join (what ``represent text`` clusters, unnormalised)


class SelectionView(NamedTuple):
    """What round r's select step reads: the round's answers under round r-1's embedder, and the clusters
    its density scores them against."""

    interpretations: list[list[str]]
    interp_vec: np.ndarray
    owner: np.ndarray
    interp_mean: np.ndarray
    counts: np.ndarray
    labels: np.ndarray  # each text's cluster


@dataclass
class RunContext:
    """The run as the steps see it. ``CoEvolution`` builds one per fit, resume or load."""

    config: CoEvoConfig
    folder: RunFolder
    texts: list[str]
    gold: list[str] | None = None
    progress: bool = True
    log: Callable[[str], None] = lambda msg: None  # progress lines
    warn: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)  # said even without progress
    prompt: str = field(init=False)
    shortened: int = field(default=0, init=False)  # long texts cut for the LLM in the last generation
    _told_shortened: bool = field(default=False, init=False)  # said once per invocation

    def __post_init__(self) -> None:
        self.prompt = system_prompt(self.config.task, self.config.instruction)

    def n_clusters(self) -> int:
        """K: the configured one, or the one the auto_k step chose, as the state recorded it."""
        if not self.config.auto_k:
            return self.config.n_clusters
        k = self.folder.state().get("n_clusters")
        if not isinstance(k, int):
            raise CoevoError(f"{self.folder.path / 'state.json'}: no K chosen yet; continue the run with "
                             f"coevo run --resume {self.folder.path}")
        return k

    def embedder(self, r: int):
        """The embedder as it stood after round ``r`` (the base model for r = 0 or an untrained round)."""
        cfg = self.config
        folder = self.folder.embedder_folder(r)
        if folder is not None:
            return models.load_embedder(str(folder), trust_remote_code=cfg.trust_remote_code)
        return models.load_embedder(cfg.embedder, cache_dir=cfg.cache_dir, trust_remote_code=cfg.trust_remote_code)

    def embed_all(self, embedder, interpretations: list[list[str]]):
        """f(x) of every text, f(y) of every interpretation, and the text each interpretation belongs to."""
        flat = [y for ys in interpretations for y in ys]
        owner = np.array([i for i, ys in enumerate(interpretations) for _ in ys], dtype=np.int64)
        text_vec = embed(embedder, self.texts, progress=self.progress, desc="embed texts")
        interp_vec = embed(embedder, flat, progress=self.progress, desc="embed interpretations")
        return text_vec, interp_vec, owner

    def representation(self, r: int, kind: str | None = None, embedder=None) -> Representation:
        """f_r(x), joined with the weighted mean f_r(y) when configured (or when ``kind`` says so).

        ``auto`` picks the weight once, at the round's cluster step, and reads it back from there later
        (recluster, predict), so every clustering of a finished run sees the same representation;
        ``agreement`` records the fitted texts' mean agreement there, which new texts are weighed against.
        ``embedder`` stands in for round ``r``'s own (another training on the same answers, as
        bench/contrastive.py measures it); a weight is then chosen afresh, never read back.
        """
        cfg = self.config
        kind = kind or cfg.represent
        interpretations = self.folder.interpretations(r) if cfg.uses_llm else None
        text_vec, interp_vec, owner = self.embed_all(embedder if embedder is not None else self.embedder(r),
                                                     interpretations or [[] for _ in self.texts])
        interp_mean, counts = mean_by_owner(interp_vec, owner, len(self.texts))
        recorded = self.folder.recorded_weighting(r) if kind == cfg.represent and embedder is None else {}
        if interpretations is None or kind == "text":
            weighting = {"interp_weight": 0.0}
        elif kind in ("auto", "gate") and "interp_weight" in recorded:
            weighting = {"interp_weight": recorded["interp_weight"]}
        elif kind == "auto":
            w, curve = choose_interp_weight(text_vec, interp_mean, counts, self.n_clusters(),
                                            seed=step_seed(cfg.seed, r, "cluster"))
            weighting = {"interp_weight": w, "interp_weight_curve": curve}
            self.log(f"round {r}: interpretation weight {w:g} (label-free choice)")
        elif kind == "gate":
            w, test = gate_interp_weight(text_vec, interp_mean, counts, self.n_clusters(), cfg.interp_weight,
                                         seed=step_seed(cfg.seed, r, "cluster"))
            weighting = {"interp_weight": w, "gate": test}
            self.log(f"round {r}: interpretation weight {w:g} (text stability {test['text_stability']:.3f}, "
                     f"joined {test['joined_stability']:.3f})")
        elif kind == "agreement":
            weighting = {"interp_weight": cfg.interp_weight, "mean_agreement": recorded.get("mean_agreement")}
        else:
            weighting = {"interp_weight": cfg.interp_weight}
        w, weighting = interpretation_weights(weighting, interp_vec, owner, len(self.texts))
        z = represent(text_vec, interp_mean, counts, weight=w)
        return Representation(z, interpretations, interp_vec, owner, interp_mean, counts, weighting, text_vec)

    def selection_view(self, r: int) -> SelectionView:
        """Round ``r``'s select step's view, built again the same way whenever a step needs it."""
        cfg = self.config
        interpretations = self.folder.interpretations(r)
        text_vec, interp_vec, owner = self.embed_all(self.embedder(r - 1), interpretations)
        interp_mean, counts = mean_by_owner(interp_vec, owner, len(self.texts))
        z = represent(text_vec, interp_mean, counts, weight=cfg.select_interp_weight)
        labels = cluster(cfg, z, self.n_clusters(), seed=step_seed(cfg.seed, r, "select")).labels
        return SelectionView(interpretations, interp_vec, owner, interp_mean, counts, labels)

    def positive_clusters(self, r: int, positives: list[dict]) -> list[int]:
        """Each contrastive positive's cluster in round ``r``'s select step: recorded there, or, in a run folder
        written before it was, clustered again as the step did."""
        if all("cluster" in p for p in positives):
            return [p["cluster"] for p in positives]
        labels = self.selection_view(r).labels
        return [int(labels[p["text_index"]]) for p in positives]

    def batch_clusters(self, r: int, positives: list[dict], batches: str, embedder=None) -> list[int] | None:
        """Each contrastive positive's cluster in the clustering ``batches`` keeps apart (None: ``no-duplicates``,
        which keeps no clusters apart). ``embedder`` stands in for round ``r - 1``'s own (bench/contrastive.py's
        replays), whose clustering is then made afresh."""
        if batches == "no-duplicates":
            return None
        if batches in ("one-per-cluster", "one-per-cluster-same-steps"):
            return self.positive_clusters(r, positives)
        labels = self.previous_clusters(r, embedder)
        return [int(labels[p["text_index"]]) for p in positives]

    def previous_clusters(self, r: int, embedder=None) -> np.ndarray:
        """The clusters the run reported after round ``r - 1``; before round 1, the base embedder's clusters of the
        texts alone (what ``kmeans`` finds)."""
        cfg, k = self.config, self.n_clusters()
        if r == 1:
            text_vec = embed(embedder if embedder is not None else self.embedder(0), self.texts, progress=self.progress,
                             desc="embed texts")
            return cluster(cfg, text_vec, k, seed=step_seed(cfg.seed, 0, "cluster")).labels
        if embedder is None:
            return np.array([a["cluster"] for a in read_jsonl(self.folder.round(r - 1) / "assignments.jsonl")])
        return cluster(cfg, self.representation(r - 1, embedder=embedder).z, k, seed=step_seed(cfg.seed, r - 1, "cluster")).labels

    def sampling(self):
        """How the generate step samples; prediction samples the same way."""
        from .generation import SamplingConfig

        cfg = self.config
        return SamplingConfig(cfg.samples, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.generation_batch_size, cfg.seed)

    def interpret(self, adapter: str | None, sampling) -> tuple[list[list[str]], float | None]:
        """The texts' interpretations by the base LLM with ``adapter`` (as state.json names it; None: the
        base LLM alone), and tokens/s."""
        from .generation import Interpreter

        cfg = self.config
        interpreter = Interpreter(cfg.llm, self.folder.adapter_dir(adapter), cache_dir=cfg.cache_dir, trust_remote_code=cfg.trust_remote_code,
                                  backend=cfg.generation_backend)
        try:
            answers = interpreter.interpret(self.texts, cfg.task, cfg.instruction, sampling, progress=self.progress)
            self.shortened = interpreter.shortened_texts
            if self.shortened and not self._told_shortened:
                self._told_shortened = True
                many = self.shortened > 1
                self.warn(f"{self.shortened} text{'s' if many else ''} longer than {MAX_TEXT_TOKENS} tokens "
                          f"{'were' if many else 'was'} shortened for the LLM")
            return answers, interpreter.tokens_per_second
        finally:
            del interpreter
            gc.collect()


class AutoK:
    """Choose K once, before anything is trained, on the base embedder's f(x): no step's output can
    sway it, and every round clusters into the same K (``clustering.choose_n_clusters``)."""

    name = AUTO_K_STEP

    def applies(self, config: CoEvoConfig, r: int) -> bool:
        return config.auto_k and r == 0

    def run(self, ctx: RunContext, r: int) -> None:
        text_vec = embed(ctx.embedder(0), ctx.texts, progress=ctx.progress, desc="embed texts")
        choice = choose_n_clusters(text_vec, seed=ctx.config.seed)
        atomic_write_json(ctx.folder.record_path(0, self.name), choice)
        low, high = choice["range"]
        ctx.log(f"K = {choice['k']}, chosen without labels ({choice['criterion']} over K = {low}..{high})")


class Generate:
    """Step 1 of docs/method.md: M interpretations of every text, by the LLM as the last DPO step left it. A trained
    LLM whose answers degrade past the guard's limits is backed off (``guards``)."""

    name = "generate"

    def applies(self, config: CoEvoConfig, r: int) -> bool:
        return config.uses_llm and r >= 1

    def run(self, ctx: RunContext, r: int) -> None:
        cfg, folder, state = ctx.config, ctx.folder, ctx.folder.state()
        out = folder.round(r) / "interpretations.jsonl"
        previous = folder.round(r - 1) / "interpretations.jsonl"
        adapter = state["adapter"]
        if r > 1 and not cfg.trains_llm and previous.exists():
            atomic_write_bytes(out, previous.read_bytes())  # same LLM, same seed: same answers
            atomic_write_json(folder.round(r) / "generate.json", read_json(folder.round(r - 1) / "generate.json"))
            return
        sampling = ctx.sampling()
        interpretations, tok_s = ctx.interpret(adapter, sampling)
        stats = guard_stats(ctx.texts, interpretations, ctx.prompt)
        info = {"adapter": adapter, "guards": stats.to_dict(), "tokens_per_second": tok_s, "backed_off": None,
                "shortened_texts": ctx.shortened}
        if r > 1 and adapter is not None:
            first = GuardStats(**read_json(folder.round(1) / "generate.json")["guards"])
            if cfg.guard_consolidation:
                clusters = ctx.previous_clusters(r).tolist()
                marks = {"round1": answer_cluster_nmi(folder.interpretations(1), clusters),
                         "now": answer_cluster_nmi(interpretations, clusters)}
                info["answer_cluster_nmi"] = marks
                problems = guard_violations(first, stats, consolidated=marks["now"] >= marks["round1"])
                info["waived"] = [p for p in guard_violations(first, stats) if p not in problems]
            else:
                problems = guard_violations(first, stats)
            if problems:
                fallback = state["adapter_history"][-2] if len(state.get("adapter_history", [])) > 1 else None
                ctx.warn(f"warning: round {r}: the trained LLM degraded ({'; '.join(problems)}); "
                         f"backing off to {'the base LLM' if fallback is None else fallback} and halving the DPO step")
                interpretations, tok_s = ctx.interpret(fallback, sampling)
                stats = guard_stats(ctx.texts, interpretations, ctx.prompt)
                info.update({"backed_off": {"from": adapter, "to": fallback, "problems": problems},
                             "adapter": fallback, "guards": stats.to_dict()})  # the state follows at mark_done
        atomic_write_jsonl(out, [{"index": i, "interpretations": ys} for i, ys in enumerate(interpretations)])
        atomic_write_json(folder.round(r) / "generate.json", info)
        ctx.log(f"round {r}: {stats.n_interpretations} interpretations, distinct {stats.distinct_share:.0%}, "
                f"{stats.mean_words:.1f} words, copies {stats.copy_rate:.1%}, leaks {stats.leak_rate:.1%}")


class Select:
    """Steps 2-4 of docs/method.md: embed, score every interpretation by the embedding model's density (``density``) and
    pick each text's chosen and rejected answers (``selection``): positives for the contrastive
    step, the widest margins as DPO pairs. The random-choice ablations score at random."""

    name = "select"

    def applies(self, config: CoEvoConfig, r: int) -> bool:
        return (config.trains_llm or config.trains_embedder) and r >= 1

    def run(self, ctx: RunContext, r: int) -> None:
        cfg, folder = ctx.config, ctx.folder
        seed = step_seed(cfg.seed, r, "select")
        rng = np.random.default_rng(seed)
        view = ctx.selection_view(r)
        interpretations, interp_vec, owner, labels = view.interpretations, view.interp_vec, view.owner, view.labels
        k = ctx.n_clusters()
        random_choice = cfg.method in ("contrastive-only", "random-select")
        if random_choice:
            scores = rng.random(len(interp_vec)).astype(np.float32)
        else:
            scores = density_scores(cfg, interp_vec, owner, labels, k)
        per_text = _split(scores.tolist(), interpretations)
        common = dict(prompt=ctx.prompt, max_copy_rate=cfg.max_copy_rate, random_choice=random_choice)
        # Contrastive step: every text with a usable chosen answer. DPO: the top margins only.
        positives = select_pairs(ctx.texts, interpretations, per_text, keep_fraction=1.0, rng=rng, **common)
        pairs = select_pairs(ctx.texts, interpretations, per_text, keep_fraction=cfg.keep_fraction,
                             max_pairs=cfg.max_pairs, rng=rng, **common)
        atomic_write_jsonl(folder.round(r) / "scores.jsonl", [
            {"index": i, "interpretations": ys, "scores": ss} for i, (ys, ss) in enumerate(zip(interpretations, per_text))
        ])
        # each positive's cluster: what one-per-cluster contrastive batches keep apart
        atomic_write_jsonl(folder.round(r) / "positives.jsonl",
                           [{**p.to_dict(), "cluster": int(labels[p.text_index])} for p in positives])
        atomic_write_jsonl(folder.round(r) / "pairs.jsonl", [p.to_dict() for p in pairs])
        info = {"n_positives": len(positives), "n_pairs": len(pairs),
                "mean_margin": float(np.mean([p.margin for p in pairs])) if pairs else None}
        if ctx.gold is not None:
            info["interp_only"] = interpretation_only(cfg, view.interp_mean, view.counts, k, seed, ctx.gold)
            info["selection_clusters"] = evaluate(ctx.gold, labels)
        atomic_write_json(folder.round(r) / "select.json", info)
        ctx.log(f"round {r}: {len(pairs)} preference pairs, {len(positives)} contrastive pairs")


class DPO:
    """Step 5: the LLM learns the selected preferences (``preference``, TRL's DPO on a LoRA adapter).
    After a back-off the step is halved: learning rate down, beta up, by 2 per back-off."""

    name = "dpo"

    def applies(self, config: CoEvoConfig, r: int) -> bool:
        return config.trains_llm and 1 <= r < config.effective_rounds

    def run(self, ctx: RunContext, r: int) -> None:
        from .preference import DPOSettings, preference_records, train_dpo

        cfg, folder, state = ctx.config, ctx.folder, ctx.folder.state()
        pairs = read_jsonl(folder.round(r) / "pairs.jsonl")
        if not pairs:
            ctx.log(f"round {r}: no preference pairs; the LLM is not trained this round")
            atomic_write_json(folder.round(r) / "dpo.json", {"pairs": 0})
            return
        pair_objs = [PreferencePair(p["text_index"], p["chosen"], p["rejected"], p["chosen_score"], p["rejected_score"])
                     for p in pairs]
        slowdown = 2 ** state.get("backoff", 0)
        settings = DPOSettings(
            learning_rate=cfg.dpo_learning_rate / slowdown, beta=cfg.dpo_beta * slowdown, sft_weight=cfg.dpo_sft_weight,
            batch_size=cfg.dpo_batch_size, epochs=cfg.dpo_epochs, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
            seed=step_seed(cfg.seed, r, "dpo"),
        )
        target = folder.round(r) / "adapter"
        build = target.with_name(".adapter.tmp")  # kept across an interruption: train_dpo resumes its last save
        summary = train_dpo(cfg.llm, preference_records(ctx.texts, pair_objs, cfg.task, cfg.instruction), build,
                            settings=settings, previous_adapter=folder.adapter_dir(state["adapter"]), cache_dir=cfg.cache_dir,
                            trust_remote_code=cfg.trust_remote_code, progress=ctx.progress)
        atomic_publish_dir(build, target)
        gc.collect()
        atomic_write_json(folder.round(r) / "dpo.json", summary)  # the state follows at mark_done
        resumed = f" (resumed at step {summary['resumed_at_step']})" if summary["resumed_at_step"] else ""
        ctx.log(f"round {r}: DPO on {len(pairs)} pairs, loss {summary['loss_first']:.3f} -> {summary['loss_last']:.3f}, "
                f"{summary['train_seconds']:.0f}s{resumed}")


class Contrastive:
    """Step 6: the embedding model learns each text's chosen interpretation as its positive
    (``contrastive``, sentence-transformers), starting from the previous round's embedder."""

    name = "contrastive"

    def applies(self, config: CoEvoConfig, r: int) -> bool:
        return config.trains_embedder and r >= 1

    def run(self, ctx: RunContext, r: int) -> None:
        cfg, folder = ctx.config, ctx.folder
        positives = read_jsonl(folder.round(r) / "positives.jsonl")
        target = folder.round(r) / "embedder"
        if not positives:
            ctx.log(f"round {r}: no contrastive pairs; the embedder is not trained this round")
            atomic_write_json(folder.round(r) / "contrastive.json", {"pairs": 0})
            return
        embedder = ctx.embedder(r - 1)
        build = target.with_name(".embedder.tmp")
        shutil.rmtree(build, ignore_errors=True)
        settings = ContrastiveSettings.from_config(cfg, step_seed(cfg.seed, r, "contrastive"))
        guide = ctx.embedder(0) if cfg.contrastive_loss == "gist" else None
        clusters = ctx.batch_clusters(r, positives, cfg.contrastive_batches)
        summary = train_contrastive(embedder, [ctx.texts[p["text_index"]] for p in positives],
                                    [p["chosen"] for p in positives], build, settings=settings, guide=guide,
                                    clusters=clusters, progress=ctx.progress)
        shutil.rmtree(build / "_trainer", ignore_errors=True)
        atomic_publish_dir(build, target)
        atomic_write_json(folder.round(r) / "contrastive.json", summary)
        if summary["steps"] == 0:
            ctx.log(f"round {r}: contrastive step on {len(positives)} pairs: all in one cluster, so no batch; the "
                    "embedder is not trained this round")
        else:
            ctx.log(f"round {r}: contrastive step on {len(positives)} pairs, loss {summary['loss_first']:.3f} -> "
                    f"{summary['loss_last']:.3f}")


class Cluster:
    """Step 7: cluster the round's representation (``clustering``) and describe each cluster."""

    name = "cluster"

    def applies(self, config: CoEvoConfig, r: int) -> bool:
        return r >= 1

    def run(self, ctx: RunContext, r: int) -> None:
        cfg, folder = ctx.config, ctx.folder
        rep = ctx.representation(r)
        result = cluster(cfg, rep.z, ctx.n_clusters(), seed=step_seed(cfg.seed, r, "cluster"))
        save_centers(folder.round(r), rep.z, result.labels, result.centers)
        clusters = describe_clusters(ctx.texts, result.labels, rep.z, rep.interpretations, rep.interp_vec, rep.owner)
        atomic_write_jsonl(folder.round(r) / "assignments.jsonl", [
            {"text": t, "cluster": int(c), **({"label": ctx.gold[i]} if ctx.gold is not None else {}),
             **({"interpretations": rep.interpretations[i]} if rep.interpretations is not None else {})}
            for i, (t, c) in enumerate(zip(ctx.texts, result.labels))
        ])
        info = {"clusters": clusters, "kmeans_backend": result.backend, **rep.weight}
        if ctx.gold is not None:
            info["metrics"] = evaluate(ctx.gold, result.labels)
            if rep.interpretations is not None and not Select().applies(cfg, r):
                # no select step measured it (expand): the round's interpretations alone, for comparing prompts
                info["interp_only"] = interpretation_only(cfg, rep.interp_mean, rep.counts, ctx.n_clusters(),
                                                          step_seed(cfg.seed, r, "cluster"), ctx.gold)
            ctx.log(f"round {r}: ACC {info['metrics']['acc']:.1f}  NMI {info['metrics']['nmi']:.1f}  "
                    f"ARI {info['metrics']['ari']:.1f}")
        atomic_write_json(folder.round(r) / "cluster.json", info)


ROUND_STEPS = (Generate(), Select(), DPO(), Contrastive(), Cluster())
"""A round's steps in the order they run; their names are ``run_folder.STEPS``."""


def plan(config: CoEvoConfig, last: int | None = None) -> list[tuple[int, AutoK | Generate | Select | DPO | Contrastive | Cluster]]:
    """The (round, step) pairs a run makes, in order, up to round ``last``; K's choice is round 0."""
    last = config.effective_rounds if last is None else last
    auto_k = AutoK()
    first = [(0, auto_k)] if auto_k.applies(config, 0) else []
    return first + [(r, step) for r in range(1, last + 1) for step in ROUND_STEPS if step.applies(config, r)]


def interpretation_only(cfg: CoEvoConfig, interp_mean: np.ndarray, counts: np.ndarray, k: int, seed: int,
                        gold: Sequence) -> dict:
    """ACC, NMI and ARI of KMeans on the mean interpretation embedding alone, over the texts that have
    one: what the interpretations say without the text. A diagnostic beside the run's metrics (it reads
    the gold labels, so nothing in the method is chosen by it)."""
    has = counts > 0
    only = cluster(cfg, interp_mean[has], k, seed=seed)
    return evaluate([g for g, keep in zip(gold, has) if keep], only.labels)


def _split(flat: list[float], shape: Sequence[Sequence[str]]) -> list[list[float]]:
    out, start = [], 0
    for ys in shape:
        out.append(flat[start : start + len(ys)])
        start += len(ys)
    return out

