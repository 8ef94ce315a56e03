"""Atomic file writes, so an interrupted run never leaves a half-written file.

Every file is written to a temporary sibling and moved into place with
``os.replace``, which is atomic on POSIX filesystems: a reader (or a resumed
run) sees either the old file or the complete new one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import CoevoError

# Errors that come from the disk or its permissions rather than from a bug: the
# user can act on them (free space, pick another folder), so they get one line.
_ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _naming(error, path) from error
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _naming(error, path) from error
        raise
    return path


def _naming(error: OSError, path: Path) -> OSError:
    """The same error about ``path``: the temporary sibling's name would only confuse the reader."""
    return type(error)(error.errno, error.strerror, str(path)) if error.errno is not None else error


def os_error_of(error: BaseException) -> OSError | None:
    """The operating-system error behind ``error``: itself, or the one a library written in Rust
    (safetensors, tokenizers) folded into its own exception as "... (os error 28)"."""
    if isinstance(error, OSError):
        return error
    match = re.search(r"\(os error (\d+)\)", str(error))
    if match is None:
        return None
    number = int(match.group(1))
    return OSError(number, os.strerror(number))


def write_problem(error: BaseException) -> str | None:
    """One line for an error the user can fix (no space, no permission, read-only disk); None for anything else."""
    error = os_error_of(error)
    if error is None or error.errno not in _ENVIRONMENT_ERRNOS:
        return None
    return f"{error.filename or 'a file'}: {error.strerror or os.strerror(error.errno)}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    lines = [json.dumps(row, ensure_ascii=False, default=_json_default) for row in rows]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` for writers that want a file name (pandas) or write
    a long stream (predictions); it replaces ``path`` only if the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class DamagedFile(CoevoError, ValueError):
    """A file that coevo wrote no longer reads back as what it wrote (empty, cut short, edited, foreign).

    A ValueError too, so callers that treat an unreadable JSON file as absent
    (the generation cache) keep working; ``path`` lets a caller say what to do.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def read_json(path: str | os.PathLike, kind: type | None = None) -> Any:
    """The JSON value in ``path``; with ``kind`` (dict, list) a value of another type is damage too."""
    obj = _parse(path, _read_text(path))
    if kind is not None and not isinstance(obj, kind):
        raise DamagedFile(path, f"holds a JSON {_json_type(obj)} where a JSON {_json_type(kind())} belongs")
    return obj


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The rows of ``path``; every line must be a JSON object (every JSONL file coevo writes is)."""
    rows = []
    for number, line in enumerate(_read_text(path).split("\n"), 1):  # not splitlines: U+2028 may sit in a text
        if line.strip():
            row = _parse(path, line, number)
            if not isinstance(row, dict):
                raise DamagedFile(path, f"line {number} holds a JSON {_json_type(row)}, not an object")
            rows.append(row)
    return rows


def _read_text(path: str | os.PathLike) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise DamagedFile(path, f"not UTF-8 text (byte {error.start})") from None


def _parse(path: str | os.PathLike, text: str, line: int | None = None) -> Any:
    if line is None and not text.strip():
        raise DamagedFile(path, "empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {line}" if line is not None else f"line {error.lineno}"
        raise DamagedFile(path, f"not valid JSON at {where} ({error.msg}; cut short or edited?)") from None


def _json_type(obj: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(obj), "number")


def atomic_publish_dir(build: Path, target: Path) -> Path:
    """Move a fully written folder ``build`` to ``target``, replacing any old one.

    ``build`` must be on the same filesystem as ``target`` (write it next to it).
    An old ``target`` is first renamed aside, so there is no moment at which a
    half-replaced folder is visible under the final name.
    """
    target = Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(build, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def staging_dir(target: str | os.PathLike) -> Path:
    """A fresh empty folder beside ``target`` to build it in before publishing."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

