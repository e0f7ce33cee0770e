"""What an export keeps for the next one: where each task's output went, so an unchanged task's can
be reused (records copied out of the previous files, its own files hard-linked) instead of made again.

Per format, `<reuse dir>/<FORMAT>/` holds `index.parquet` (one row per task: its key, the span of its
records in every stream, its files, its account), `manifest.json` (the fingerprint of everything
else a task's output depends on — lsflow's code, the format, label config, classes, options, policy —
and the size and mtime of each stream file the spans point into) and the working streams that are
not part of the dataset (COCO's `.annotations.part`, CSV's `.rows.jsonl`). A task's output is reused
only when its key (content hash, image file name, image size) and the fingerprint are the same, and
the stream files are those the spans were recorded in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from lsflow.core.formats.base import ExportContext, Stream
from lsflow.core.report import TaskAccount
from lsflow.core.selection import AnnotationPolicy
from lsflow.core.shapes import ImageSize
from lsflow.core.streams import Span

INDEX_FILE = "index.parquet"
MANIFEST_FILE = "manifest.json"
_BATCH = 1000
_SCHEMA = pa.schema([
    ("task_id", pa.int64()), ("key", pa.binary()), ("starts", pa.list_(pa.int64())),
    ("lengths", pa.list_(pa.int64())), ("files", pa.list_(pa.string())), ("account", pa.binary()),
])


@cache
def _code_digest() -> str:
    """lsflow's own source: outputs are reused only by the code that made them."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(format_name: str, context: ExportContext, policy: AnnotationPolicy) -> str:
    """Everything but the task a task's output depends on (media aside: those formats keep nothing)."""
    return hashlib.sha256(orjson.dumps([
        _code_digest(), format_name, repr(context.label_config), context.classes.names_by_id,
        context.keypoint_names, context.project_id, context.image_key, sorted(context.options.items()), str(policy),
    ])).hexdigest()


def task_key(content_hash: str, file_name: str, image_size: ImageSize | None) -> bytes:
    size = f"{image_size.width}x{image_size.height}" if image_size else "-"
    return hashlib.blake2b(f"{content_hash}\0{file_name}\0{size}".encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class KeptOutput:
    spans: list[Span]  # in the order of the format's streams
    files: list[str]
    account: TaskAccount


class PreviousOutputs:
    """The outputs the last export of a format kept, looked up by task."""

    def __init__(self, index: pq.ParquetFile, rows: dict[int, tuple[int, int]], sources: dict[str, BinaryIO]):
        self._index = index
        self._rows = rows  # task id → (row group, row in it)
        self._group: tuple[int, dict[str, list]] | None = None
        self.sources = sources  # stream name → its previous file, open for reading

    @classmethod
    def open(cls, directory: Path, fingerprint_now: str, streams: dict[str, Stream],
             dataset_dir: Path) -> PreviousOutputs | None:
        """The previous outputs in `directory`, or None when there are none that can be trusted."""
        try:
            manifest = orjson.loads((directory / MANIFEST_FILE).read_bytes())
            index = pq.ParquetFile(directory / INDEX_FILE)
        except (OSError, ValueError, pa.ArrowException):
            return None
        if manifest.get("fingerprint") != fingerprint_now or manifest.get("streams") != list(streams):
            return None
        sources: dict[str, BinaryIO] = {}
        for name, stream in streams.items():
            path = _stream_path(stream, directory, dataset_dir)
            try:
                status = path.stat()
            except OSError:
                status = None
            if status is None or [status.st_size, status.st_mtime_ns] != manifest["sources"].get(name):
                for source in sources.values():
                    source.close()
                return None
            sources[name] = open(path, "rb")
        rows = {}
        for group in range(index.num_row_groups):
            ids = index.read_row_group(group, columns=["task_id"]).column(0).to_pylist()
            rows.update((task_id, (group, row)) for row, task_id in enumerate(ids))
        return cls(index, rows, sources)

    def find(self, task_id: Any, key: bytes) -> KeptOutput | None:
        where = self._rows.get(task_id)
        if where is None:
            return None
        group, row = where
        if self._group is None or self._group[0] != group:  # tasks come in order: a group is read once
            self._group = (group, self._index.read_row_group(group).to_pydict())
        columns = self._group[1]
        if columns["key"][row] != key:
            return None
        return KeptOutput(list(zip(columns["starts"][row], columns["lengths"][row])), columns["files"][row],
                          TaskAccount.from_json(orjson.loads(columns["account"][row])))

    def close(self) -> None:
        for source in self.sources.values():
            source.close()


class OutputRecorder:
    """Writes the index of the export being made, task after task."""

    def __init__(self, directory: Path, fingerprint_now: str, streams: dict[str, Stream]):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._fingerprint = fingerprint_now
        self._streams = streams
        self._writer = pq.ParquetWriter(directory / INDEX_FILE, _SCHEMA)
        self._rows: list[tuple] = []

    def add(self, task_id: Any, key: bytes, spans: list[Span], files: list[str], account: TaskAccount) -> None:
        self._rows.append((task_id, key, [start for start, _ in spans], [length for _, length in spans], files,
                           orjson.dumps(account.to_json())))
        if len(self._rows) >= _BATCH:
            self._flush()

    def finish(self, dataset_dir: Path) -> None:
        """Close the index and note the stream files as they are now, published in `dataset_dir`."""
        self._flush()
        self._writer.close()
        sources = {}
        for name, stream in self._streams.items():
            status = _stream_path(stream, self.directory, dataset_dir).stat()
            sources[name] = [status.st_size, status.st_mtime_ns]
        manifest = {"fingerprint": self._fingerprint, "streams": list(self._streams), "sources": sources}
        (self.directory / MANIFEST_FILE).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))

    def abandon(self) -> None:
        self._writer.close()

    def _flush(self) -> None:
        if self._rows:
            columns = zip(*self._rows)
            arrays = [pa.array(column, type=field.type) for column, field in zip(columns, _SCHEMA)]
            self._writer.write_table(pa.Table.from_arrays(arrays, schema=_SCHEMA))
            self._rows.clear()


def _stream_path(stream: Stream, reuse_dir: Path, dataset_dir: Path) -> Path:
    """Working streams are kept with the index; the others are files of the published dataset."""
    return (reuse_dir if stream.temporary else dataset_dir) / stream.file
