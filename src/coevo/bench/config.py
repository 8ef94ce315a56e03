"""A benchmark tier's TOML config: parsed and checked into a ``BenchConfig``, every problem a
one-line error naming the file and the key (the keys are documented in ``coevo.bench``)."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import METHODS, CoEvoConfig
from ..errors import CoevoError
from .results import repo_root

DATASET_TASKS: dict[str, str] = {
    "bank77": "intent", "clinc_intent": "intent", "mtop_intent": "intent", "massive_intent": "intent",
    "fewrel": "type", "fewnerd": "type", "fewevent": "type",
    "stackexchange": "topic", "arxiv_s2s": "topic", "reddit": "topic",
    "goemo": "emotion",
    "clinc_domain": "domain", "mtop_domain": "domain", "massive_domain": "domain",
    # the short-text sets (section 2): outside both halves of issue 13, so a rule can be tried on them
    "stackoverflow": "topic", "biomedical": "topic", "searchsnippets": "topic", "agnews8k": "topic",
    "tweet": "topic", "googlenews_ts": "topic", "googlenews_t": "topic", "googlenews_s": "topic",
}
"""The datasets a tier may list (shared/data/README.md, sections 1 and 2: the 14 ClusterLLM sets and the
classic short-text sets) and the task each is clustered by."""

SEED_POLICIES: tuple[str, ...] = ("full", "recluster")

_PER_CELL = ("n_clusters", "task", "method", "seed")  # a cell's own: from its dataset, column and seed


def _setting_types() -> dict[str, type]:
    hints = typing.get_type_hints(CoEvoConfig)
    out = {}
    for f in dataclasses.fields(CoEvoConfig):
        if f.name not in _PER_CELL:
            kind = hints[f.name]
            out[f.name] = next(a for a in typing.get_args(kind) if a is not type(None)) if typing.get_args(kind) else kind
    return out


SETTINGS: dict[str, type] = _setting_types()
"""Run settings a config may set: every ``CoEvoConfig`` field but those each cell sets itself, with its type
(``int | None`` is ``int``: left out means the default)."""

_NO_EFFECT: dict[str, frozenset[str]] = {
    "kmeans": frozenset({"llm", "samples", "temperature", "top_p", "max_new_tokens", "generation_batch_size", "task",
                         "instruction", "represent", "interp_weight"}),
    "expand": frozenset(),
}
_TRAINING = frozenset({"rounds", "density", "tau", "k_neighbors", "keep_fraction", "max_pairs", "max_copy_rate",
                       "select_interp_weight", "dpo_learning_rate", "dpo_beta", "dpo_sft_weight", "dpo_batch_size",
                       "dpo_epochs", "lora_r", "lora_alpha", "contrastive_batch_size", "contrastive_learning_rate",
                       "contrastive_epochs", "guard_consolidation", "contrastive_loss", "contrastive_batches"})
_NEVER = frozenset({"cache_dir", "trust_remote_code", "generation_backend"})  # where and how, not what


def effective_settings(method: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that can change a method's result. Methods that train nothing ignore the training
    settings (and kmeans the LLM's too), so changing e.g. max_pairs does not redo their cells."""
    ignored = set(_NEVER)
    if method in _NO_EFFECT:
        ignored |= _TRAINING | _NO_EFFECT[method]
    return {k: v for k, v in settings.items() if k not in ignored}


DEFAULT_VARIANT = "default"

_TOP_KEYS = ("description", "data_dir", "datasets", "methods", "seeds", "seed_policy", "sample", "settings", "extra",
             "variants", "groups", "reuse")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Variant:
    """One model setting the whole grid is run with; ``settings`` are options of ``coevo run``."""

    name: str
    settings: Mapping[str, Any]
    methods: tuple[str, ...] | None = None  # the methods this variant runs; None: every method of the grid

    def runs(self, method: str) -> bool:
        return self.methods is None or method in self.methods


@dataclass(frozen=True)
class BenchConfig:
    """A parsed, checked benchmark config (one tier)."""

    path: Path
    tier: str
    description: str
    data_dir: Path
    datasets: tuple[str, ...]  # rows, in order: the main datasets, then those only in [[extra]]
    methods: tuple[str, ...]  # columns, in order: the main methods, then those only in [[extra]]
    cells: tuple[tuple[str, str], ...]  # (dataset, method) pairs to run
    seeds: tuple[int, ...]
    seed_policy: str
    sample: int | None
    common: Mapping[str, Any]  # the [settings] table
    variants: tuple[Variant, ...]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # e.g. the dev and confirmation halves
    reuse: tuple[str, ...] = ()  # tiers whose finished cells count as this tier's when asked the same


def load_bench_config(path: str | os.PathLike, *, data_dir: str | os.PathLike | None = None) -> BenchConfig:
    """Read and check a benchmark config; every problem is a one-line CoevoError naming the file and key.

    ``data_dir`` (the ``--data-dir`` option) replaces the config's ``data_dir``.
    """
    path = Path(path)
    where = f"config {path}"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CoevoError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CoevoError(f"{where}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise CoevoError(f"{where}: not valid TOML ({exc})") from None

    def fail(key: str, message: str) -> CoevoError:
        return CoevoError(f"{where}: key '{key}': {message}")

    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key; known keys: {', '.join(_TOP_KEYS)}")
    tier = path.stem
    if not _NAME.fullmatch(tier):
        raise CoevoError(f"{where}: the file name gives the tier name; use letters, digits, '-', '_' or '.'")
    description = _typed(raw.get("description", ""), str, "description", fail)

    datasets = _names(raw, "datasets", DATASET_TASKS, "dataset", fail)
    methods = _names(raw, "methods", METHODS, "method", fail)
    cells = [(d, m) for d in datasets for m in methods]
    extras = _typed(raw.get("extra", []), list, "extra", fail)
    for i, table in enumerate(extras):
        key = f"extra[{i}]"
        table = _typed(table, dict, key, fail)
        bad = sorted(set(table) - {"methods", "datasets"})
        if bad:
            raise fail(f"{key}.{bad[0]}", "unknown key; an [[extra]] table has only 'methods' and 'datasets'")
        extra_methods = _names(table, "methods", METHODS, "method", fail, prefix=f"{key}.")
        extra_datasets = _names(table, "datasets", DATASET_TASKS, "dataset", fail, prefix=f"{key}.")
        cells += [(d, m) for d in extra_datasets for m in extra_methods]
    cells = list(dict.fromkeys(cells))
    all_datasets = tuple(dict.fromkeys([*datasets, *(d for d, _ in cells)]))
    all_methods = tuple(dict.fromkeys([*methods, *(m for _, m in cells)]))

    seeds = _typed(raw.get("seeds", [0, 1, 2]), list, "seeds", fail)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise fail("seeds", "give a non-empty list of integers >= 0, e.g. [0, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise fail("seeds", "a seed is listed twice")
    policy = _typed(raw.get("seed_policy", "recluster"), str, "seed_policy", fail)
    if policy not in SEED_POLICIES:
        raise fail("seed_policy", f"{policy!r} is not one of {', '.join(SEED_POLICIES)}")
    sample = raw.get("sample")
    if sample is not None and (not isinstance(sample, int) or isinstance(sample, bool) or sample < 2):
        raise fail("sample", f"must be an integer of at least 2 (or left out for every text), got {sample!r}")

    common = _settings(_typed(raw.get("settings", {}), dict, "settings", fail), "settings", fail)
    variants = []
    for i, table in enumerate(_typed(raw.get("variants", []), list, "variants", fail)):
        key = f"variants[{i}]"
        table = dict(_typed(table, dict, key, fail))
        name = table.pop("name", None)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise fail(f"{key}.name", "every variant needs a name of letters, digits, '-', '_' or '.'")
        if any(v.name == name for v in variants):
            raise fail(f"{key}.name", f"variant {name!r} is named twice")
        own_methods = None
        if "methods" in table:
            own_methods = tuple(_names(table, "methods", all_methods, "method of the grid", fail, prefix=f"{key}."))
            del table["methods"]
        variants.append(Variant(name, {**common, **_settings(table, key, fail)}, own_methods))
    if not variants:
        variants = [Variant(DEFAULT_VARIANT, common)]
    for i, variant in enumerate(variants):
        for method in filter(variant.runs, all_methods):
            try:
                CoEvoConfig(n_clusters=2, method=method, **variant.settings)
            except CoevoError as exc:
                key = "settings" if variant.name == DEFAULT_VARIANT else f"variants[{i}]"
                raise fail(key, f"with method {method}: {exc}") from None

    groups = {}
    for name, members in _typed(raw.get("groups", {}), dict, "groups", fail).items():
        if not _NAME.fullmatch(name):
            raise fail(f"groups.{name}", "a group name is letters, digits, '-', '_' or '.'")
        groups[name] = tuple(_names({name: members}, name, all_datasets, "dataset of the config", fail, prefix="groups."))

    reuse = _typed(raw.get("reuse", []), list, "reuse", fail)
    for name in reuse:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name == tier:
            raise fail("reuse", f"give the names of other tiers (the stems of their configs), got {name!r}")

    if data_dir is not None:
        folder, key = Path(data_dir), "option --data-dir"
    else:
        folder = repo_root() / _typed(raw.get("data_dir", "../shared/data"), str, "data_dir", fail)
        key = f"{where}: key 'data_dir'"
    if not folder.is_dir():
        raise CoevoError(f"{key}: data folder {folder} not found; give the folder that holds the ClusterLLM .jsonl files")
    for dataset in all_datasets:
        if not (folder / f"{dataset}.jsonl").is_file():
            raise CoevoError(f"{key}: {folder} has no {dataset}.jsonl (dataset of {where})")

    return BenchConfig(path, tier, description, folder.resolve(), all_datasets, all_methods, tuple(cells),
                       tuple(seeds), policy, sample, common, tuple(variants), groups, tuple(dict.fromkeys(reuse)))


def _typed(value: Any, kind: type, key: str, fail: Callable[[str, str], CoevoError]) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {list: "a list", dict: "a table", str: "a string", int: "an integer", float: "a number",
                    bool: "true or false"}[kind]
        raise fail(key, f"must be {expected}, got {value!r}")
    return value


def _names(table: Mapping, key: str, allowed: Sequence[str], noun: str, fail, prefix: str = "") -> list[str]:
    values = table.get(key)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise fail(prefix + key, f"give a non-empty list of {noun} names")
    for value in values:
        if value not in allowed:
            raise fail(prefix + key, f"unknown {noun} {value!r}; known: {', '.join(allowed)}")
    return list(dict.fromkeys(values))


def _settings(table: Mapping, key: str, fail) -> dict[str, Any]:
    out = {}
    for name, value in table.items():
        if name not in SETTINGS:
            raise fail(f"{key}.{name}", f"unknown setting; known: {', '.join(SETTINGS)}")
        kind = SETTINGS[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[name] = _typed(value, kind, f"{key}.{name}", fail)
    return out
