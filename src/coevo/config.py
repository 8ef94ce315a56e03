"""The run's settings: every knob of the method, with the defaults of docs/method.md.

One frozen dataclass is the single source of truth: each field carries its
default, its one-line help and its ``--help`` panel; ``coevo run`` has an option
per field with that default and help (tests/test_cli.py fails on drift), the
bench's settings are its fields, and the stages' own settings (``SamplingConfig``,
``DPOSettings``, ``ContrastiveSettings``) are built from it. A run folder stores it
as ``config.json`` so that ``--resume`` continues with exactly the settings the
run started with.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from .errors import CoevoError

# The CLI types its options with these, so `--help` lists the values and a typo stops before any work.
Task = Literal["intent", "type", "topic", "emotion", "domain"]
Method = Literal["kmeans", "expand", "contrastive-only", "random-select", "no-dpo", "full"]
Density = Literal["posterior", "knn", "kde"]
Represent = Literal["text", "text+interp", "agreement", "auto", "gate"]
GenerationBackend = Literal["auto", "torch", "vllm"]
ContrastiveLoss = Literal["mnrl", "gist"]
ContrastiveBatches = Literal["no-duplicates", "one-per-cluster", "one-per-cluster-same-steps", "one-per-previous-cluster"]

TASKS: tuple[str, ...] = get_args(Task)
METHODS: tuple[str, ...] = get_args(Method)
REPRESENTS: tuple[str, ...] = get_args(Represent)
CONTRASTIVE_LOSSES: tuple[str, ...] = get_args(ContrastiveLoss)
CONTRASTIVE_BATCHES: tuple[str, ...] = get_args(ContrastiveBatches)

AUTO_K = "auto"
"""``n_clusters`` (-k) when the run chooses K itself."""

DEFAULT_LLM = "qwen2.5-coder-0.5b-instruct"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


def setting(default, help: str, panel: str):
    """A field of ``CoEvoConfig`` with the one-line help the CLI shows and the ``--help`` panel it sits in:
    the field is the one place a setting's default and meaning are written."""
    return field(default=default, metadata={"help": help, "panel": panel})


# --help panels, in the order `coevo run --help` shows them
METHOD, MODELS, GENERATION, SELECTION, DPO, CONTRASTIVE, CLUSTERING, RUN = (
    "Method", "Models", "Generation", "Density and selection", "Preference step (DPO)", "Contrastive step",
    "Clustering", "Run")


@dataclass(frozen=True)
class CoEvoConfig:
    """Settings of one co-evolution run (see docs/method.md for the why of each default).

    Every field is an option of ``coevo run`` (``--field-name``) and a setting of a
    bench config, with the default and help written here once.
    """

    n_clusters: int | str  # K, or "auto": chosen once, without labels, on the base embedder's f(x)
    task: str = setting("intent", "What the LLM names.", METHOD)
    instruction: str | None = setting(None, "Your own instruction for the LLM, replacing the task's.", METHOD)
    method: str = setting("full", "The method or an ablation.", METHOD)
    # 2, not the paper's 3: with the CPU default pair a third round's DPO narrows the answers further and
    # lost 7.5 ACC on CLINC(D) and 2.1 on GoEmo at 1.7 times the cost (docs/results/rounds-rounds3-cpu.md)
    rounds: int = setting(2, "Co-evolution rounds T.", METHOD)
    llm: str = setting(DEFAULT_LLM, "LLM: a packaged name, a hub id or a local folder.", MODELS)
    embedder: str = setting(DEFAULT_EMBEDDER, "Embedding model: a packaged name, a hub id or a local folder.", MODELS)
    trust_remote_code: bool = setting(False, "Allow models that ship their own Python code.", MODELS)
    cache_dir: str | None = setting(None, "Model and generation cache (default $COEVO_CACHE or ~/.cache/coevo).", MODELS)
    # generation
    samples: int = setting(4, "Interpretations sampled per text (M).", GENERATION)
    temperature: float = setting(0.8, "Sampling temperature.", GENERATION)
    top_p: float = setting(0.95, "Nucleus sampling: keep the most likely tokens up to this probability mass.", GENERATION)
    # every sequence of a batch waits for the longest; phrases need < 16
    max_new_tokens: int = setting(20, "Longest interpretation, in tokens.", GENERATION)
    generation_batch_size: int = setting(64, "Texts per decode batch (x samples sequences decoded together).",
                                         GENERATION)
    generation_backend: str = setting("auto", "Decoder: torch, vllm or one registered in coevo.registry.DECODERS "
                                      "(auto = vLLM on a CUDA GPU when installed, else torch).",
                                      GENERATION)
    # density and selection
    density: str = setting("posterior", "Density score of an interpretation.", SELECTION)
    tau: float = setting(0.05, "Temperature of the posterior density score.", SELECTION)
    k_neighbors: int = setting(10, "Neighbours for the knn and kde scores.", SELECTION)
    keep_fraction: float = setting(0.5, "Share of preference pairs kept (largest margins).", SELECTION)
    max_pairs: int | None = setting(None, "At most this many DPO pairs per round (bounds DPO time).", SELECTION)
    max_copy_rate: float = setting(0.6, "A chosen answer may repeat at most this share of its text's words.", SELECTION)
    # 1: the density reads clusters of f(x) + mean f(y), so texts that share a generic answer ("music",
    # "it is possible") are pulled into one cluster whose centroid is that answer, and the answer scores as
    # dense; 0: clusters of the text view alone, where such an answer belongs to no cluster of its own.
    # 0 was -1.2 ACC on four dev sets (docs/results/select-view-cpu.md): the density then rewards answers
    # that restate the text view, and loses what the answers add (FewRel's types)
    select_interp_weight: float = setting(
        1.0, "Weight of the interpretation mean in the clustering the density score reads (0 = the texts alone).",
        SELECTION)
    # on by default: at 300 DPO pairs a round it kept 4 of 7 backed-off adapters on the dev half, for
    # +2.7 ACC on those runs, and still backed off GoEmo's collapse (docs/results/levers-cpu.md)
    guard_consolidation: bool = setting(
        True, "Keep a trained LLM whose answers changed form (fewer, shorter or longer) but mark "
        "clusters at least as well as round 1's (texts sharing an answer share a cluster).", SELECTION)
    # preference step (DPO)
    dpo_learning_rate: float = setting(2e-5, "Learning rate of the DPO step.", DPO)
    dpo_beta: float = setting(0.1, "DPO beta: higher keeps the LLM closer to the base model.", DPO)
    # > 0 sharpened Qwen-0.5B into fewer, shorter answers
    dpo_sft_weight: float = setting(0.0, "Weight of an NLL (SFT) term on the chosen answer; 0 = plain sigmoid DPO.",
                                    DPO)
    dpo_batch_size: int = setting(4, "Preference pairs per DPO step.", DPO)
    dpo_epochs: float = setting(1.0, "Passes over a round's preference pairs.", DPO)
    lora_r: int = setting(16, "LoRA rank of the DPO adapter.", DPO)
    lora_alpha: int = setting(32, "LoRA alpha (scale) of the DPO adapter.", DPO)
    # contrastive step
    contrastive_batch_size: int = setting(32, "Pairs per contrastive step (the in-batch negatives).", CONTRASTIVE)
    contrastive_learning_rate: float = setting(2e-5, "Learning rate of the contrastive step.", CONTRASTIVE)
    contrastive_epochs: float = setting(1.0, "Passes over a round's positive pairs.", CONTRASTIVE)
    # mnrl: every other pair of the batch is a negative; gist: the frozen base embedder vetoes negatives it finds
    # closer to the anchor than the positive (GISTEmbedLoss), so same-class texts are not pushed apart
    contrastive_loss: str = setting("mnrl", "Contrastive loss (gist: the base embedder vetoes false negatives).",
                                    CONTRASTIVE)
    # no-duplicates: no text or answer twice in a batch (sentence-transformers' NO_DUPLICATES sampler), the
    # default. one-per-cluster: also no two texts of one of the select step's clusters, so no in-batch negative
    # shares the anchor's current cluster; it passed the adoption test of bench/configs/negatives-cpu.toml on
    # eight choosing runs (docs/results/contrastive-batches-negatives-cpu.md) and was the default until its
    # confirmation half (docs/results/batches-confirm-cpu.md) put MTOP(D) below these batches' cells at each
    # of three seeds, 6 ACC on the mean; used only where K is at least the batch size (rule 1b'), it was +0.34
    # over these batches on the confirmation sets it would touch, above on 2 of 5, short of its test
    # (docs/results/batches-rule-cpu.md). one-per-previous-cluster: the clusters kept apart are those the run
    # reported after the previous round (round 1: the base embedder's text clusters), not the select step's
    # joined view, whose clusters are the worse ones where the answers mark the classes worse than the text;
    # below one-per-cluster on the choosing runs, so not adopted (docs/results/contrastive-previous-negatives-cpu.md).
    # one-per-cluster-same-steps: one-per-cluster batches for as many steps as no-duplicates batches would take.
    # Where K is below the batch size a one-per-cluster batch holds K pairs, so an epoch takes batch_size / K
    # times the steps, a larger dose of training; this variant keeps the dose and changes only which pairs
    # share a batch (an epoch then sees about K / batch_size of the pairs, every cluster alike); below the old
    # batches on the choosing runs, so not adopted (docs/results/contrastive-same-steps-negatives-cpu.md)
    contrastive_batches: str = setting(
        "no-duplicates", "How the contrastive step fills a batch (no-duplicates: no text or answer twice; "
        "one-per-cluster: also at most one text of each of the clusters the density read; "
        "one-per-cluster-same-steps: those batches, for as many steps as no-duplicates takes; "
        "one-per-previous-cluster: of each cluster of the previous round's clustering).", CONTRASTIVE)
    # clustering
    # text: f(x); text+interp: normalise(f(x) + interp_weight * mean f(y)); agreement: each text's weight in
    # proportion to how much its M answers agree, averaging interp_weight (clustering.agreement_weights);
    # auto: interp_weight picked per run from INTERP_WEIGHTS by a label-free criterion (choose_interp_weight);
    # gate: text+interp where the join's clusters are clearly more reproducible than the text's, else the text (gate_interp_weight)
    # gate is the default: on the 24 design runs (dev half + short-text sets) it was +0.4 ACC over the
    # fixed join and took the text alone on six, among them Biomedical and GoogleNews-T, where the join
    # cost 4-5 points (docs/results/represent-design-cpu.md)
    represent: str = setting(
        "gate", "What KMeans clusters (agreement: each text weighs its interpretations by how much its "
        "answers agree; auto: one weight chosen per run without labels; gate: the join only where its clusters "
        "are clearly more reproducible than the text's alone).", CLUSTERING)
    # Weight 0.5: on the dev half's runs it beat weight 1 (the old default) on 10 of 13 and the stability
    # rule of auto on the mean (docs/results/represent-levers.md)
    interp_weight: float = setting(0.5, "Weight of the interpretation mean joined to f(x) (represent text+interp, and "
                                   "gate where it keeps the join; agreement: the mean weight).", CLUSTERING)
    # docs/results/baseline.md
    kmeans_init: int = setting(50, "KMeans restarts per clustering; the one with the lowest objective is kept.",
                               CLUSTERING)
    clusterer: str = setting("kmeans", "What makes every clustering of the run: a registered clusterer "
                             "(coevo.registry.CLUSTERERS; kmeans reads --kmeans-init).", CLUSTERING)
    seed: int = setting(0, "Seed of every random choice.", RUN)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # NaN passes every comparison below and fails deep in sampling
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise CoevoError(f"option --{f.name.replace('_', '-')}: must be a finite number, got {value}")
        _choice("task", self.task, TASKS)
        _choice("method", self.method, METHODS)
        from .density import DENSITY_SCORERS  # the built-in scorers and any the user registered

        DENSITY_SCORERS.check(self.density)
        from .clustering import CLUSTERERS

        CLUSTERERS.check(self.clusterer)
        _choice("represent", self.represent, REPRESENTS)
        if self.generation_backend != "auto":
            from .registry import DECODERS

            DECODERS.check(self.generation_backend)
        _choice("contrastive-loss", self.contrastive_loss, CONTRASTIVE_LOSSES)
        _choice("contrastive-batches", self.contrastive_batches, CONTRASTIVE_BATCHES)
        check_n_clusters_option(self.n_clusters)
        if self.n_clusters != AUTO_K:  # a numpy integer (len of a label set, say) is stored as the JSON int it is
            object.__setattr__(self, "n_clusters", int(self.n_clusters))
        _positive("rounds", self.rounds)
        _positive("samples", self.samples)
        _positive("max-new-tokens", self.max_new_tokens)
        _positive("k-neighbors", self.k_neighbors)
        _positive("kmeans-init", self.kmeans_init)
        for name in ("generation_batch_size", "dpo_batch_size", "lora_r", "lora_alpha", "contrastive_batch_size"):
            _positive(name.replace("_", "-"), getattr(self, name))
        for name in ("tau", "dpo_learning_rate", "dpo_epochs", "contrastive_learning_rate", "contrastive_epochs"):
            if getattr(self, name) <= 0:
                raise CoevoError(f"option --{name.replace('_', '-')}: must be above 0, got {getattr(self, name)}")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise CoevoError(f"option --keep-fraction: must be in (0, 1], got {self.keep_fraction}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise CoevoError(f"option --max-pairs: must be at least 1, got {self.max_pairs}")
        for name in ("interp_weight", "select_interp_weight"):
            if not 0.0 <= getattr(self, name) <= 10.0:
                raise CoevoError(f"option --{name.replace('_', '-')}: must be in [0, 10], got {getattr(self, name)}")
        if self.temperature <= 0:
            raise CoevoError(f"option --temperature: must be above 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:  # 0 keeps no token to sample from
            raise CoevoError(f"option --top-p: must be in (0, 1], got {self.top_p}")
        if self.method in ("random-select", "no-dpo", "full") and self.samples < 2:
            raise CoevoError(f"option --samples: method {self.method} needs at least 2 samples per text to form pairs")

    @property
    def auto_k(self) -> bool:
        """K is chosen by the run (``clustering.choose_n_clusters``) rather than given."""
        return self.n_clusters == AUTO_K

    @property
    def uses_llm(self) -> bool:
        return self.method != "kmeans"

    @property
    def trains_llm(self) -> bool:
        return self.method in ("full", "random-select")

    @property
    def trains_embedder(self) -> bool:
        return self.method in ("full", "random-select", "no-dpo", "contrastive-only")

    @property
    def effective_rounds(self) -> int:
        """Methods that train nothing are a single round."""
        return 1 if self.method in ("kmeans", "expand") else self.rounds

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CoEvoConfig":
        """A run folder's stored config. A field the run predates takes the value that behaves as the run did
        (``BEFORE_FIELD``), not today's default, so ``--resume`` and the bench's staleness test see the truth."""
        _check_names(data, "config")
        return cls(**{**BEFORE_FIELD, **data})

    def replace(self, **changes) -> "CoEvoConfig":
        return dataclasses.replace(self, **changes)


def read_settings(path: str | Path) -> dict:
    """Settings from a file for ``coevo run --config``: a JSON object (a run folder's ``config.json`` is one)
    or a TOML table, of ``CoEvoConfig`` fields. Checked here for names only; values are checked by
    ``CoEvoConfig`` when the run's config is built."""
    import json
    import tomllib

    path = Path(path)
    where = f"option --config {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CoevoError(f"{where}: cannot read it ({error.strerror or error}); give a JSON or TOML file of settings") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise CoevoError(f"{where}: not valid {kind} ({error})") from None
    if not isinstance(data, dict):
        raise CoevoError(f"{where}: must hold an object of settings, e.g. {{\"method\": \"full\", \"rounds\": 2}}")
    _check_names(data, where)
    return data


BEFORE_FIELD: dict[str, object] = {"contrastive_batches": "no-duplicates"}
"""Fields added after run folders were first written, whose default then changed: the value a stored config
without the field ran with."""


def _check_names(data: dict, where: str) -> None:
    """Every key a ``CoEvoConfig`` field: a typo stops with the known names, not a TypeError."""
    known = {f.name for f in dataclasses.fields(CoEvoConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CoevoError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def check_n_clusters_option(value) -> None:
    """-k is a whole number of at least 2 or the word "auto"; anything else stops before any work."""
    if value == AUTO_K:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CoevoError(f"option -k/--clusters: must be a whole number of at least 2 or '{AUTO_K}', got {value!r}")
    if value < 2:
        raise CoevoError(f"option -k/--clusters: must be at least 2 (or '{AUTO_K}'), got {value}")


def parse_n_clusters(text: str) -> int | str:
    """The CLI's -k: "auto" (any case) or a whole number; checked by ``check_n_clusters_option``."""
    word = text.strip().lower()
    if word == AUTO_K:
        return AUTO_K
    try:
        value = int(word)
    except ValueError:
        raise CoevoError(f"option -k/--clusters: must be a whole number of at least 2 or '{AUTO_K}', got {text!r}") from None
    check_n_clusters_option(value)
    return value


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise CoevoError(f"option --{option}: {value!r} is not one of {', '.join(allowed)}")


def _positive(option: str, value: int) -> None:
    if value < 1:
        raise CoevoError(f"option --{option}: must be at least 1, got {value}")
