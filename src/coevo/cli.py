"""The ``coevo`` command: a thin layer over the Python API.

Every option maps onto a field of :class:`coevo.config.CoEvoConfig`; errors in
the user's input become one line on stderr and exit status 2.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from .config import (METHOD, CoEvoConfig, ContrastiveBatches, ContrastiveLoss, Density, GenerationBackend, Method,
                     Represent, Task, check_n_clusters_option, parse_n_clusters, read_settings)
from .errors import CoevoError
from .export import ExportFormat, ExportTable

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Cluster texts with an LLM and an embedding model that improve each other (EMNLP 2025 co-evolution method).",
)


def _check_show(show: int) -> None:
    """Checked before the run, so a typo does not surface only after hours of work."""
    if show < 0:
        raise CoevoError(f"option --show: must be 0 or more, got {show}")


def _load(data: str, text_field: str, label_field: str, fmt: Optional[str], sample: Optional[int], seed: int):
    from .data import demo_path, load_corpus, stratified_sample

    source = str(demo_path()) if data == "demo" else data
    corpus = load_corpus(source, text_field=text_field, label_field=label_field or None, format=fmt)
    if sample is not None:
        if sample < 2:
            raise CoevoError(f"option --sample: must be at least 2, got {sample}")
        corpus = stratified_sample(corpus, sample, seed)
    return corpus


def _default_out(data: str, method: str, seed: int) -> Path:
    stem = "demo" if data == "demo" else Path(data).stem or "data"
    return Path("coevo-runs") / f"{stem}-{method}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def _quiet_libraries() -> None:
    """No progress bars or info lines from the libraries under us (``--quiet``)."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()


def _report(model, corpus_line: str | None, max_clusters: int) -> None:
    """The end of a run: the named clusters, the metrics, and where the files and the HTML report are."""
    from .report import format_clusters, format_metrics
    from .report_html import build_report

    if corpus_line:
        typer.echo(corpus_line)
    auto = model.summary_.get("auto_k")
    if auto:
        low, high = auto["range"]
        typer.echo(f"K = {auto['k']}, chosen without labels: {auto['criterion']} over K = {low}..{high} on the base "
                   "embedder's f(x) (the curve is in summary.json and report.html)")
    if max_clusters > 0:
        typer.echo(f"\n{len(model.clusters_)} clusters (largest first):\n")
        typer.echo(format_clusters(model.clusters_, limit=max_clusters))
    if model.summary_.get("metrics"):
        typer.echo("\nper round (ACC/NMI/ARI in %, against the gold labels):")
        typer.echo(format_metrics(model.history_))
    typer.echo(f"\nresults: {model.run_dir_ / 'assignments.jsonl'}  summary: {model.run_dir_ / 'summary.json'}")
    typer.echo(f"report: {build_report(model)}")


_FIELDS = {f.name: f for f in dataclasses.fields(CoEvoConfig)}
CLUSTERS_HELP = ("Number of clusters K, or 'auto': chosen once without labels, the K of highest silhouette of "
                 "KMeans on the base embedder's f(x) over K from 2 to min(200, texts/5).")
DATA_HELP = "Texts to cluster: a .jsonl/.csv/.tsv/.txt file, a Hugging Face dataset name, or 'demo' for the bundled demo data."
INPUT, OUTPUT = "Input", "Output"


def _setting(name: str, *flags: str):
    """The option of ``CoEvoConfig`` field ``name``: its default, help and --help panel are the field's own."""
    f = _FIELDS[name]
    return typer.Option(f.default, *flags, help=f.metadata["help"], rich_help_panel=f.metadata["panel"],
                        show_default=f.default is not None)


@app.command()
def run(
    ctx: typer.Context,
    data: Optional[str] = typer.Argument(None, help=DATA_HELP, show_default=False),
    clusters: Optional[str] = typer.Option(None, "-k", "--clusters", metavar="K|auto", help=CLUSTERS_HELP,
                                           rich_help_panel=METHOD),
    task: Task = _setting("task"),
    instruction: Optional[str] = _setting("instruction"),
    method: Method = _setting("method"),
    rounds: int = _setting("rounds"),
    llm: str = _setting("llm"),
    embedder: str = _setting("embedder"),
    trust_remote_code: bool = _setting("trust_remote_code"),
    cache_dir: Optional[str] = _setting("cache_dir"),
    samples: int = _setting("samples"),
    temperature: float = _setting("temperature"),
    top_p: float = _setting("top_p"),
    max_new_tokens: int = _setting("max_new_tokens"),
    generation_batch_size: int = _setting("generation_batch_size"),
    generation_backend: GenerationBackend = _setting("generation_backend"),
    density: Density = _setting("density"),
    tau: float = _setting("tau"),
    k_neighbors: int = _setting("k_neighbors"),
    keep_fraction: float = _setting("keep_fraction"),
    max_pairs: Optional[int] = _setting("max_pairs"),
    max_copy_rate: float = _setting("max_copy_rate"),
    select_interp_weight: float = _setting("select_interp_weight"),
    guard_consolidation: bool = _setting("guard_consolidation"),
    dpo_learning_rate: float = _setting("dpo_learning_rate"),
    dpo_beta: float = _setting("dpo_beta"),
    dpo_sft_weight: float = _setting("dpo_sft_weight"),
    dpo_batch_size: int = _setting("dpo_batch_size"),
    dpo_epochs: float = _setting("dpo_epochs"),
    lora_r: int = _setting("lora_r"),
    lora_alpha: int = _setting("lora_alpha"),
    contrastive_batch_size: int = _setting("contrastive_batch_size"),
    contrastive_learning_rate: float = _setting("contrastive_learning_rate"),
    contrastive_epochs: float = _setting("contrastive_epochs"),
    contrastive_loss: ContrastiveLoss = _setting("contrastive_loss"),
    contrastive_batches: ContrastiveBatches = _setting("contrastive_batches"),
    represent: Represent = _setting("represent"),
    interp_weight: float = _setting("interp_weight"),
    kmeans_init: int = _setting("kmeans_init"),
    clusterer: str = _setting("clusterer"),
    seed: int = _setting("seed"),
    config_file: Optional[Path] = typer.Option(None, "--config", metavar="FILE", rich_help_panel=METHOD,
                                               help="Settings from a file: a run folder's config.json, or a JSON or TOML "
                                               "table of the setting names (n_clusters, method, rounds, ...). Options "
                                               "given on the command line override it."),
    sample: Optional[int] = typer.Option(None, help="Cluster a stratified sample of this many texts (every class kept).",
                                         rich_help_panel=INPUT),
    text_field: str = typer.Option("text", help="Field (JSONL) or column (CSV/TSV) holding the text.", rich_help_panel=INPUT),
    label_field: str = typer.Option("label", help="Field holding gold labels, if any ('' for none).", rich_help_panel=INPUT),
    format: Optional[str] = typer.Option(None, "--format", help="Input format when the extension does not tell: jsonl, csv, "
                                         "tsv, txt.", rich_help_panel=INPUT),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Run folder (default: coevo-runs/<data>-<method>-seed<seed>-"
                                       "<time>).", rich_help_panel=OUTPUT),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder after its last finished step "
                                          "(an interrupted DPO step from its last save).",
                                          rich_help_panel=OUTPUT),
    show: int = typer.Option(20, help="Clusters to print at the end (0: none).", rich_help_panel=OUTPUT),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars or step lines.", rich_help_panel=OUTPUT),
) -> None:
    """Run the co-evolution method (or one of its baselines), print the named clusters, write report.html."""
    settings = {name: value for name, value in locals().items() if name in _FIELDS}  # every option named like a field
    from .data import check_n_clusters
    from .pipeline import CoEvolution

    _check_show(show)
    if quiet:
        _quiet_libraries()
    if resume is not None:
        model = CoEvolution.resume(resume, progress=not quiet)
        _report(model, None, show)
        return
    if data is None:
        raise CoevoError("give the DATA to cluster (a file, a dataset name or 'demo'), or --resume RUN_DIR")
    config = _run_config(ctx, settings, clusters, config_file)
    corpus = _load(data, text_field, label_field, format, sample, config.seed)
    check_n_clusters(corpus, config.n_clusters)
    run_dir = out or _default_out(data, config.method, config.seed)
    if not quiet:
        typer.echo(f"{corpus.summary()}; run folder {run_dir}", err=True)
    model = CoEvolution(config, run_dir=run_dir, progress=not quiet).fit(corpus.texts, corpus.labels)
    _report(model, corpus.summary(), show)


def _run_config(ctx: typer.Context, settings: dict, clusters: Optional[str], config_file: Optional[Path]) -> CoEvoConfig:
    """The run's settings: the --config file's, then every option given on the command line over them."""
    if config_file is not None:
        # by the source's name: typer ships its own copy of click, whose enum is not click's
        given = {name: value for name, value in settings.items()
                 if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}
        settings = {**read_settings(config_file), **given}
    k = settings.pop("n_clusters", None)
    if clusters is not None:
        k = parse_n_clusters(clusters)
    if k is None:
        raise CoevoError("option -k/--clusters is required: the number of clusters, or 'auto'"
                         + (f" (the --config file {config_file} has no n_clusters)" if config_file else ""))
    check_n_clusters_option(k)
    try:
        return CoEvoConfig(n_clusters=k, **settings)
    except (TypeError, ValueError) as error:  # a file's value of the wrong type, e.g. "two" for rounds
        raise CoevoError(f"option --config {config_file}: a setting has a value of the wrong type ({error})") from None


@app.command()
def baseline(
    data: str = typer.Argument(..., help=DATA_HELP, show_default=False),
    clusters: str = typer.Option(..., "-k", "--clusters", metavar="K|auto", help=CLUSTERS_HELP),
    embedder: str = _setting("embedder"),
    seed: int = _setting("seed"),
    kmeans_init: int = _setting("kmeans_init"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output folder (default: coevo-runs/<data>-kmeans-seed<seed>-<time>)."),
    sample: Optional[int] = typer.Option(None, help="Cluster a stratified sample of this many texts (every class kept)."),
    text_field: str = typer.Option("text", help="Field (JSONL) or column (CSV/TSV) holding the text."),
    label_field: str = typer.Option("label", help="Field holding gold labels, if any ('' for none)."),
    format: Optional[str] = typer.Option(None, "--format", help="Input format when the extension does not tell: jsonl, csv, tsv, txt."),
    cache_dir: Optional[str] = _setting("cache_dir"),
    show: int = typer.Option(20, help="Clusters to print at the end (0: none)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars."),
) -> None:
    """Plain "embed + KMeans": the reference every method is compared with (clusters named by keywords)."""
    from .data import check_n_clusters
    from .pipeline import CoEvolution

    _check_show(show)
    if quiet:
        _quiet_libraries()
    k = parse_n_clusters(clusters)
    corpus = _load(data, text_field, label_field, format, sample, seed)
    check_n_clusters(corpus, k)
    config = CoEvoConfig(n_clusters=k, method="kmeans", embedder=embedder, kmeans_init=kmeans_init, seed=seed,
                         cache_dir=cache_dir)
    model = CoEvolution(config, run_dir=out or _default_out(data, "kmeans", seed), progress=not quiet).fit(corpus.texts, corpus.labels)
    _report(model, corpus.summary(), show)


def _output(path: Optional[Path], default: Path, overwrite: bool, *inputs: Path) -> Path:
    """Where a command writes: never over one of its inputs, and over an existing file only when asked."""
    path = path or default
    for source in inputs:
        if source.exists() and path.exists() and path.resolve() == source.resolve():
            raise CoevoError(f"option -o/--out: {path} is an input of this command; write somewhere else")
    if path.exists() and not overwrite:
        raise CoevoError(f"option -o/--out: {path} exists; give another path or add --overwrite")
    if path.is_dir():
        raise CoevoError(f"option -o/--out: {path} is a folder; give a file path")
    return path


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A finished run folder (the -o of coevo run).", show_default=False),
    data: str = typer.Argument(..., metavar="DATA", help="New texts: a .jsonl/.csv/.tsv/.txt file, or 'demo'.", show_default=False),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="JSONL file to write (default: <DATA name>.predictions.jsonl here)."),
    batch_size: int = typer.Option(1024, help="Texts read, represented and written at a time (bounds memory)."),
    text_field: str = typer.Option("text", help="Field (JSONL) or column (CSV/TSV) holding the text."),
    label_field: str = typer.Option("label", help="Field holding gold labels, copied to the output if present ('' for none)."),
    format: Optional[str] = typer.Option(None, "--format", help="Input format when the extension does not tell: jsonl, csv, tsv, txt."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Assign new texts to the clusters of a finished run; one JSON line a text."""
    from .data import demo_path
    from .pipeline import CoEvolution
    from .predict import predict_file

    if quiet:
        _quiet_libraries()
    source = str(demo_path()) if data == "demo" else data
    model = CoEvolution.load(run_dir, progress=not quiet)
    target = _output(out, Path(f"{Path(source).stem or 'data'}.predictions.jsonl"), overwrite, Path(source))
    counts = predict_file(model, source, target, batch_size=batch_size, text_field=text_field,
                          label_field=label_field or None, format=format, progress=not quiet)
    used = sum(1 for c in counts["per_cluster"] if c)
    skipped = f" ({counts['blank_skipped']} blank lines skipped)" if counts["blank_skipped"] else ""
    typer.echo(f"{counts['texts']} texts into {used} of {len(counts['per_cluster'])} clusters{skipped}: {target}")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A finished run folder (the -o of coevo run).", show_default=False),
    table: ExportTable = typer.Option("documents", help="documents: one row a text; clusters: one row a cluster."),
    format: ExportFormat = typer.Option("csv", "--format", help="File format (written with pandas)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="File to write (default: <run folder name>-<table>.<format> here)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
) -> None:
    """Write a finished run as a table: its texts, or its clusters with names and keywords."""
    from .export import write_table
    from .pipeline import CoEvolution

    model = CoEvolution.load(run_dir)
    target = _output(out, Path(f"{run_dir.resolve().name}-{table}.{format}"), overwrite, run_dir)
    frame = model.document_info() if table == "documents" else model.cluster_info()
    write_table(frame, target, format)
    typer.echo(f"{len(frame)} rows: {target}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A finished run folder (the -o of coevo run).", show_default=False),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars."),
) -> None:
    """Rebuild RUN_DIR/report.html: map of the texts, cluster sizes and names, per-round charts (coevo run writes it too)."""
    from .report_html import write_report

    if quiet:
        _quiet_libraries()
    typer.echo(f"report: {write_report(run_dir, progress=not quiet)}")


@app.command()
def bench(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Benchmark config: a TOML file such as bench/configs/smoke.toml.", show_default=False),
    only: Optional[list[str]] = typer.Option(None, "--only", metavar="DATASET", help="Only this dataset; repeat the option (or comma-separate) for several."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would run, cached or resumed; run and write nothing."),
    render: bool = typer.Option(False, "--render", help="Rewrite the report from the results file and this config; run nothing."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Write run folders and results here instead of bench/out/ and docs/results/."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder of the dataset .jsonl files, replacing the config's data_dir."),
) -> None:
    """Run methods x datasets x seeds of a benchmark config, resumably; writes docs/results/<tier>.json and .md."""
    from .bench import load_bench_config, run_bench

    try:
        outcome = run_bench(load_bench_config(config, data_dir=data_dir), only=only or (), dry_run=dry_run, render=render,
                            out_dir=out_dir)
    except KeyboardInterrupt:
        typer.echo("coevo: interrupted; finished cells are saved; run the same command again to continue", err=True)
        sys.exit(130)
    typer.echo(outcome.summary_line())
    if outcome.failed:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors, exit status 2, no traceback.

    ``argv`` lets tests run the command in-process, through the same error handling.
    """
    import warnings

    from .atomic import write_problem

    # Deprecation notices inside our dependencies are for us, not for the user.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        app(args=argv, prog_name="coevo", standalone_mode=False)
    except CoevoError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        typer.echo("coevo: interrupted; finished steps are saved, continue with: coevo run --resume RUN_DIR", err=True)
        sys.exit(130)
    except typer.Exit as error:
        sys.exit(error.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as error:  # usage errors: an unknown option, a value of the wrong type or choice
        if type(error).__name__ == "NoArgsIsHelpError":
            error.show()  # the help text, as for --help
            sys.exit(0)
        message = error.format_message().strip().splitlines()[0].replace("Value error, ", "")  # pydantic's prefix
        ctx = getattr(error, "ctx", None)
        command = ctx.command_path if ctx is not None else "coevo"
        _fail(f"{message} ({command} --help lists the options)")
    except OSError as error:  # a full disk or a missing permission outside a run folder's own handling
        problem = write_problem(error)
        if problem is None:
            raise
        _fail(problem)


def _fail(message: str) -> None:
    typer.echo(f"coevo: error: {message}", err=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
