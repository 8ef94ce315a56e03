"""Apply a finished run to texts it never saw: the same representation, the same centres.

A run clusters z = f(x), or z = normalise(f(x) + mean f(y)) when the representation
reads the interpretations y of its final LLM. Prediction rebuilds that z for new texts
with the run's final embedder (and its final LLM and LoRA adapter, sampling with the
run's settings and seed) and assigns each text to the nearest KMeans centre.

The centres are stored by the cluster step exactly as KMeans left them
(``centroids.npy``), not as the unit-length centroids the rest of the code uses:
scikit-learn reassigns every point to its nearest centre after its last update, and
faiss assigns by a nearest-centre search, so nearest-centre (Euclidean) prediction on
the training texts reproduces the fitted labels exactly when z is f(x) alone. Nearest
by cosine to the unit-length centroids moved 1 of the 300 demo texts in 3 of 5 seeds.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import atomic_target, atomic_write_bytes
from .clustering import embed, interpretation_weights, mean_by_owner, represent
from .errors import CoevoError

if TYPE_CHECKING:
    from .pipeline import CoEvolution

CENTERS = "centroids.npy"
DISTANCES = "distances.npy"


def save_centers(folder: Path, z: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> None:
    """Called by the cluster step: the centres prediction assigns to, and each text's distance to its own."""
    centers = np.asarray(centers, dtype=np.float32)
    _write_npy(folder / CENTERS, centers)
    _write_npy(folder / DISTANCES, np.linalg.norm(np.asarray(z, dtype=np.float64) - centers[labels], axis=1).astype(np.float32))


def read_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def nearest(z: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest centre of each row (Euclidean, in float64) and the distance to it."""
    z64, c64 = np.asarray(z, dtype=np.float64), np.asarray(centers, dtype=np.float64)
    if len(z64) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    squared = (z64 ** 2).sum(axis=1)[:, None] - 2.0 * z64 @ c64.T + (c64 ** 2).sum(axis=1)[None, :]
    labels = squared.argmin(axis=1)
    return labels.astype(np.int64), np.sqrt(np.maximum(squared[np.arange(len(z64)), labels], 0.0)).astype(np.float32)


@dataclass
class Prediction:
    labels: np.ndarray
    distances: np.ndarray
    representation: np.ndarray
    interpretations: list[list[str]] | None  # None when the representation is f(x) alone


class Predictor:
    """What prediction needs from a finished run, loaded once and kept for every batch.

    The embedder and (when the representation reads interpretations) the LLM
    with the adapter its last round generated with are loaded on first use.
    """

    def __init__(self, model: CoEvolution, *, progress: bool = False):
        cfg = model.config
        self.model = model
        self.config = cfg
        self.progress = progress
        self.last = cfg.effective_rounds
        self.weighting = self._weighting()
        self.reads_interpretations = cfg.uses_llm and self.weighting["interp_weight"] > 0
        self.adapter = final_adapter(model) if self.reads_interpretations else None
        self._embedder = None
        self._interpreter = None
        self.centers = self._centers()

    def transform(self, texts: list[str]) -> tuple[np.ndarray, list[list[str]] | None]:
        """The representation the run clustered on, for ``texts``, and the interpretations it read."""
        text_vec = embed(self.embedder, texts, progress=self.progress, desc="embed texts")
        if not self.reads_interpretations:
            return represent(text_vec, None), None
        interpretations = self.interpret(texts)
        flat = [y for ys in interpretations for y in ys]
        owner = np.array([i for i, ys in enumerate(interpretations) for _ in ys], dtype=np.int64)
        interp_vec = embed(self.embedder, flat, progress=self.progress, desc="embed interpretations")
        interp_mean, counts = mean_by_owner(interp_vec, owner, len(texts))
        weight, _ = interpretation_weights(self.weighting, interp_vec, owner, len(texts))
        return represent(text_vec, interp_mean, counts, weight=weight), interpretations

    def _weighting(self) -> dict:
        """How the final clustering weighted the interpretation mean, as the cluster step recorded it in
        cluster.json (``represent auto`` and ``gate`` chose the weight per run; ``agreement`` scaled it per text)."""
        cfg = self.config
        if not cfg.uses_llm or cfg.represent == "text":
            return {"interp_weight": 0.0}
        recorded = self.model.folder_.recorded_weighting(self.last)
        needed = {"auto": "interp_weight", "gate": "interp_weight", "agreement": "mean_agreement"}.get(cfg.represent)
        if needed is not None and needed not in recorded:
            raise CoevoError(f"{self.model.folder_.round(self.last) / 'cluster.json'}: no {needed} recorded; "
                             "the run's representation cannot be rebuilt")
        return recorded or {"interp_weight": cfg.interp_weight}

    def predict(self, texts: list[str]) -> Prediction:
        z, interpretations = self.transform(texts)
        labels, distances = nearest(z, self.centers)
        return Prediction(labels, distances, z, interpretations)

    def interpret(self, texts: list[str]) -> list[list[str]]:
        """Sampled as the run's generate step samples (same settings, same seed).

        The decoder draws its randomness per batch of prompts, so a text's
        interpretations repeat exactly when it is interpreted among the same
        texts (as the training texts are when predicted all together).
        """
        cfg = self.config
        if not texts:
            return []
        return self.interpreter.interpret(texts, cfg.task, cfg.instruction, self.model.context_.sampling(), progress=self.progress)

    @property
    def embedder(self):
        if self._embedder is None:
            folder = self.model.folder_.embedder_folder(self.last)
            if folder is not None:
                self._check(folder)
            self._embedder = self.model.context_.embedder(self.last)
        return self._embedder

    def _check(self, folder: Path, required: str | None = None) -> None:
        """A damaged model folder is one line saying how to rebuild it, not a traceback from the loader."""
        from .atomic import DamagedFile
        from .models import check_saved_weights

        try:
            check_saved_weights(folder, required=required)
        except DamagedFile as error:
            raise CoevoError(f"{error}; redo that step with: coevo run --resume {self.model.run_dir_}") from None

    @property
    def interpreter(self):
        if self._interpreter is None:
            from .generation import Interpreter

            cfg = self.config
            if self.adapter is not None:
                self._check(Path(self.adapter), required="adapter_model.safetensors")
            self._interpreter = Interpreter(cfg.llm, self.adapter, cache_dir=cfg.cache_dir,
                                            trust_remote_code=cfg.trust_remote_code, backend=cfg.generation_backend)
        return self._interpreter

    def _centers(self) -> np.ndarray:
        """The stored centres; for a run made before they were stored, the mean of each
        cluster's final representation (which can move a few texts near a boundary)."""
        path = self.model.folder_.round(self.last) / CENTERS
        if path.is_file():
            return read_npy(path)
        z = self.model.context_.representation(self.last).z
        labels = np.asarray(self.model.labels_)
        k = int(labels.max()) + 1
        sums = np.zeros((k, z.shape[1]), dtype=np.float64)
        np.add.at(sums, labels, z)
        return (sums / np.maximum(np.bincount(labels, minlength=k), 1)[:, None]).astype(np.float32)


def final_adapter(model: CoEvolution) -> str | None:
    """The adapter the last round generated with (after any back-off), found in the run folder
    even when the folder has moved since (``RunFolder.adapter_dir``).
    Prediction and cluster naming use the LLM the run ended with."""
    info = model.folder_.round(model.config.effective_rounds) / "generate.json"
    if not info.is_file():
        raise CoevoError(f"{model.run_dir_}: no round{model.config.effective_rounds}/generate.json; "
                         "is this a finished coevo run folder?")
    recorded = json.loads(info.read_text(encoding="utf-8")).get("adapter")
    if recorded is None:
        return None
    here = model.folder_.adapter_dir(recorded)
    if not (here / "adapter_config.json").is_file():
        raise CoevoError(f"{model.run_dir_}: the final LoRA adapter {here} is missing; "
                         "prediction and naming need the LLM the run generated with")
    return str(here)


def fitted_distances(model: CoEvolution) -> np.ndarray:
    """Each training text's distance to its cluster's centre: stored by the cluster step, or
    for an older run recomputed from its final representation."""
    path = model.folder_.round(model.config.effective_rounds) / DISTANCES
    if path.is_file():
        return read_npy(path)
    z = model.context_.representation(model.config.effective_rounds).z
    centers = model._predictor().centers
    return np.linalg.norm(z - centers[np.asarray(model.labels_)], axis=1).astype(np.float32)


def predict_file(model: CoEvolution, source: str, out: str | Path, *, batch_size: int = 1024,
                 text_field: str = "text", label_field: str | None = "label", format: str | None = None,
                 progress: bool = True) -> dict:
    """Predict every text of a file into a JSONL file, ``batch_size`` texts at a time.

    The input is read lazily and each batch is written as soon as it is
    predicted, so memory does not grow with the file; the output appears
    under its name only when every line is written. Returns the counts.
    """
    from tqdm.auto import tqdm

    from .data import TextStream
    from .export import cluster_names

    if batch_size < 1:
        raise CoevoError(f"option --batch-size: must be at least 1, got {batch_size}")
    stream = TextStream(source, text_field=text_field, label_field=label_field, format=format)
    predictor = model._predictor()
    names = cluster_names(model)
    counts = np.zeros(len(predictor.centers), dtype=np.int64)
    n = 0
    bar = tqdm(total=stream.estimate(), desc="predict", unit="text", disable=not progress, dynamic_ncols=True)
    with atomic_target(out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for batch in stream.batches(batch_size):
            result = predictor.predict([row.text for row in batch])
            for i, row in enumerate(batch):
                cluster = int(result.labels[i])
                record = {"line": row.line, "text": row.text, "cluster": cluster, "name": names.get(cluster, ""),
                          "distance": round(float(result.distances[i]), 6)}
                if row.label is not None:
                    record["label"] = row.label
                if result.interpretations is not None:
                    record["interpretations"] = result.interpretations[i]
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            np.add.at(counts, result.labels, 1)
            n += len(batch)
            bar.update(len(batch))
        bar.close()
        if n == 0:
            skipped = f" ({stream.n_blank_skipped} blank skipped)" if stream.n_blank_skipped else ""
            raise CoevoError(f"data '{source}': no texts{skipped}; nothing to predict")
    return {"texts": n, "blank_skipped": stream.n_blank_skipped, "per_cluster": counts.tolist()}


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
