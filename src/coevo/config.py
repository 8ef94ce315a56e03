"""The run's settings: every knob of the method, with the defaults of docs/method.md.

One frozen dataclass is the single source of truth; the CLI's options map onto
its fields one to one, and a run folder stores it as ``config.json`` so that
``--resume`` continues with exactly the settings the run started with.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Literal, get_args

from .errors import CoevoError

# The CLI types its options with these, so `--help` lists the values and a typo stops before any work.
Task = Literal["intent", "type", "topic", "emotion", "domain"]
Method = Literal["kmeans", "expand", "contrastive-only", "random-select", "no-dpo", "full"]
Density = Literal["posterior", "knn", "kde"]
Represent = Literal["text", "text+interp", "auto"]
GenerationBackend = Literal["auto", "torch", "vllm"]
ContrastiveLoss = Literal["mnrl", "gist"]

TASKS: tuple[str, ...] = get_args(Task)
METHODS: tuple[str, ...] = get_args(Method)
DENSITIES: tuple[str, ...] = get_args(Density)
REPRESENTS: tuple[str, ...] = get_args(Represent)
GENERATION_BACKENDS: tuple[str, ...] = get_args(GenerationBackend)
CONTRASTIVE_LOSSES: tuple[str, ...] = get_args(ContrastiveLoss)

AUTO_K = "auto"
"""``n_clusters`` (-k) when the run chooses K itself."""

DEFAULT_LLM = "qwen2.5-coder-0.5b-instruct"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class CoEvoConfig:
    """Settings of one co-evolution run (see docs/method.md for the why of each default)."""

    n_clusters: int | str  # K, or "auto": chosen once, without labels, on the base embedder's f(x)
    task: str = "intent"
    instruction: str | None = None  # replaces the task's built-in instruction
    method: str = "full"
    llm: str = DEFAULT_LLM
    embedder: str = DEFAULT_EMBEDDER
    rounds: int = 3
    # generation
    samples: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 20  # every sequence of a batch waits for the longest; phrases need < 16
    generation_batch_size: int = 64
    generation_backend: str = "auto"  # vllm on a CUDA GPU with vLLM installed, else our torch decode loop
    # density and selection
    density: str = "posterior"
    tau: float = 0.05
    k_neighbors: int = 10
    keep_fraction: float = 0.5
    max_pairs: int | None = None
    max_copy_rate: float = 0.6  # a chosen answer may reuse at most this share of its text's words
    # a fall in distinct answers is no collapse when texts that share an answer still share a cluster
    guard_consolidation: bool = False
    # preference step (DPO)
    dpo_learning_rate: float = 2e-5
    dpo_beta: float = 0.1
    dpo_sft_weight: float = 0.0  # weight of an NLL term on the chosen answer; > 0 sharpened Qwen-0.5B into fewer, shorter answers
    dpo_batch_size: int = 4
    dpo_epochs: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    # contrastive step
    contrastive_batch_size: int = 32
    contrastive_learning_rate: float = 2e-5
    contrastive_epochs: float = 1.0
    # mnrl: every other pair of the batch is a negative; gist: the frozen base embedder vetoes negatives it finds
    # closer to the anchor than the positive (GISTEmbedLoss), so same-class texts are not pushed apart
    contrastive_loss: str = "mnrl"
    # clustering
    # text: f(x); text+interp: normalise(f(x) + interp_weight * mean f(y)); auto: interp_weight picked per run
    # from INTERP_WEIGHTS by a label-free criterion (clustering.choose_interp_weight). Weight 0.5: on the dev
    # half's runs it beat weight 1 (the old default) on 10 of 13 and the stability rule of auto on the mean
    # (docs/results/represent-levers.md)
    represent: str = "text+interp"
    interp_weight: float = 0.5
    kmeans_init: int = 50  # KMeans restarts; the lowest objective wins (docs/results/baseline.md)
    # misc
    seed: int = 0
    trust_remote_code: bool = False
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # NaN passes every comparison below and fails deep in sampling
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise CoevoError(f"option --{field.name.replace('_', '-')}: must be a finite number, got {value}")
        _choice("task", self.task, TASKS)
        _choice("method", self.method, METHODS)
        _choice("density", self.density, DENSITIES)
        _choice("represent", self.represent, REPRESENTS)
        _choice("generation-backend", self.generation_backend, GENERATION_BACKENDS)
        _choice("contrastive-loss", self.contrastive_loss, CONTRASTIVE_LOSSES)
        check_n_clusters_option(self.n_clusters)
        if self.n_clusters != AUTO_K:  # a numpy integer (len of a label set, say) is stored as the JSON int it is
            object.__setattr__(self, "n_clusters", int(self.n_clusters))
        _positive("rounds", self.rounds)
        _positive("samples", self.samples)
        _positive("max-new-tokens", self.max_new_tokens)
        _positive("k-neighbors", self.k_neighbors)
        _positive("kmeans-init", self.kmeans_init)
        if not 0.0 < self.keep_fraction <= 1.0:
            raise CoevoError(f"option --keep-fraction: must be in (0, 1], got {self.keep_fraction}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise CoevoError(f"option --max-pairs: must be at least 1, got {self.max_pairs}")
        if not 0.0 <= self.interp_weight <= 10.0:
            raise CoevoError(f"option --interp-weight: must be in [0, 10], got {self.interp_weight}")
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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CoevoError(f"config: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def replace(self, **changes) -> "CoEvoConfig":
        return dataclasses.replace(self, **changes)


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
