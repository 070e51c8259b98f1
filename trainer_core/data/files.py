"""Which files a data source names, what each one's fingerprint is, and how to read it (torch-free).

A source expands into `SourceFile`s: data files (jsonl, json, csv, parquet, arrow), `save_to_disk` folders, and
hub dataset ids found in the local Hugging Face cache (never downloaded: nothing reads the network at run time).
`load_raw` reads one through `datasets` (Arrow, memory-mapped); `raw_rows` reads one into Python objects, for
small sets and to find the line of a record that the fast reader refused; `read_records` reads whole specs into
normalised `Record`s in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_core.config.sources import BUILTIN_DATA, SourceSpec, hf_datasets_cache, hub_cache_dirs, parse_sources
from trainer_core.data.content_hash import content_digest
from trainer_core.data.records import DataError, Record, apply_columns, file_format, normalise, record_id

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset

SUFFIX_KINDS = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
LINE_NUMBERED = ("jsonl", "csv")
"""Kinds whose errors name a line; the others name a record number."""
JSON_COLUMN = "__record_json"
"""The one column of a file that Arrow could not type (a field that is a string here, a number there): each
record as JSON text, decoded again by `row_objects`, so normalisation names the record that is wrong."""


@dataclass(frozen=True)
class SourceFile:
    """One readable unit of a source: a data file, a `save_to_disk` folder, or a cached hub dataset."""

    kind: str
    """jsonl, json, csv, parquet, arrow, saved (a save_to_disk folder) or hub."""
    path: str
    """The file or folder (absolute), or the hub dataset id."""
    split: str | None = None
    subset: str | None = None

    @property
    def name(self) -> str:
        """How errors and flagged samples name it."""
        return self.path

    def fingerprint(self) -> list[Any]:
        """Path and content digest of every file that holds the data: a changed byte changes it, a `touch` does not
        (the path stays: errors, flagged samples and data.exclude name records by it)."""
        files = [Path(self.path)] if self.kind in SUFFIX_KINDS.values() else self._data_files()
        return [self.kind, self.path, self.split, self.subset, *[(str(f), content_digest(f)) for f in files]]

    def _data_files(self) -> list[Path]:
        roots = [Path(self.path)] if self.kind == "saved" else hub_cache_dirs(self.path)
        return sorted(f for root in roots for f in root.rglob("*") if f.is_file())


def builtin_data_path(spec: str) -> Path:
    """Path of a bundled data file (`builtin:demo` and friends)."""
    return Path(str(resources.files("trainer_core") / "assets" / BUILTIN_DATA[spec]))


def cleaning_leftover(path: Path) -> bool:
    """NAME.clean.EXT or NAME.changes.jsonl, what the Data screen writes beside a reviewed file: a folder source
    skips them, or the cleaned records would be read again beside their originals (and the log as data)."""
    name = path.name.lower()
    return name.endswith(".changes.jsonl") or path.stem.lower().endswith(".clean")


def is_saved_dataset(folder: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return (folder / "dataset_dict.json").is_file() or ((folder / "state.json").is_file()
                                                         and (folder / "dataset_info.json").is_file())


def expand_source(spec: SourceSpec) -> list[SourceFile]:
    """The files of one source: builtins resolved, folders expanded into their data files (sorted)."""
    if spec.path.startswith("builtin:"):
        return [SourceFile("jsonl", str(builtin_data_path(spec.path)))]
    p = Path(spec.path).expanduser()
    if p.is_dir():
        if is_saved_dataset(p):
            return [SourceFile("saved", str(p.resolve()), spec.split)]
        found = sorted(f for f in p.rglob("*") if f.suffix.lower() in SUFFIX_KINDS and f.is_file()
                       and not is_saved_dataset(f.parent))
        files = [f for f in found if not cleaning_leftover(f)]
        if not files:
            left = f" (only cleaning output, skipped: {found[0].name}; name such a file itself)" if found else ""
            raise DataError(f"{spec.path}: folder holds no {', '.join(SUFFIX_KINDS)} files and no saved dataset"
                            + left)
        return [SourceFile(SUFFIX_KINDS[f.suffix.lower()], str(f.resolve())) for f in files]
    if p.is_file():
        if p.suffix.lower() not in SUFFIX_KINDS:
            raise DataError(f"{spec.path}: unsupported file type; use {', '.join(SUFFIX_KINDS)}")
        return [SourceFile(SUFFIX_KINDS[p.suffix.lower()], str(p.resolve()))]
    if spec.is_hub_id:
        if not hub_cache_dirs(spec.path):
            raise DataError(f"{spec.path}: hub dataset not in the local Hugging Face cache ({hf_datasets_cache()}); "
                            f"load it once where the hub is reachable (datasets.load_dataset('{spec.path}')) or "
                            "give a file")
        return [SourceFile("hub", spec.path, spec.split, spec.subset)]
    raise DataError(f"{spec.path}: file not found")


# --------------------------------------------------------------------------- fast reading (datasets, Arrow)
def load_raw(file: SourceFile, workdir: Path) -> tuple[Dataset, np.ndarray]:
    """The file's records as a memory-mapped Dataset, with the line or record number of each.

    A file the fast reader refuses is read again in Python: broken JSON or CSV raises naming its line; records
    that are valid JSON but that Arrow cannot put in one table come back as JSON text (`JSON_COLUMN`).
    """
    import numpy as np

    try:
        ds = _load(file, workdir)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - the Python reader names the line, or we say what failed
        return _python_fallback(file, exc)
    if file.kind == "jsonl":
        numbers = nonblank_lines(Path(file.path))
        if len(numbers) != len(ds):  # the Arrow reader skipped or split lines differently: number by record
            numbers = np.arange(1, len(ds) + 1, dtype=np.int64)
    elif file.kind == "csv":
        numbers = np.arange(2, len(ds) + 2, dtype=np.int64)  # line 1 is the header
    else:
        numbers = np.arange(1, len(ds) + 1, dtype=np.int64)
    return ds, numbers


def quiet_datasets() -> None:
    """No progress bars or warnings from `datasets` itself: our own progress reports say what happens."""
    import datasets

    datasets.disable_progress_bars()
    # Not even its errors: a file its reader refuses is read again in Python, whose DataError names the line.
    datasets.utils.logging.set_verbosity(datasets.utils.logging.CRITICAL)


def _load(file: SourceFile, workdir: Path) -> Dataset:
    import datasets

    quiet_datasets()
    cache = str(workdir / "hf")
    if file.kind in ("jsonl", "json"):
        ds = datasets.load_dataset("json", data_files=file.path, split="train", cache_dir=cache)
        field = _wrapped_list_field(ds) if file.kind == "json" else None
        if field is not None:  # {"data": [records...]}: the records are the one list inside
            ds = datasets.load_dataset("json", data_files=file.path, field=field, split="train", cache_dir=cache)
        return ds
    if file.kind == "csv":  # every cell a string, empty cells "": the same values Python's csv module gives
        import csv

        with open(file.path, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
        strings = datasets.Features({name: datasets.Value("string") for name in header})
        return datasets.load_dataset("csv", data_files=file.path, split="train", cache_dir=cache, features=strings,
                                     keep_default_na=False)
    if file.kind == "parquet":
        return datasets.load_dataset("parquet", data_files=file.path, split="train", cache_dir=cache)
    if file.kind == "arrow":
        return datasets.Dataset.from_file(file.path)
    if file.kind == "saved":
        return _pick_split(datasets.load_from_disk(file.path), file)
    with hub_offline(datasets):
        return datasets.load_dataset(file.path, file.subset, split=file.split or "train",
                                     cache_dir=str(hf_datasets_cache()))


def _wrapped_list_field(ds: Dataset) -> str | None:
    if len(ds) == 1 and len(ds.column_names) == 1:
        value = ds[0][ds.column_names[0]]
        if isinstance(value, list) and all(isinstance(x, dict) for x in value):
            return ds.column_names[0]
    return None


def _pick_split(loaded: Any, file: SourceFile) -> Dataset:
    import datasets

    if isinstance(loaded, datasets.Dataset):
        return loaded
    split = file.split or "train"
    if split not in loaded:
        raise DataError(f"{file.path}: saved dataset has no split '{split}'; its splits: {', '.join(loaded)} "
                        "(set `split:` on the source)")
    return loaded[split]


@contextmanager
def hub_offline(datasets_module: Any) -> Iterator[None]:
    """Resolve hub ids from the local cache only (datasets reads this flag at call time)."""
    before = datasets_module.config.HF_HUB_OFFLINE
    datasets_module.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets_module.config.HF_HUB_OFFLINE = before


def nonblank_lines(path: Path) -> np.ndarray:
    """1-based numbers of the lines that hold a record (the JSON-lines reader skips blank ones)."""
    import numpy as np

    with path.open("rb") as fh:
        return np.fromiter((n for n, line in enumerate(fh, 1) if line.strip()), dtype=np.int64)


def _python_fallback(file: SourceFile, exc: Exception) -> tuple[Dataset, np.ndarray]:
    """The file read in Python (raising DataError at a broken line), each record kept as JSON text."""
    import datasets
    import numpy as np

    if file.kind not in ("jsonl", "json", "csv"):
        cause = exc.__cause__ or exc
        raise DataError(f"{file.name}: cannot be read ({type(cause).__name__}: {str(cause).splitlines()[0][:200]})")
    rows = raw_rows(file)
    table = datasets.Dataset.from_dict({JSON_COLUMN: [json.dumps(obj, ensure_ascii=False) for _, obj in rows]})
    return table, np.array([n for n, _ in rows], dtype=np.int64)


def row_objects(batch: dict[str, list[Any]]) -> list[Any]:
    """The records of a `Dataset.map` batch as Python objects (decoding the JSON-text fallback)."""
    if JSON_COLUMN in batch:
        return [json.loads(text) for text in batch[JSON_COLUMN]]
    keys = list(batch)
    return [dict(zip(keys, values, strict=True)) for values in zip(*(batch[k] for k in keys), strict=True)]


# --------------------------------------------------------------------------- Python reading (small sets)
def raw_rows(file: SourceFile) -> list[tuple[int, Any]]:
    """(line or record number, raw object) for every record of a file, read in Python."""
    try:
        return _raw_rows(file)
    except UnicodeDecodeError as exc:  # a binary or non-UTF-8 file under a text name
        raise DataError(f"{file.path}: not UTF-8 text (byte {exc.start} of the file or line cannot be decoded); "
                        "data files are UTF-8 JSON lines, JSON or CSV: convert it or point data.train elsewhere"
                        ) from None


def _raw_rows(file: SourceFile) -> list[tuple[int, Any]]:
    path = Path(file.path)
    if file.kind == "jsonl":
        return _jsonl_rows(path)
    if file.kind == "json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
            data = next(iter(data.values()))
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of records")
        return list(enumerate(data, 1))
    if file.kind == "csv":
        import csv

        with path.open(encoding="utf-8", newline="") as fh:
            try:
                return [(n + 1, row) for n, row in enumerate(csv.DictReader(fh), 1)]  # line 1 is the header
            except csv.Error as exc:
                raise DataError(f"{path}: not valid CSV ({exc})") from None
    if file.kind == "parquet":
        import pyarrow.parquet as pq

        return list(enumerate(pq.read_table(path).to_pylist(), 1))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nlirg-read-") as tmp:
        return list(enumerate(_load(file, Path(tmp)).to_list(), 1))


def iter_raw_rows(file: SourceFile) -> Iterator[tuple[int, Any]]:
    """`raw_rows` one record at a time: a JSON-lines file is read lazily (a corpus never sits whole in a list),
    the other kinds as `raw_rows` reads them."""
    if file.kind == "jsonl":
        yield from _iter_jsonl_rows(Path(file.path))
    else:
        yield from raw_rows(file)


def _jsonl_rows(path: Path) -> list[tuple[int, Any]]:
    return list(_iter_jsonl_rows(path))


def _iter_jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{n}: not UTF-8 text (byte {exc.start} of the line); data files are UTF-8 "
                                "JSON lines: convert the file or fix the line") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not valid JSON ({exc.msg}); fix or remove the line") from None
            yield n, obj


def read_records(specs: list[Any] | str | dict, fmt: str = "auto", system_prompt: str | None = None,
                 text_field: str | None = None, columns: dict[str, str] | None = None,
                 allow_empty_answer: bool = False,
                 exclude: Callable[[str, int, Any], bool] | None = None, key: str = "data") -> list[Record]:
    """Read and normalise every record of every source into memory; the first bad record raises DataError.

    `specs` are `data.train`-style entries (paths, folders, saved datasets, hub ids, or `{path, ...}` mappings
    whose own settings win over the arguments). `exclude` (a `data.exclude` list) leaves out the records it
    names before they are normalised, as the trainer's reading does; `key` names the specs in problems. For a
    corpus too big for Python lists, use `trainer_core.data.corpus` (training) or `iter_records` (one pass).
    """
    return list(iter_records(specs, fmt, system_prompt, text_field, columns, allow_empty_answer, exclude, key))


def iter_records(specs: list[Any] | str | dict, fmt: str = "auto", system_prompt: str | None = None,
                 text_field: str | None = None, columns: dict[str, str] | None = None,
                 allow_empty_answer: bool = False,
                 exclude: Callable[[str, int, Any], bool] | None = None, key: str = "data") -> Iterator[Record]:
    """`read_records` one record at a time, in the same order with the same checks (JSON lines read lazily)."""
    defaults = {"format": fmt, "system_prompt": system_prompt, "text_field": text_field, "columns": columns or {}}
    sources, problems = parse_sources(specs if isinstance(specs, (str, dict)) else list(specs), key, defaults)
    if problems:
        raise DataError("; ".join(problems))
    for spec in sources:
        for file in expand_source(spec):
            file_fmt = None
            for line, raw in iter_raw_rows(file):
                obj = apply_columns(raw, spec.columns)
                if file_fmt is None:
                    file_fmt = file_format(spec.format, obj, f"{file.name}:{line}")
                if exclude is not None and exclude(file.name, line, obj):
                    continue
                messages, text = normalise(obj, file_fmt, f"{file.name}:{line}", spec.system_prompt, spec.text_field,
                                           allow_empty_answer)
                reference = obj.get("reference")
                yield Record(file.name, line, messages, text, record_id(obj), reference)
            if file_fmt is None:
                raise DataError(f"{file.name}: holds no records")
