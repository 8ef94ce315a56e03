"""``coevo bench CONFIG``: methods x datasets x seeds from a TOML file, into docs/results.

The claim to reproduce (docs/method.md) is a table: ``full`` against its baselines
and ablations on the 14 ClusterLLM datasets, mean and standard deviation over
3 seeds of ACC, NMI and ARI, with the models, the data size, the wall time and
the peak memory beside every number. This module produces that table, and makes
it cheap to produce again:

* Each run is a subprocess (``python -m coevo.cli run DATA --config CELL.config.json``,
  the cell's whole config written beside its run folder first), so its peak
  memory is its own and a crash costs one cell, not the bench.
* It resumes. A cell whose record is in ``<tier>.json`` with the same options
  is not redone; a run folder with ``state.json`` but no ``summary.json`` is
  continued with ``run --resume``; a finished folder without a record is read
  back. Failed cells are recorded with their error and retried next time.
* Under ``seed_policy = "recluster"`` only the first seed is a run; the other
  seeds re-run KMeans on that run's final representation
  (``CoEvolution.recluster``), because the LLM work is too costly to repeat.
* ``<tier>.json`` is merged by (dataset, method, variant, seed), so a partial
  bench (``--only``) drops no other rows, and ``<tier>.md`` is rendered from it
  after every finished cell, so partial results can be committed.

Config file (see bench/configs/*.toml; the tier is the file's stem)::

    description = "..."          # one line for the report header
    data_dir = "../shared/data"  # relative to the repository root
    datasets = ["bank77", ...]   # rows: names of DATASET_TASKS (the 14 + short-text sets)
    methods = ["kmeans", "full"] # columns, run on every dataset
    seeds = [0, 1, 2]
    seed_policy = "recluster"    # or "full": every seed an independent run
    sample = 600                 # optional: stratified sample per dataset
    [settings]                   # options of `coevo run` for every cell
    rounds = 2
    [[extra]]                    # more methods on some datasets only
    methods = ["random-select"]
    datasets = ["bank77"]
    reuse = ["cpu"]              # optional: tiers whose finished cells, asked the same, count as done here
    [[variants]]                 # optional: the whole grid per model setting
    name = "minilm"
    embedder = "all-MiniLM-L6-v2"
    methods = ["kmeans"]         # optional: this variant runs only these methods of the grid
"""

from .config import DATASET_TASKS, DEFAULT_VARIANT, SETTINGS, BenchConfig, Variant, load_bench_config
from .records import Record, merge_records, read_records
from .report import METRICS, ReportMeta, render_markdown
from .runner import BenchOutcome, run_bench

__all__ = ["DATASET_TASKS", "DEFAULT_VARIANT", "METRICS", "SETTINGS", "BenchConfig", "BenchOutcome", "Record",
           "ReportMeta", "Variant", "load_bench_config", "merge_records", "read_records", "render_markdown", "run_bench"]
