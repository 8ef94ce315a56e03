"""One cell of a tier's results (``Record``), and the results file that keeps them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import read_json
from ..config import BEFORE_FIELD, CoEvoConfig
from ..errors import CoevoError
from .config import SETTINGS, effective_settings

@dataclass
class Record:
    """One cell of the results: a (dataset, method, variant, seed) and its numbers.

    ``acc``/``nmi``/``ari`` are percent. ``source`` is ``run`` for a ``coevo run``
    and ``recluster`` for a seed that only re-ran KMeans on a run's result
    (``run_dir`` then names that run). ``wall_s`` is measured by the harness
    around the subprocess that finished the cell (a recluster seed gets its share
    of the recluster subprocess); ``seconds_total`` is the run's own sum over its
    steps. ``llm`` and ``samples`` are null for ``kmeans``, which uses no LLM;
    ``rounds`` counts the rounds the method ran. ``options`` is what the cell was
    asked for and ``config`` the run's own settings, defaults included: a record
    whose options or config differ from what the bench asks for now, in a setting
    that matters to its method, is redone, so a changed default redoes the cells it
    changes. ``commit`` is the code that ran the run's steps, as its folder kept it.
    ``rounds_detail`` has, per round of an LLM method's run, the guard figures and
    the clustering of the interpretations alone. ``reused_from`` names the tier whose
    results file the record was taken from (a tier's ``reuse`` key: the same cell,
    asked the same, is not run twice); empty when this tier ran it.
    """

    dataset: str
    method: str
    variant: str
    seed: int
    status: str  # "ok" or "failed"
    source: str  # "run" or "recluster"
    seed_policy: str
    run_dir: str
    task: str
    n_texts: int | None = None
    k: int | None = None
    acc: float | None = None
    nmi: float | None = None
    ari: float | None = None
    wall_s: float | None = None
    seconds_total: float | None = None
    peak_rss_mb: float | None = None
    llm: str | None = None
    embedder: str | None = None
    rounds: int | None = None
    samples: int | None = None
    error: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    rounds_detail: list[dict[str, Any]] = field(default_factory=list)
    commit: str = ""
    machine: str = ""
    date: str = ""
    reused_from: str = ""

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dataset, self.method, self.variant, self.seed)

    def ran_with(self, settings: Mapping[str, Any]) -> bool:
        """Whether the run behind this record had ``settings`` (a variant's ``coevo run`` options), in
        all that can change its method's result: how a changed config or default is noticed. The run's
        own config decides where it was kept, so a setting written out at the value the run already had
        is no change; older records are judged by the options they were asked for."""
        if not self.config:
            asked = {k: v for k, v in self.options.items() if k in SETTINGS}
            # a field added after the record ran: it ran with the value that behaves as runs did before it
            asked = {**{k: v for k, v in BEFORE_FIELD.items() if k in settings}, **asked}
            return effective_settings(self.method, asked) == effective_settings(self.method, dict(settings))
        try:
            # A setting added since the run ran with its default, which is what --resume reads it as.
            stored = CoEvoConfig.from_dict(self.config).to_dict()
            wanted = CoEvoConfig(n_clusters=self.k or 2, task=self.task, method=self.method,
                                 seed=self.options.get("run_seed", self.seed), **settings).to_dict()
        except (CoevoError, TypeError):
            return False  # a setting since removed or retyped: the run is not comparable
        return effective_settings(self.method, stored) == effective_settings(self.method, wanted)

    def asked_for(self, options: Mapping[str, Any]) -> bool:
        """Whether this record answers a cell asked for ``options`` (its own sample, seed policy, task,
        K and seed, plus its variant's settings): the bench's test of a cell already done."""
        def own(asked: Mapping[str, Any]) -> dict[str, Any]:
            return effective_settings(self.method, {k: v for k, v in asked.items() if k not in SETTINGS})
        return own(self.options) == own(options) and self.ran_with({k: v for k, v in options.items() if k in SETTINGS})


def merge_records(old: Sequence[Record], new: Sequence[Record]) -> list[Record]:
    """``old`` with every record of the same (dataset, method, variant, seed) replaced by ``new``'s."""
    merged = {r.key: r for r in old}
    merged.update((r.key, r) for r in new)
    return sorted(merged.values(), key=lambda r: r.key)


def read_records(path: Path) -> list[Record]:
    """The records of a results file; none when it does not exist yet."""
    if not path.exists():
        return []
    try:
        rows = read_json(path)
        if not isinstance(rows, list):
            raise TypeError("not a list")
        return [Record(**row) for row in rows]
    except (ValueError, TypeError) as exc:
        raise CoevoError(f"results file {path}: not a list of bench records ({exc}); move it aside to start afresh") from None
