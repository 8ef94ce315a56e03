"""A run's folder on disk: ``state.json`` (the finished steps and what they changed), one folder per
round, and each step's record (``<step>.json``, written after all the step's other outputs).

``CoEvolution`` decides what runs; this module is where it is written down and read back, and
where ``--resume`` checks that what it builds on is whole (``repair``). Layout::

    config.json  data.jsonl  state.json  [auto_k.json]  summary.json  assignments.jsonl
    round<r>/  interpretations.jsonl  generate.json  scores.jsonl  positives.jsonl  pairs.jsonl
               select.json  adapter/  dpo.json  embedder/  contrastive.json
               assignments.jsonl  cluster.json  centroids.npy  [names.json]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from . import models
from .atomic import DamagedFile, atomic_write_json, read_json, read_jsonl
from .provenance import code_version, peak_gpu_mb, peak_rss_mb

STEPS = ("generate", "select", "dpo", "contrastive", "cluster")
AUTO_K_STEP = "auto_k"
"""The step before round 1 of a run with ``n_clusters="auto"``; its record is ``<run folder>/auto_k.json``."""

_STEP = re.compile(rf"{AUTO_K_STEP}|round[1-9][0-9]*/({'|'.join(STEPS)})")


def step_key(r: int, step: str) -> str:
    """A step's name in state.json: ``round<r>/<step>``, or ``auto_k`` for K's choice before round 1."""
    return step if r == 0 else f"round{r}/{step}"


class RunFolder:
    """The files of one run, with typed reads and atomic writes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def round(self, r: int) -> Path:
        return self.path / f"round{r}"

    def record_path(self, r: int, step: str) -> Path:
        """Where a step writes its record (``<step>.json``): the round's folder, the run folder for K's choice."""
        return (self.path if r == 0 else self.round(r)) / f"{step}.json"

    def adapter_dir(self, recorded: str | None) -> Path | None:
        """The LoRA adapter that state.json or a ``generate.json`` names, in this folder. Records name it
        relative to the run folder (``round1/adapter``), so a folder moved or copied, even mid-run,
        resumes and predicts with its own adapters; a path an older version recorded whole is taken at
        the same round here. None: the base LLM."""
        if recorded is None:
            return None
        path = Path(recorded)
        return self.path / (Path(path.parent.name, path.name) if path.is_absolute() else path)

    # ------------------------------------------------------------------ state.json

    def state(self) -> dict:
        return read_json(self.path / "state.json", dict)

    def save_state(self, state: dict) -> None:
        atomic_write_json(self.path / "state.json", state)

    def is_done(self, r: int, step: str) -> bool:
        return step_key(r, step) in self.state()["done"]

    def mark_done(self, r: int, step: str, seconds: float) -> None:
        """Record a finished step: its effect on the state (``advance``), its time, peak memory and code."""
        state = self.state()
        advance(state, r, step, read_json(self.record_path(r, step), dict), self.round(r))
        key = step_key(r, step)
        state.setdefault("seconds", {})[key] = seconds
        peak = peak_rss_mb()  # since the step began (reset_peak_rss), where the system allows it
        state.setdefault("peak_rss_mb_by_step", {})[key] = peak
        state["peak_rss_mb"] = max(peak, state.get("peak_rss_mb", 0.0))
        gpu = peak_gpu_mb()
        if gpu is not None:
            state.setdefault("peak_gpu_mb_by_step", {})[key] = gpu
        state.setdefault("code_by_step", {})[key] = code_version()
        self.save_state(state)

    # ------------------------------------------------------------------ what steps left behind

    def interpretations(self, r: int) -> list[list[str]]:
        return [row["interpretations"] for row in read_jsonl(self.round(r) / "interpretations.jsonl")]

    def embedder_folder(self, r: int) -> Path | None:
        """The folder of the embedder as it stood after round ``r``: the last round up to ``r`` that trained
        one; None for the base model."""
        return next((self.round(k) / "embedder" for k in range(r, 0, -1) if (self.round(k) / "embedder").is_dir()),
                    None)

    def recorded_weighting(self, r: int) -> dict:
        """How round ``r``'s cluster step weighted the interpretations, as its cluster.json says (empty before it
        ran): ``interp_weight``, and ``mean_agreement`` for ``represent agreement``. A weight chosen per run
        (``represent auto`` or ``gate``) is reused, not chosen again, by recluster and predict, and new texts are weighed
        against the fitted texts' mean agreement."""
        path = self.round(r) / "cluster.json"
        info = read_json(path, dict) if path.is_file() else {}
        return {key: float(info[key]) for key in ("interp_weight", "mean_agreement") if info.get(key) is not None}

    # ------------------------------------------------------------------ damaged run folders

    def repair(self, steps: Sequence[tuple[int, str]], texts: Sequence[str], warn: Callable[[str], None]) -> None:
        """Check what ``--resume`` builds on, so damage is redone rather than met mid-run as a traceback.

        ``steps`` are the run's (round, step) pairs in order. A damaged state.json
        is rebuilt from the steps' records: each step writes its record after all
        its other outputs, so a readable record means a finished step. A finished
        step whose outputs no longer read back is redone, with every step after it.
        """
        path = self.path / "state.json"
        try:
            state = read_json(path, dict)
            problem = state_problem(state)
        except DamagedFile as error:
            state, problem = None, error.problem
        if state is None or problem is not None:
            state = self.rebuild_state(steps, texts)
            where = f"continuing after {state['done'][-1]}" if state["done"] else "starting from the first step"
            warn(f"warning: {path}: {problem}; rebuilt it from the step records, {where}")
            self.save_state(state)
            return
        for i, step in enumerate(state["done"]):
            r, name = (0, step) if step == AUTO_K_STEP else (int(step[5 : step.index("/")]), step.split("/")[1])
            damage = self.damage(r, name, texts)
            if damage is None:
                continue
            for later in state["done"][i:]:  # their records must not count as finished when state is rebuilt
                (self.path / f"{later}.json").unlink(missing_ok=True)
            rebuilt = self.rebuild_state(steps, texts)
            for key in ("seconds", "peak_rss_mb_by_step", "peak_gpu_mb_by_step", "code_by_step"):
                rebuilt[key] = {k: v for k, v in state.get(key, {}).items() if k in rebuilt["done"]}
            rebuilt["peak_rss_mb"] = state.get("peak_rss_mb", 0.0)
            warn(f"warning: {damage}; redoing {step} and the steps after it")
            self.save_state(rebuilt)
            return

    def rebuild_state(self, steps: Sequence[tuple[int, str]], texts: Sequence[str]) -> dict:
        """state.json as the run left it, replayed from the records of the finished steps, in order."""
        state: dict = {"done": [], "adapter": None, "backoff": 0}
        for r, step in steps:
            if self.damage(r, step, texts) is not None:
                return state
            advance(state, r, step, read_json(self.record_path(r, step), dict), self.round(r))
        return state

    def damage(self, r: int, step: str, texts: Sequence[str]) -> str | None:
        """What is wrong with the outputs of a step (missing, cut short, foreign); None when they read back whole."""
        folder, n = self.round(r), len(texts)
        try:
            if step == AUTO_K_STEP:
                record = read_record(self.record_path(r, step), ("k", "criterion", "curve", "range"))
                if not isinstance(record["k"], int) or not 2 <= record["k"] <= len(set(texts)):
                    raise DamagedFile(self.record_path(r, step), f"its K {record['k']!r} is not one this run can use")
            elif step == "generate":
                read_rows(folder / "interpretations.jsonl", ("interpretations",), n)
                read_record(folder / "generate.json", ("guards",))
            elif step == "select":
                read_rows(folder / "scores.jsonl", ("interpretations", "scores"), n)
                read_rows(folder / "positives.jsonl", ("text_index", "chosen"))
                read_rows(folder / "pairs.jsonl", ("text_index", "chosen", "rejected", "chosen_score", "rejected_score"))
                read_record(folder / "select.json", ("n_pairs",))
            elif step == "dpo":
                if read_record(folder / "dpo.json", ("pairs",))["pairs"]:
                    read_json(folder / "adapter" / "adapter_config.json", dict)
                    models.check_saved_weights(folder / "adapter", required="adapter_model.safetensors")
            elif step == "contrastive":
                if read_record(folder / "contrastive.json", ("pairs",))["pairs"]:
                    read_json(folder / "embedder" / "modules.json", list)
                    models.check_saved_weights(folder / "embedder")
            else:
                read_rows(folder / "assignments.jsonl", ("cluster",), n)
                read_record(folder / "cluster.json", ("clusters",))
        except (DamagedFile, FileNotFoundError) as error:
            return damage_line(error)
        return None


def advance(state: dict, r: int, step: str, record: dict, folder: Path) -> None:
    """A finished step's effect on the run's state, read from the step's own record (``<step>.json``).

    Steps never change state.json themselves: a process killed after a step wrote
    its outputs but before it was recorded redoes the step, and a redo must start
    from the state the first attempt started from (a DPO step that had already
    moved the adapter forward would train on top of its own result). Recording
    and replaying (``rebuild_state``) go through this one function.
    """
    if step == "generate" and record.get("backed_off"):
        state.update(adapter=record["backed_off"]["to"], backoff=state.get("backoff", 0) + 1)
    if step == "dpo" and record["pairs"]:
        state["adapter"] = f"{folder.name}/adapter"  # relative to the run folder (RunFolder.adapter_dir)
        state.setdefault("adapter_history", []).append(state["adapter"])
    if step == AUTO_K_STEP:
        state["n_clusters"] = record["k"]
    state["done"].append(step_key(r, step))


def state_problem(state: dict) -> str | None:
    """Why ``state`` is not a state.json that coevo wrote; None when it is one."""
    done = state.get("done")
    if not isinstance(done, list) or not all(isinstance(s, str) and _STEP.fullmatch(s) for s in done):
        return "its list of finished steps is missing or foreign"
    if not isinstance(state.get("adapter"), (str, type(None))) or not isinstance(state.get("backoff", 0), int):
        return "its adapter or backoff entry is foreign"
    if not isinstance(state.get("seconds", {}), dict) or not isinstance(state.get("adapter_history", []), list):
        return "its timings or adapter history are foreign"
    if AUTO_K_STEP in done and not isinstance(state.get("n_clusters"), int):
        return "it records K's choice but not the K chosen"
    return None


def read_record(path: Path, keys: Sequence[str]) -> dict:
    """A step's record (or summary.json), refused when it lacks a key coevo writes."""
    record = read_json(path, dict)
    missing = [k for k in keys if k not in record]
    if missing:
        raise DamagedFile(path, f"lacks {', '.join(missing)}; not the file coevo wrote")
    return record


def read_rows(path: Path, keys: Sequence[str], count: int | None = None) -> list[dict]:
    """A JSON-lines output, refused when cut short (``count`` rows expected) or foreign."""
    rows = read_jsonl(path)
    if count is not None and len(rows) != count:
        raise DamagedFile(path, f"has {len(rows)} rows where the run has {count} texts (cut short?)")
    for number, row in enumerate(rows, 1):
        missing = [k for k in keys if k not in row]
        if missing:
            raise DamagedFile(path, f"row {number} lacks {', '.join(missing)}; not the file coevo wrote")
    return rows


def damage_line(error: DamagedFile | FileNotFoundError) -> str:
    return str(error) if isinstance(error, DamagedFile) else f"{error.filename}: missing"
