"""The co-evolution loop: generate -> density -> select -> DPO -> contrastive -> cluster, over rounds.

``CoEvolution`` is the public entry point (``fit`` / ``labels_``). Every step
of every round writes its outputs into the run folder atomically and is then
recorded in ``state.json`` (``run_folder.RunFolder`` owns that folder); ``CoEvolution.resume(run_dir)`` replays nothing
that finished. Each step draws its randomness from (seed, round, step) and
reloads its models from the run folder, so a resumed run ends with the same
clusters as an uninterrupted one.

Which steps run, and what each writes, is in ``steps`` (one class a step).

With ``n_clusters="auto"`` one step comes before round 1: ``auto_k`` chooses K
without labels on the base embedder's f(x) (``clustering.choose_n_clusters``) and
records it in ``auto_k.json``; every later step reads that K from the state, so a
resumed run keeps the K it started with.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .atomic import (DamagedFile, atomic_write_bytes, atomic_write_json, atomic_write_jsonl, os_error_of, read_json,
                     read_jsonl, write_problem)
from .clustering import cluster
from .config import REPRESENTS, CoEvoConfig
from .errors import CoevoError
from .export import class_keywords
from .lock import RunLock
from .metrics import evaluate
from .naming import name_clusters
from .predict import final_adapter
from .provenance import code_version, peak_rss_mb, release_freed_memory, reset_peak_gpu, reset_peak_rss
from .run_folder import AUTO_K_STEP, RunFolder, damage_line, read_record, read_rows, step_key
from .steps import RunContext, plan, step_seed

__all__ = ["CoEvolution", "step_seed"]


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
        self.n_clusters_ = self.context_.n_clusters()
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
        z = self.context_.representation(last, represent).z
        results = []
        for seed in seeds:
            labels = cluster(cfg, z, self.context_.n_clusters(), seed=step_seed(seed, last, "cluster")).labels
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
        for r, step in plan(cfg, last):
            if self.folder_.is_done(r, step.name):
                continue
            if r:
                self.folder_.round(r).mkdir(exist_ok=True)
            t0 = time.perf_counter()
            release_freed_memory()
            reset_peak_rss()
            reset_peak_gpu()
            step.run(self.context_, r)
            _pause_for_tests(step_key(r, step.name))
            self.folder_.mark_done(r, step.name, time.perf_counter() - t0)
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
        self.context_ = RunContext(self.config, self.folder_, self.texts_, self.gold_, progress=self.progress,
                                   log=self._log, warn=self._warn)

    def _steps(self, last: int | None = None) -> list[tuple[int, str]]:
        """The (round, step name) pairs the run makes, in order, up to round ``last`` (``steps.plan``)."""
        return [(r, step.name) for r, step in plan(self.config, last)]

    # ------------------------------------------------------------------ results

    def _finish(self, seconds: float) -> None:
        cfg = self.config
        last = self.folder_.round(cfg.effective_rounds)
        final = read_json(last / "cluster.json")
        assignments = read_jsonl(last / "assignments.jsonl")
        self.labels_ = np.array([a["cluster"] for a in assignments])
        self.interpretations_ = [a.get("interpretations", []) for a in assignments]
        self.n_clusters_ = self.context_.n_clusters()
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
            **({"peak_gpu_mb": max(state["peak_gpu_mb_by_step"].values())} if state.get("peak_gpu_mb_by_step") else {}),
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
        record = {"basis": basis, "llm": cfg.llm if cfg.uses_llm else None,
                  "adapter": None if adapter is None else Path(adapter).relative_to(self.run_dir_).as_posix(),
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
                    # the weight of mean f(y) this round clustered with (0: f(x) alone), as represent chose it
                    row["interp_weight"] = data.get("interp_weight")
                    if data.get("interp_only"):  # measured here when the round has no select step
                        row["interp_only"] = data["interp_only"]
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
        for key in ("seconds", "peak_rss_mb_by_step", "peak_gpu_mb_by_step"):
            row[key] = {k.split("/", 1)[1]: v for k, v in state.get(key, {}).items() if k.startswith(f"round{r}/")}
        return row

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
