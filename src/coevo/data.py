"""Loading the texts to cluster, with one-line errors that point at the bad line.

Input is a local JSONL, CSV, TSV or plain-text file, or a Hugging Face dataset
name. Texts are stripped and internal line breaks become spaces, because every
later stage (prompts, embeddings, output files) treats a text as one line.

Blank texts (empty or whitespace-only, including blank lines) are *skipped*
and counted rather than rejected: they carry nothing to cluster, and trailing
empty lines are too common to be worth an error. Duplicated texts are *kept*
and counted: each input row gets a cluster, so the output lines up with the
input, and the counts let the summary make both choices visible.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CoevoError

FORMATS: tuple[str, ...] = ("jsonl", "csv", "tsv", "txt")
_EXTENSIONS = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "txt"}
_GIVE_A_FILE = "give a .jsonl/.csv/.tsv/.txt path"
_HF_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_LINE_BREAK = re.compile(r"\s*[\r\n]\s*")
_MISSING = object()


@dataclass(frozen=True)
class Corpus:
    """The texts of one run, with gold labels when the input has them.

    ``n_blank_skipped`` describes loading, so a :meth:`subset` carries none.
    """

    texts: list[str]
    labels: list[str] | None
    source: str
    n_blank_skipped: int = 0

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_distinct(self) -> int:
        return len(set(self.texts))

    @property
    def n_duplicates(self) -> int:
        return len(self.texts) - self.n_distinct

    @property
    def n_labels(self) -> int:
        return 0 if self.labels is None else len(set(self.labels))

    def summary(self) -> str:
        notes = []
        if self.n_duplicates:
            notes.append(f"{_count(self.n_duplicates, 'duplicate')} kept")
        if self.n_blank_skipped:
            notes.append(f"{_count(self.n_blank_skipped, 'blank text')} skipped")
        line = _count(len(self.texts), "text")
        if notes:
            line += f" ({', '.join(notes)})"
        return line + (", no labels" if self.labels is None else f", {_count(self.n_labels, 'label')}")

    def subset(self, indices: Iterable[int]) -> Corpus:
        idx = [int(i) for i in indices]
        labels = None if self.labels is None else [self.labels[i] for i in idx]
        return Corpus([self.texts[i] for i in idx], labels, self.source)


def load_corpus(
    source: str,
    *,
    text_field: str = "text",
    label_field: str | None = "label",
    format: str | None = None,
    split: str = "train",
) -> Corpus:
    """Read texts (and labels, when every row has one) from a file or a HF dataset.

    A label field absent from every row means unlabeled data (``labels=None``);
    absent from only some rows is an error, since scores over a silently
    shrunken gold set would mislead.
    """
    source = str(source)
    path, fmt = _resolve(source, format)
    if path is None:
        return _build(_hf_rows(source, split, text_field, label_field), source, label_field, unit="row")
    text = _read_utf8(path, source)
    if fmt == "jsonl":
        rows = _jsonl_rows(_lines(text), source, text_field, label_field)
    elif fmt == "txt":
        rows = ((n, line, _MISSING) for n, line in enumerate(_lines(text), start=1))
    else:
        rows = _table_rows(io.StringIO(text, newline="\n"), source, text_field, label_field, "\t" if fmt == "tsv" else ",")
    return _build(rows, source, label_field)


def stratified_sample(corpus: Corpus, n: int, seed: int) -> Corpus:
    """Draw ``n`` texts, keeping every gold class, so a small run still scores all classes.

    Each class gets one text, and the other ``n - n_classes`` are shared out in
    proportion to what each class has left (largest remainders). Without labels
    the draw is uniform. The chosen texts keep their input order.
    """
    if n < 2:
        raise CoevoError(f"sample size: must be at least 2, got {n}")
    if n >= len(corpus):
        return corpus
    rng = np.random.default_rng(seed)
    if corpus.labels is None:
        return corpus.subset(np.sort(rng.choice(len(corpus), size=n, replace=False)))
    members: dict[str, list[int]] = {}
    for i, label in enumerate(corpus.labels):
        members.setdefault(label, []).append(i)
    if n < len(members):
        raise CoevoError(
            f"sample size: {n} is below the {len(members)} classes of data '{corpus.source}'; "
            f"sample at least {len(members)} texts so that every class is present"
        )
    spare = np.array([len(m) - 1 for m in members.values()], dtype=float)
    quota = (n - len(members)) * spare / spare.sum()
    extra = np.floor(quota).astype(int)
    short = (n - len(members)) - int(extra.sum())
    extra[np.argsort(-(quota - extra), kind="stable")[:short]] += 1
    chosen = [i for m, k in zip(members.values(), extra) for i in rng.choice(m, size=k + 1, replace=False)]
    return corpus.subset(sorted(chosen))


def check_n_clusters(corpus: Corpus, k: int | str) -> None:
    """Fail early: k-means cannot form more clusters than there are distinct texts (nor choose K among fewer than 2)."""
    if k == "auto":
        if corpus.n_distinct < 2:
            raise CoevoError(f"option -k/--clusters: data '{corpus.source}' has fewer than 2 distinct texts; "
                             "there is no K to choose")
        return
    if k < 2:
        raise CoevoError(f"option -k/--clusters: must be at least 2, got {k}")
    if k > corpus.n_distinct:
        raise CoevoError(
            f"option -k/--clusters: {k} clusters but data '{corpus.source}' has only "
            f"{corpus.n_distinct} distinct texts; use -k {corpus.n_distinct} or fewer"
        )


def demo_path() -> Path:
    """The bundled labeled demo set (10 support-request intents, ~300 texts)."""
    return Path(__file__).parent / "demo" / "support_requests.jsonl"


def _resolve(source: str, format: str | None) -> tuple[Path | None, str]:
    """The file and its format, or no file for a Hugging Face dataset name."""
    path = Path(source).expanduser()
    if format is not None and format not in FORMATS:
        raise CoevoError(f"data '{source}': unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if not path.exists():
        if format is None and _looks_like_hf_name(source):
            return None, "hf"
        raise CoevoError(f"data '{source}': file not found; check the path")
    if path.is_dir():
        raise CoevoError(f"data '{source}': is a folder, not a file; {_GIVE_A_FILE}")
    fmt = format or _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise CoevoError(
            f"data '{source}': unknown extension {path.suffix or '(none)'!r}; "
            f"rename it to .jsonl/.csv/.tsv/.txt or give the format ({', '.join(FORMATS)})"
        )
    return path, fmt


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _looks_like_hf_name(source: str) -> bool:
    return _HF_NAME.fullmatch(source) is not None and Path(source).suffix == ""


def _read_utf8(path: Path, source: str) -> str:
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise CoevoError(
            f"data '{source}', line {line_no}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); "
            "save the file as UTF-8"
        ) from None


def _lines(text: str) -> list[str]:
    # Only \n ends a record: JSON strings may legally hold U+2028 and friends.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _jsonl_rows(lines: Iterable[str], source: str, text_field: str, label_field: str | None) -> Iterator[tuple]:
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            yield n, "", _MISSING
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CoevoError(
                f"data '{source}', line {n}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "each line must be one JSON object"
            ) from None
        if not isinstance(obj, dict):
            raise CoevoError(
                f"data '{source}', line {n}: a JSON {_json_type(obj)}, not an object; "
                f'each line must look like {{"{text_field}": "..."}}'
            )
        if text_field not in obj:
            raise CoevoError(
                f"data '{source}', line {n}: no field '{text_field}' (fields: {_names(obj)}); "
                "set the text field to the one holding the text"
            )
        value = obj[text_field]
        if not isinstance(value, str):
            raise CoevoError(
                f"data '{source}', line {n}: field '{text_field}' is a JSON {_json_type(value)}, "
                "not a string; write the text as a JSON string"
            )
        label = obj.get(label_field) if label_field is not None else None
        yield n, value, _MISSING if label is None else label


def _table_rows(lines: Iterable[str], source: str, text_field: str, label_field: str | None, delimiter: str) -> Iterator[tuple]:
    """``lines`` keep their line ends, so quoted texts may span lines."""
    kind = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        if text_field not in header:
            raise CoevoError(
                f"data '{source}', line 1: the header has no column '{text_field}' (columns: {', '.join(header)}); "
                "set the text field to the one holding the text"
            )
        text_col = header.index(text_field)
        label_col = header.index(label_field) if label_field in header else None
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                return
            if not row:
                yield start, "", _MISSING
                continue
            if len(row) <= text_col or (len(row) > len(header) and any(row[len(header):])):
                raise CoevoError(
                    f"data '{source}', line {start}: {len(row)} fields but the header has {len(header)}; "
                    f"quote texts that contain the {kind} delimiter"
                )
            label = row[label_col] if label_col is not None and label_col < len(row) else ""
            yield start, row[text_col], label if label.strip() else _MISSING
    except csv.Error as exc:
        raise CoevoError(f"data '{source}', line {start}: bad {kind} ({exc}); check the quotes in this row") from None


def _hf_rows(source: str, split: str, text_field: str, label_field: str | None) -> Iterator[tuple]:
    try:
        import datasets

        ds = datasets.load_dataset(source, split=split)
    except Exception as exc:  # any failure means "not loadable"; report why in one line
        reason = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        if len(reason) > 200:
            reason = reason[:197] + "..."
        raise CoevoError(
            f"data '{source}': not a file here, and loading it as a Hugging Face dataset failed ({reason}); "
            f"{_GIVE_A_FILE}"
        ) from None
    where = f"data '{source}' (split '{split}')"
    if text_field not in ds.column_names:
        raise CoevoError(
            f"{where}: no column '{text_field}' (columns: {', '.join(ds.column_names)}); "
            "set the text field to the one holding the text"
        )
    texts = list(ds[text_field])
    labels = list(ds[label_field]) if label_field in ds.column_names else None
    names = getattr(ds.features.get(label_field), "names", None) if labels is not None else None
    for n, value in enumerate(texts, start=1):
        if not isinstance(value, str):
            raise CoevoError(
                f"{where}, row {n}: field '{text_field}' is {type(value).__name__}, not a string; pick a text column"
            )
        label = _MISSING if labels is None or labels[n - 1] is None else labels[n - 1]
        if names is not None and label is not _MISSING:
            label = names[label] if label >= 0 else _MISSING  # -1 marks an unlabeled row (e.g. a test split)
        yield n, value, label


def _build(rows: Iterable[tuple], source: str, label_field: str | None, unit: str = "line") -> Corpus:
    texts: list[str] = []
    labels: list[Any] = []
    line_nos: list[int] = []
    n_blank = 0
    for n, raw, label in rows:
        text = _clean(raw)
        if not text:
            n_blank += 1
            continue
        texts.append(text)
        labels.append(label)
        line_nos.append(n)
    if len(texts) < 2:
        found = "no texts" if not texts else "only 1 text"
        blank = f" ({_count(n_blank, 'blank text')} skipped)" if n_blank else ""
        raise CoevoError(f"data '{source}': {found}{blank}; clustering needs at least 2 texts")
    present = [label is not _MISSING for label in labels]
    if label_field is None or not any(present):
        return Corpus(texts, None, source, n_blank)
    if not all(present):
        first = present.index(True)
        missing = present.index(False)
        raise CoevoError(
            f"data '{source}', {unit} {line_nos[missing]}: no value for '{label_field}', "
            f"but {unit} {line_nos[first]} has one; give every row a label or none"
        )
    return Corpus(texts, [str(label) for label in labels], source, n_blank)


def _clean(raw: str) -> str:
    return _LINE_BREAK.sub(" ", raw.strip())


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


def _names(obj: dict) -> str:
    return ", ".join(map(str, obj)) or "none"


@dataclass(frozen=True)
class Row:
    line: int  # line (or row) of the input where the text starts
    text: str
    label: str | None


class TextStream:
    """The texts of a file read lazily, for inputs too big to hold (``coevo predict``).

    Same formats, cleaning and one-line errors as :func:`load_corpus`, except
    that a label is passed through per row (rows without one are fine), since
    nothing is scored. Blank texts are skipped and counted in ``n_blank_skipped``.
    A Hugging Face dataset name works too, but is loaded whole.
    """

    def __init__(self, source: str, *, text_field: str = "text", label_field: str | None = "label",
                 format: str | None = None, split: str = "train"):
        self.source, self.text_field, self.label_field, self.split = str(source), text_field, label_field, split
        self.n_blank_skipped = 0
        self.path, self.format = _resolve(self.source, format)

    def estimate(self) -> int | None:
        """Lines in the file (a progress bar's total), counted without decoding; None for a dataset."""
        if self.path is None:
            return None
        with open(self.path, "rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        return max(lines - (self.format in ("csv", "tsv")), 0)

    def __iter__(self) -> Iterator[Row]:
        self.n_blank_skipped = 0
        if self.path is None:
            rows = _hf_rows(self.source, self.split, self.text_field, self.label_field)
        elif self.format == "jsonl":
            rows = _jsonl_rows(self._lines(keep_ends=False), self.source, self.text_field, self.label_field)
        elif self.format == "txt":
            rows = ((n, line, _MISSING) for n, line in enumerate(self._lines(keep_ends=False), start=1))
        else:
            rows = _table_rows(self._lines(keep_ends=True), self.source, self.text_field, self.label_field,
                               "\t" if self.format == "tsv" else ",")
        for n, raw, label in rows:
            text = _clean(raw)
            if not text:
                self.n_blank_skipped += 1
                continue
            yield Row(n, text, None if label is _MISSING else str(label))

    def batches(self, size: int) -> Iterator[list[Row]]:
        batch: list[Row] = []
        for row in self:
            batch.append(row)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _lines(self, keep_ends: bool) -> Iterator[str]:
        """Decoded one line at a time; only a line feed ends a line, as in :func:`load_corpus`."""
        assert self.path is not None
        with open(self.path, "rb") as handle:
            for n, raw in enumerate(handle, start=1):
                if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise CoevoError(
                        f"data '{self.source}', line {n}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                        "save the file as UTF-8"
                    ) from None
                yield line if keep_ends else line.removesuffix("\n").removesuffix("\r")
