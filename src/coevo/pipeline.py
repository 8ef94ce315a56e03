"""The co-evolution loop: generate -> density -> select -> DPO -> contrastive -> cluster, over rounds.

``CoEvolution`` is the public entry point (``fit`` / ``labels_``). Every step
of every round writes its outputs into the run folder atomically and is then
recorded in ``state.json`` (``run_folder.RunFolder`` owns that folder); ``CoEvolution.resume(run_dir)`` replays nothing
that finished. Each step draws its randomness from (seed, round, step) and
reloads its models from the run folder, so a resumed run ends with the same
clusters as an uninterrupted one.

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

DPO runs in rounds 1..T-1 only: the adapter of round T would never write an
interpretation that the clustering reads.

With ``n_clusters="auto"`` one step comes before round 1: ``auto_k`` chooses K
without labels on the base embedder's f(x) (``clustering.choose_n_clusters``) and
records it in ``auto_k.json``; every later step reads that K from the state, so a
resumed run keeps the K it started with.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import models
from .atomic import (DamagedFile, atomic_publish_dir, atomic_write_bytes, atomic_write_json, atomic_write_jsonl,
                     os_error_of, read_json, read_jsonl, write_problem)
from .clustering import choose_interp_weight, choose_n_clusters, cluster, embed, mean_by_owner, represent
from .config import REPRESENTS, CoEvoConfig
from .contrastive import ContrastiveSettings, train_contrastive
from .density import density_scores
from .errors import CoevoError
from .export import class_keywords
from .guards import GuardStats, answer_cluster_nmi, guard_stats, guard_violations
from .lock import RunLock
from .metrics import evaluate
from .naming import name_clusters
from .predict import final_adapter, save_centers
from .prompts import MAX_TEXT_TOKENS, system_prompt
from .provenance import code_version, peak_rss_mb, reset_peak_rss
from .report import describe_clusters
from .run_folder import AUTO_K_STEP, STEPS, RunFolder, damage_line, read_record, read_rows, step_key
from .selection import select_pairs



def step_seed(seed: int, round_index: int, step: str) -> int:
    return int(np.random.SeedSequence([seed, round_index, STEPS.index(step)]).generate_state(1)[0] % (2**31))


class CoEvolution:
    """Cluster texts with an LLM and an embedding model that improve each other.

    Parameters
    ----------
    config : CoEvoConfig
        Every setting of the run; stored in the run folder.
    run_dir : path, optional
        Where the run writes its rounds, models and results. A temporary folder
        when omitted (``run_dir_`` tells where).
    progress : bool
        Progress bars and one line per finished step, on stderr.

    Attributes (after ``fit``)
    --------------------------
    labels_ : ndarray of int, the cluster of each text.
    n_clusters_ : int, the K the run clustered with (chosen by the run when ``n_clusters="auto"``).
    interpretations_ : list of list of str, the last round's interpretations.
    history_ : list of dict, per round: metrics (with gold labels), guard figures, timings.
    clusters_ : list of dict, per cluster (largest first): size, name (written by the LLM, or its keywords for a
        run without one), keywords (class-based TF-IDF), names (central interpretations), example texts.
    """

    def __init__(self, config: CoEvoConfig, *, run_dir: str | Path | None = None, progress: bool = True,
                 log: Callable[[str], None] | None = None):
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self._warn = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._log = self._warn if progress else (lambda msg: None)
        self._shortened, self._told_shortened = 0, False  # long texts cut for the LLM; said once per invocation

    # ------------------------------------------------------------------ public API

    def fit(self, texts: list[str], labels: list[str] | None = None, *,
            stop_after_round: int | None = None) -> "CoEvolution":
        """Run every round and cluster.

        ``stop_after_round`` ends the run early, after that round's steps, so
        its interpretations and clusters can be looked at (or its cost
        measured) before paying for more rounds; ``resume`` continues it. The
        fitted attributes are set only once the last round has finished.
        """
        _check_stop(stop_after_round)
        if len(texts) < 2:
            raise CoevoError("need at least 2 texts to cluster")
        if labels is not None and len(labels) != len(texts):
            raise CoevoError(f"got {len(texts)} texts but {len(labels)} labels")
        if self.config.auto_k and len(set(texts)) < 2:
            raise CoevoError("option -k/--clusters: fewer than 2 distinct texts; there is no K to choose")
        if not self.config.auto_k and self.config.n_clusters > len(set(texts)):
            raise CoevoError(
                f"option -k/--clusters: {self.config.n_clusters} clusters but only {len(set(texts))} distinct texts"
            )
        run_dir = self.run_dir or Path(tempfile.mkdtemp(prefix="coevo-run-"))
        with _writing(run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
            with RunLock(run_dir, log=self._warn):
                if (run_dir / "state.json").exists():
                    raise CoevoError(f"run folder {run_dir} already holds a run; continue it with --resume {run_dir}, "
                                     "or choose a new folder")
                atomic_write_json(run_dir / "config.json", self.config.to_dict())
                atomic_write_jsonl(run_dir / "data.jsonl", [
                    {"text": t, **({"label": labels[i]} if labels is not None else {})} for i, t in enumerate(texts)
                ])
                atomic_write_json(run_dir / "state.json", {"done": [], "adapter": None, "backoff": 0})
                self.run_dir_, self.folder_ = run_dir, RunFolder(run_dir)
                self._read_data()
                return self._run(stop_after_round)

    @classmethod
    def resume(cls, run_dir: str | Path, *, progress: bool = True, log: Callable[[str], None] | None = None,
               stop_after_round: int | None = None) -> "CoEvolution":
        """Continue a run after the last finished step."""
        _check_stop(stop_after_round)
        run_dir = Path(run_dir)
        for name in ("config.json", "data.jsonl", "state.json"):
            if not (run_dir / name).is_file():
                raise CoevoError(f"--resume {run_dir}: no {name} there; is this a coevo run folder?")
        self = cls(_read_config(run_dir), run_dir=run_dir, progress=progress, log=log)
        self.run_dir_, self.folder_ = run_dir, RunFolder(run_dir)
        with _writing(run_dir), RunLock(run_dir, log=self._warn):
            self._read_data()
            self.folder_.repair(self._steps(), self.texts_, self._warn)
            return self._run(stop_after_round)

    @classmethod
    def load(cls, run_dir: str | Path, *, progress: bool = False) -> "CoEvolution":
        """A finished run, its results (``labels_``, ``history_``, ...) read back; nothing is rewritten."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise CoevoError(f"{run_dir}: no such run folder; give the folder `coevo run` wrote (its -o)")
        if not (run_dir / "summary.json").is_file():
            raise CoevoError(f"{run_dir}: no summary.json; the run is not finished (continue it with --resume {run_dir})")
        self = cls(_read_config(run_dir), run_dir=run_dir, progress=progress, log=lambda msg: None)
        self.run_dir_, self.folder_ = run_dir, RunFolder(run_dir)
        self._read_data()
        try:
            self.summary_ = read_record(run_dir / "summary.json", ("clusters", "rounds"))
            assignments = read_rows(run_dir / "assignments.jsonl", ("cluster",), len(self.texts_))
        except (DamagedFile, FileNotFoundError) as error:
            # both are written from the round folders at the end of every --resume
            raise CoevoError(f"{damage_line(error)}; rebuild it with: coevo run --resume {run_dir}") from None
        self.labels_ = np.array([a["cluster"] for a in assignments])
        self.interpretations_ = [a.get("interpretations", []) for a in assignments]
        self.n_clusters_ = self._n_clusters()
        self.clusters_ = self.summary_["clusters"]
        self.history_ = self.summary_["rounds"]
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The cluster of each text: nearest KMeans centre in the representation the run clustered.

        Texts are represented with the run's final embedder and, where the
        representation reads interpretations, its final LLM and adapter
        sampling with the run's settings and seed. On the training texts this
        gives ``labels_`` exactly when the representation is the text alone.
        """
        return self._predictor().predict(list(texts)).labels

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """The representation the run clustered on (unit rows), for other texts."""
        return self._predictor().transform(list(texts))[0]

    def fit_predict(self, texts: list[str], labels: list[str] | None = None) -> np.ndarray:
        return self.fit(texts, labels).labels_

    def cluster_info(self):
        """One row a cluster (pandas DataFrame): size, name, keywords, representative texts."""
        from .export import cluster_info

        return cluster_info(self)

    def document_info(self):
        """One row a training text (pandas DataFrame): cluster, label, distance, interpretations."""
        from .export import document_info

        return document_info(self)

    def recluster(self, seeds: Sequence[int], *, represent: str | None = None) -> list[dict]:
        """Cluster the final representation again with other KMeans seeds; nothing is retrained.

        This is how benchmarks vary the remaining randomness when the LLM work
        is too costly to repeat per seed. ``represent`` clusters another
        representation of the same final models (``text`` or ``text+interp``),
        to see what the interpretations add. The representation is computed
        once for all seeds. Returns, per seed, the labels and (with gold labels)
        the metrics; the run folder is not changed.
        """
        cfg = self.config
        last = cfg.effective_rounds
        if represent not in (None, *REPRESENTS):
            raise CoevoError(f"represent must be one of {', '.join(REPRESENTS)}, got {represent!r}")
        z, _, _ = self._representation(last, represent)
        results = []
        for seed in seeds:
            labels = cluster(cfg, z, self._n_clusters(), seed=step_seed(seed, last, "cluster")).labels
            out = {"seed": seed, "labels": labels.tolist()}
            if self.gold_ is not None:
                out["metrics"] = evaluate(self.gold_, labels)
            results.append(out)
        return results

    def _predictor(self):
        """Built once per model: it holds the loaded embedder and LLM between calls."""
        from .predict import Predictor

        if not hasattr(self, "labels_"):
            raise CoevoError("the model is not fitted: call fit, or CoEvolution.load(run_dir) a finished run")
        if getattr(self, "_predictor_", None) is None:
            self._predictor_ = Predictor(self, progress=self.progress)
        return self._predictor_

    # ------------------------------------------------------------------ the loop

    def _run(self, stop_after_round: int | None = None) -> "CoEvolution":
        cfg = self.config
        last = cfg.effective_rounds if stop_after_round is None else min(stop_after_round, cfg.effective_rounds)
        started = time.perf_counter()
        for r, step in self._steps(last):
            if self.folder_.is_done(r, step):
                continue
            if r:
                self.folder_.round(r).mkdir(exist_ok=True)
            t0 = time.perf_counter()
            reset_peak_rss()
            getattr(self, f"_{step}")(r)
            _pause_for_tests(step_key(r, step))
            self.folder_.mark_done(r, step, time.perf_counter() - t0)
        if last == cfg.effective_rounds:
            self._finish(time.perf_counter() - started)
        return self

    def _read_data(self) -> None:
        path = self.run_dir_ / "data.jsonl"
        try:
            rows = read_jsonl(path)
            if len(rows) < 2:
                raise DamagedFile(path, f"holds {len(rows)} texts; a run has at least 2")
            labelled = "label" in rows[0]
            for number, row in enumerate(rows, 1):
                if not isinstance(row.get("text"), str) or ("label" in row) != labelled:
                    raise DamagedFile(path, f"row {number} is not a text{' with a label' if labelled else ''} as coevo wrote it")
        except DamagedFile as error:
            raise CoevoError(f"{error}; it holds the run's texts and cannot be rebuilt: restore it, or start a new run") from None
        self.texts_ = [r["text"] for r in rows]
        self.gold_ = [r["label"] for r in rows] if labelled else None
        self.prompt_ = system_prompt(self.config.task, self.config.instruction)

    def _steps(self, last: int | None = None) -> list[tuple[int, str]]:
        """The (round, step) pairs the run makes, in order, up to round ``last``; K's choice is round 0."""
        last = self.config.effective_rounds if last is None else last
        first = [(0, AUTO_K_STEP)] if self.config.auto_k else []
        return first + [(r, step) for r in range(1, last + 1) for step in STEPS if self._applies(r, step)]

    def _n_clusters(self) -> int:
        """K: the configured one, or the one the auto_k step chose, as the state recorded it."""
        if not self.config.auto_k:
            return self.config.n_clusters
        k = self.folder_.state().get("n_clusters")
        if not isinstance(k, int):
            raise CoevoError(f"{self.run_dir_ / 'state.json'}: no K chosen yet; continue the run with "
                             f"coevo run --resume {self.run_dir_}")
        return k

    def _applies(self, r: int, step: str) -> bool:
        cfg = self.config
        if step == AUTO_K_STEP:
            return cfg.auto_k
        if step == "generate":
            return cfg.uses_llm
        if step == "select":
            return cfg.trains_llm or cfg.trains_embedder
        if step == "dpo":
            return cfg.trains_llm and r < cfg.effective_rounds
        if step == "contrastive":
            return cfg.trains_embedder
        return True

    # ------------------------------------------------------------------ steps

    def _generate(self, r: int) -> None:
        cfg, state = self.config, self.folder_.state()
        out = self.folder_.round(r) / "interpretations.jsonl"
        previous = self.folder_.round(r - 1) / "interpretations.jsonl"
        adapter = state["adapter"]
        if r > 1 and not cfg.trains_llm and previous.exists():
            atomic_write_bytes(out, previous.read_bytes())  # same LLM, same seed: same answers
            atomic_write_json(self.folder_.round(r) / "generate.json", read_json(self.folder_.round(r - 1) / "generate.json"))
            return
        sampling = self._sampling()
        interpretations, tok_s = self._interpret(adapter, sampling)
        stats = guard_stats(self.texts_, interpretations, self.prompt_)
        info = {"adapter": adapter, "guards": stats.to_dict(), "tokens_per_second": tok_s, "backed_off": None,
                "shortened_texts": self._shortened}
        if r > 1 and adapter is not None:
            first = GuardStats(**read_json(self.folder_.round(1) / "generate.json")["guards"])
            if cfg.guard_consolidation:
                clusters = [a["cluster"] for a in read_jsonl(self.folder_.round(r - 1) / "assignments.jsonl")]
                marks = {"round1": answer_cluster_nmi(self.folder_.interpretations(1), clusters),
                         "now": answer_cluster_nmi(interpretations, clusters)}
                info["answer_cluster_nmi"] = marks
                problems = guard_violations(first, stats, consolidated=marks["now"] >= marks["round1"])
                info["waived"] = [p for p in guard_violations(first, stats) if p not in problems]
            else:
                problems = guard_violations(first, stats)
            if problems:
                fallback = state["adapter_history"][-2] if len(state.get("adapter_history", [])) > 1 else None
                self._warn(f"warning: round {r}: the trained LLM degraded ({'; '.join(problems)}); "
                          f"backing off to {'the base LLM' if fallback is None else fallback} and halving the DPO step")
                interpretations, tok_s = self._interpret(fallback, sampling)
                stats = guard_stats(self.texts_, interpretations, self.prompt_)
                info.update({"backed_off": {"from": adapter, "to": fallback, "problems": problems},
                             "adapter": fallback, "guards": stats.to_dict()})  # the state follows at mark_done
        atomic_write_jsonl(out, [{"index": i, "interpretations": ys} for i, ys in enumerate(interpretations)])
        atomic_write_json(self.folder_.round(r) / "generate.json", info)
        self._log(f"round {r}: {stats.n_interpretations} interpretations, distinct {stats.distinct_share:.0%}, "
                  f"{stats.mean_words:.1f} words, copies {stats.copy_rate:.1%}, leaks {stats.leak_rate:.1%}")

    def _sampling(self):
        """How the generate step samples; prediction samples the same way."""
        from .generation import SamplingConfig

        cfg = self.config
        return SamplingConfig(cfg.samples, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.generation_batch_size, cfg.seed)

    def _interpret(self, adapter: str | None, sampling) -> tuple[list[list[str]], float | None]:
        from .generation import Interpreter

        cfg = self.config
        interpreter = Interpreter(cfg.llm, adapter, cache_dir=cfg.cache_dir, trust_remote_code=cfg.trust_remote_code,
                                  backend=cfg.generation_backend)
        try:
            answers = interpreter.interpret(self.texts_, cfg.task, cfg.instruction, sampling, progress=self.progress)
            self._shortened = interpreter.shortened_texts
            if self._shortened and not self._told_shortened:
                self._told_shortened = True
                many = self._shortened > 1
                self._warn(f"{self._shortened} text{'s' if many else ''} longer than {MAX_TEXT_TOKENS} tokens "
                           f"{'were' if many else 'was'} shortened for the LLM")
            return answers, interpreter.tokens_per_second
        finally:
            del interpreter
            gc.collect()

    def _auto_k(self, r: int) -> None:
        """Choose K once, before anything is trained, on the base embedder's f(x): no step's output can
        sway it, and every round clusters into the same K."""
        cfg = self.config
        text_vec = embed(self._embedder(0), self.texts_, progress=self.progress, desc="embed texts")
        choice = choose_n_clusters(text_vec, seed=cfg.seed)
        atomic_write_json(self.run_dir_ / f"{AUTO_K_STEP}.json", choice)
        low, high = choice["range"]
        self._log(f"K = {choice['k']}, chosen without labels ({choice['criterion']} over K = {low}..{high})")

    def _select(self, r: int) -> None:
        cfg = self.config
        seed = step_seed(cfg.seed, r, "select")
        rng = np.random.default_rng(seed)
        interpretations = self.folder_.interpretations(r)
        embedder = self._embedder(r - 1)
        text_vec, interp_vec, owner = self._embed_all(embedder, interpretations)
        interp_mean, counts = mean_by_owner(interp_vec, owner, len(self.texts_))
        z = represent(text_vec, interp_mean, counts)
        k = self._n_clusters()
        clusters = cluster(cfg, z, k, seed=seed)
        if cfg.method in ("contrastive-only", "random-select"):
            scores = rng.random(len(interp_vec)).astype(np.float32)
        else:
            scores = density_scores(cfg, interp_vec, owner, clusters.labels, k)
        per_text = _split(scores.tolist(), interpretations)
        random_choice = cfg.method in ("contrastive-only", "random-select")
        common = dict(prompt=self.prompt_, max_copy_rate=cfg.max_copy_rate, random_choice=random_choice)
        # Contrastive step: every text with a usable chosen answer. DPO: the top margins only.
        positives = select_pairs(self.texts_, interpretations, per_text, keep_fraction=1.0, rng=rng, **common)
        pairs = select_pairs(self.texts_, interpretations, per_text, keep_fraction=cfg.keep_fraction,
                             max_pairs=cfg.max_pairs, rng=rng, **common)
        atomic_write_jsonl(self.folder_.round(r) / "scores.jsonl", [
            {"index": i, "interpretations": ys, "scores": ss} for i, (ys, ss) in enumerate(zip(interpretations, per_text))
        ])
        atomic_write_jsonl(self.folder_.round(r) / "positives.jsonl", [p.to_dict() for p in positives])
        atomic_write_jsonl(self.folder_.round(r) / "pairs.jsonl", [p.to_dict() for p in pairs])
        info = {"n_positives": len(positives), "n_pairs": len(pairs),
                "mean_margin": float(np.mean([p.margin for p in pairs])) if pairs else None}
        if self.gold_ is not None:
            only = cluster(cfg, interp_mean[counts > 0], k, seed=seed)
            info["interp_only"] = evaluate([g for g, c in zip(self.gold_, counts) if c > 0], only.labels)
            info["selection_clusters"] = evaluate(self.gold_, clusters.labels)
        atomic_write_json(self.folder_.round(r) / "select.json", info)
        self._log(f"round {r}: {len(pairs)} preference pairs, {len(positives)} contrastive pairs")

    def _dpo(self, r: int) -> None:
        from .preference import DPOSettings, preference_records, train_dpo

        cfg, state = self.config, self.folder_.state()
        pairs = read_jsonl(self.folder_.round(r) / "pairs.jsonl")
        if not pairs:
            self._log(f"round {r}: no preference pairs; the LLM is not trained this round")
            atomic_write_json(self.folder_.round(r) / "dpo.json", {"pairs": 0})
            return
        from .selection import PreferencePair

        pair_objs = [PreferencePair(p["text_index"], p["chosen"], p["rejected"], p["chosen_score"], p["rejected_score"]) for p in pairs]
        slowdown = 2 ** state.get("backoff", 0)
        settings = DPOSettings(
            learning_rate=cfg.dpo_learning_rate / slowdown, beta=cfg.dpo_beta * slowdown, sft_weight=cfg.dpo_sft_weight,
            batch_size=cfg.dpo_batch_size, epochs=cfg.dpo_epochs, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
            seed=step_seed(cfg.seed, r, "dpo"),
        )
        target = self.folder_.round(r) / "adapter"
        build = target.with_name(".adapter.tmp")
        shutil.rmtree(build, ignore_errors=True)
        summary = train_dpo(cfg.llm, preference_records(self.texts_, pair_objs, cfg.task, cfg.instruction), build,
                            settings=settings, previous_adapter=state["adapter"], cache_dir=cfg.cache_dir,
                            trust_remote_code=cfg.trust_remote_code, progress=self.progress)
        shutil.rmtree(build / "_trainer", ignore_errors=True)
        atomic_publish_dir(build, target)
        gc.collect()
        atomic_write_json(self.folder_.round(r) / "dpo.json", summary)  # the state follows at mark_done
        self._log(f"round {r}: DPO on {len(pairs)} pairs, loss {summary['loss_first']:.3f} -> {summary['loss_last']:.3f}, "
                  f"{summary['train_seconds']:.0f}s")

    def _contrastive(self, r: int) -> None:
        cfg = self.config
        positives = read_jsonl(self.folder_.round(r) / "positives.jsonl")
        target = self.folder_.round(r) / "embedder"
        if not positives:
            self._log(f"round {r}: no contrastive pairs; the embedder is not trained this round")
            atomic_write_json(self.folder_.round(r) / "contrastive.json", {"pairs": 0})
            return
        embedder = self._embedder(r - 1)
        build = target.with_name(".embedder.tmp")
        shutil.rmtree(build, ignore_errors=True)
        settings = ContrastiveSettings(cfg.contrastive_batch_size, cfg.contrastive_learning_rate, cfg.contrastive_epochs,
                                       step_seed(cfg.seed, r, "contrastive"), cfg.contrastive_loss)
        guide = self._embedder(0) if cfg.contrastive_loss == "gist" else None
        summary = train_contrastive(embedder, [self.texts_[p["text_index"]] for p in positives],
                                    [p["chosen"] for p in positives], build, settings=settings, guide=guide,
                                    progress=self.progress)
        shutil.rmtree(build / "_trainer", ignore_errors=True)
        atomic_publish_dir(build, target)
        atomic_write_json(self.folder_.round(r) / "contrastive.json", summary)
        self._log(f"round {r}: contrastive step on {len(positives)} pairs, loss {summary['loss_first']:.3f} -> "
                  f"{summary['loss_last']:.3f}")

    def _cluster(self, r: int) -> None:
        cfg = self.config
        z, (interpretations, interp_vec, owner), weight = self._representation(r)
        result = cluster(cfg, z, self._n_clusters(), seed=step_seed(cfg.seed, r, "cluster"))
        save_centers(self.folder_.round(r), z, result.labels, result.centers)
        clusters = describe_clusters(self.texts_, result.labels, z, interpretations, interp_vec, owner)
        atomic_write_jsonl(self.folder_.round(r) / "assignments.jsonl", [
            {"text": t, "cluster": int(c), **({"label": self.gold_[i]} if self.gold_ is not None else {}),
             **({"interpretations": interpretations[i]} if interpretations is not None else {})}
            for i, (t, c) in enumerate(zip(self.texts_, result.labels))
        ])
        info = {"clusters": clusters, "kmeans_backend": result.backend, **weight}
        if self.gold_ is not None:
            info["metrics"] = evaluate(self.gold_, result.labels)
            self._log(f"round {r}: ACC {info['metrics']['acc']:.1f}  NMI {info['metrics']['nmi']:.1f}  "
                      f"ARI {info['metrics']['ari']:.1f}")
        atomic_write_json(self.folder_.round(r) / "cluster.json", info)

    # ------------------------------------------------------------------ results

    def _finish(self, seconds: float) -> None:
        cfg = self.config
        last = self.folder_.round(cfg.effective_rounds)
        final = read_json(last / "cluster.json")
        assignments = read_jsonl(last / "assignments.jsonl")
        self.labels_ = np.array([a["cluster"] for a in assignments])
        self.interpretations_ = [a.get("interpretations", []) for a in assignments]
        self.n_clusters_ = self._n_clusters()
        self._predictor_ = None  # a later predict loads this run's final models
        named = {entry["cluster"]: entry for entry in self._names(final["clusters"])["clusters"]}
        self.clusters_ = [{**entry, "name": named[entry["cluster"]]["name"], "keywords": named[entry["cluster"]]["keywords"]}
                          for entry in final["clusters"]]
        self.history_ = [self._round_summary(r) for r in range(1, cfg.effective_rounds + 1)]
        atomic_write_bytes(self.run_dir_ / "assignments.jsonl", (last / "assignments.jsonl").read_bytes())
        state = self.folder_.state()
        summary = {
            "config": cfg.to_dict(),
            "n_texts": len(self.texts_),
            "n_clusters": self.n_clusters_,
            **({"auto_k": read_json(self.run_dir_ / f"{AUTO_K_STEP}.json", dict)} if cfg.auto_k else {}),
            "metrics": final.get("metrics"),
            "rounds": self.history_,
            "clusters": self.clusters_,
            "seconds_this_invocation": seconds,
            "seconds_total": sum(state.get("seconds", {}).values()),
            "peak_rss_mb": max(peak_rss_mb(), state.get("peak_rss_mb", 0.0)),
            # every commit (or version) that ran a step of this run: more than one when it was resumed on other code
            "code": sorted(set(state.get("code_by_step", {}).values()) | {code_version()}),
        }
        atomic_write_json(self.run_dir_ / "summary.json", summary)
        self.summary_ = summary

    def _names(self, clusters: list[dict]) -> dict:
        """Each final cluster's name and keywords (``naming``), kept in ``round<T>/names.json``.

        Naming is part of the finish, not a step: it reads the final clusters and
        changes nothing a step builds on. The file records what it named (a hash
        of the final assignments and cluster descriptions), so a finish that runs
        again, after ``--resume`` or a redone cluster step, reuses it only while it
        still describes these clusters; a run killed while naming names again.
        """
        cfg, folder = self.config, self.folder_.round(self.config.effective_rounds)
        basis = hashlib.sha256((folder / "assignments.jsonl").read_bytes()
                               + json.dumps(clusters, sort_keys=True).encode("utf-8")).hexdigest()
        path = folder / "names.json"
        try:
            kept = read_json(path, dict) if path.is_file() else None
        except DamagedFile as error:
            self._warn(f"warning: {error}; naming the clusters again")
            kept = None
        if kept is not None and kept.get("basis") == basis and _names_cover(kept.get("clusters"), clusters):
            return kept
        t0 = time.perf_counter()
        keywords = class_keywords(self.texts_, self.labels_)
        adapter = final_adapter(self) if cfg.uses_llm else None
        names, sources = name_clusters(clusters, keywords, cfg, adapter, progress=self.progress)
        record = {"basis": basis, "llm": cfg.llm if cfg.uses_llm else None, "adapter": adapter,
                  "clusters": [{"cluster": entry["cluster"], "name": name, "source": source,
                                "keywords": keywords.get(entry["cluster"], [])}
                               for entry, name, source in zip(clusters, names, sources)],
                  "seconds": time.perf_counter() - t0}
        atomic_write_json(path, record)
        if cfg.uses_llm:
            self._log(f"named {len(names)} clusters: {sources.count('llm')} by the LLM, "
                      f"{len(names) - sources.count('llm')} by a central interpretation or keywords (no usable answer)")
        return record

    def _round_summary(self, r: int) -> dict:
        folder = self.folder_.round(r)
        row: dict = {"round": r}
        for name in ("generate", "select", "dpo", "contrastive", "cluster"):
            path = folder / f"{name}.json"
            if path.exists():
                data = read_json(path)
                if name == "cluster":
                    row["metrics"] = data.get("metrics")
                elif name == "generate":
                    row["guards"] = data.get("guards")
                    row["backed_off"] = data.get("backed_off")
                    row["tokens_per_second"] = data.get("tokens_per_second")
                elif name == "select":
                    row["interp_only"] = data.get("interp_only")
                    row["n_pairs"] = data.get("n_pairs")
                else:
                    row[name] = data
        state = self.folder_.state()
        for key in ("seconds", "peak_rss_mb_by_step"):
            row[key] = {k.split("/", 1)[1]: v for k, v in state.get(key, {}).items() if k.startswith(f"round{r}/")}
        return row

    # ------------------------------------------------------------------ helpers

    def _embedder(self, r: int):
        """The embedder as it stood after round ``r`` (the base model for r = 0 or an untrained round)."""
        folder = self.folder_.embedder_folder(r)
        if folder is not None:
            return models.load_embedder(str(folder), trust_remote_code=self.config.trust_remote_code)
        return models.load_embedder(self.config.embedder, cache_dir=self.config.cache_dir,
                                    trust_remote_code=self.config.trust_remote_code)

    def _representation(self, r: int, kind: str | None = None):
        """What KMeans clusters after round ``r``: f_r(x), joined with the weighted mean f_r(y) when configured
        (or when ``kind`` says so); also the interpretations and, as a dict for cluster.json, the weight used.

        ``auto`` picks the weight once, at the round's cluster step, and reads it back from there later
        (recluster, predict), so every clustering of a finished run sees the same representation.
        """
        cfg = self.config
        kind = kind or cfg.represent
        interpretations = self.folder_.interpretations(r) if cfg.uses_llm else None
        text_vec, interp_vec, owner = self._embed_all(self._embedder(r), interpretations or [[] for _ in self.texts_])
        interp_mean, counts = mean_by_owner(interp_vec, owner, len(self.texts_))
        weight: dict = {}
        if interpretations is None or kind == "text":
            w = 0.0
        elif kind == "auto":
            recorded = self.folder_.recorded_interp_weight(r) if cfg.represent == "auto" else None
            if recorded is not None:
                w = recorded
            else:
                w, curve = choose_interp_weight(text_vec, interp_mean, counts, self._n_clusters(),
                                                seed=step_seed(cfg.seed, r, "cluster"))
                weight = {"interp_weight": w, "interp_weight_curve": curve}
                self._log(f"round {r}: interpretation weight {w:g} (label-free choice)")
        else:
            w = cfg.interp_weight
        z = represent(text_vec, interp_mean, counts, weight=w)
        return z, (interpretations, interp_vec, owner), weight or {"interp_weight": w}

    def _embed_all(self, embedder, interpretations: list[list[str]]):
        flat = [y for ys in interpretations for y in ys]
        owner = np.array([i for i, ys in enumerate(interpretations) for _ in ys], dtype=np.int64)
        text_vec = embed(embedder, self.texts_, progress=self.progress, desc="embed texts")
        interp_vec = embed(embedder, flat, progress=self.progress, desc="embed interpretations")
        return text_vec, interp_vec, owner


def _names_cover(named, clusters: list[dict]) -> bool:
    """Whether names.json's clusters are these clusters, in order, each with a name and keywords."""
    return (isinstance(named, list) and len(named) == len(clusters)
            and all(isinstance(n, dict) and n.get("cluster") == c["cluster"] and isinstance(n.get("name"), str)
                    and isinstance(n.get("keywords"), list) for n, c in zip(named, clusters)))


def _read_config(run_dir: Path) -> CoEvoConfig:
    """The run's settings; damage here cannot be repaired, since every step depends on them."""
    path = run_dir / "config.json"
    advice = "it holds the run's settings and cannot be rebuilt: restore it, or start a new run"
    try:
        return CoEvoConfig.from_dict(read_json(path, dict))
    except DamagedFile as error:
        raise CoevoError(f"{error}; {advice}") from None
    except CoevoError as error:
        raise CoevoError(f"{path}: {str(error).removeprefix('config: ')}; {advice}") from None
    except (TypeError, ValueError) as error:  # a value of the wrong type, e.g. a string where a number belongs
        raise CoevoError(f"{path}: a setting has a value of the wrong type ({error}); {advice}") from None


@contextmanager
def _writing(run_dir: Path) -> Iterator[None]:
    """A full disk or a folder without write permission: one line saying what is kept and how to go on."""
    try:
        yield
    except Exception as error:  # a trainer's own save reports a full disk as its library's error
        problem = write_problem(error)
        if problem is None:
            raise
        try:
            started = (run_dir / "state.json").is_file()
        except OSError:
            started = False
        full = os_error_of(error).errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        fix = "free some space" if full else "make it writable"
        advice = (f"the finished steps are kept; {fix}, then continue with: coevo run --resume {run_dir}"
                  if started else f"{fix}, or choose another run folder with -o")
        raise CoevoError(f"{problem}; {advice}") from None


def _pause_for_tests(where: str) -> None:
    """Test hook: COEVO_TEST_PAUSE_AT=round1/dpo stops the run once that step's outputs are written and
    before the step is recorded, so a test can kill it there or try a second writer. Nothing else sets it."""
    if os.environ.get("COEVO_TEST_PAUSE_AT") == where:
        print(f"coevo: paused at {where} (COEVO_TEST_PAUSE_AT)", file=sys.stderr, flush=True)
        time.sleep(600)


def _check_stop(stop_after_round: int | None) -> None:
    if stop_after_round is not None and stop_after_round < 1:
        raise CoevoError(f"stop_after_round must be at least 1, got {stop_after_round}")


def _split(flat: list[float], shape: list[list[str]]) -> list[list[float]]:
    out, start = [], 0
    for ys in shape:
        out.append(flat[start : start + len(ys)])
        start += len(ys)
    return out
