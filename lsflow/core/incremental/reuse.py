"""What an export keeps for the next one: where each task's output went, so an unchanged task's can
be reused (records copied out of the previous files, its own files hard-linked) instead of made again.

Per format, `<reuse dir>/<FORMAT>/` holds `index.parquet` (one row per task: its key, the span of its
records in every stream, its files, its account; see `_SCHEMA`), `manifest.json` (the fingerprint of everything
else a task's output depends on — lsflow's code, the format, label config, classes, options, policy —
and the size and mtime of each stream file the spans point into) and the working streams that are
not part of the dataset (COCO's `.annotations.part`, CSV's `.rows.jsonl`). A task's output is reused
only when its key (content hash, image file name, image size) and the fingerprint are the same, and
the stream files are those the spans were recorded in. A media-keyed format's key (`media_task_key`)
also names each media file the task's output was made from, with its size and mtime.

Unchanged tasks come in long runs of consecutive rows, and a run is reused as a whole: one copy per
stream, its accounts added up and its index rows carried over in a few vectorized operations.
"""

from __future__ import annotations

import contextlib
import hashlib
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lsflow.core.formats.accounting import RegionReport, TaskAccount
from lsflow.core.formats.base import ExportContext, Span, Stream
from lsflow.core.incremental.store import table_of_rows
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import ImageSize

INDEX_FILE = "index.parquet"
_RECORD_BATCH = 4096  # index rows of written tasks held before they are written out
MANIFEST_FILE = "manifest.json"
_SCHEMA = pa.schema([
    ("task_id", pa.int64()), ("key", pa.binary()),
    # The task's records in each stream, in the format's order of streams (length 0: none).
    ("starts", pa.list_(pa.int64())), ("lengths", pa.list_(pa.int64())),
    ("files", pa.list_(pa.string())),
    # Its account (lsflow.core.formats.accounting.TaskAccount).
    ("exported", pa.int32()), ("skipped", pa.list_(pa.string())), ("regions_in", pa.int32()),
    ("written", pa.list_(pa.string())), ("clipped", pa.int32()), ("dropped", pa.list_(pa.string())),
    ("images_skipped", pa.list_(pa.string())),
])


@cache
def code_digest() -> str:
    """lsflow's own source: outputs are reused only by the code that made them."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(format_name: str, context: ExportContext, policy: AnnotationPolicy) -> str:
    """Everything but the task (and, for media-keyed formats, its media files) a task's output depends on."""
    return hashlib.sha256(orjson.dumps([
        code_digest(), format_name, repr(context.label_config), context.classes.names_by_id,
        context.keypoint_names, context.project_id, context.image_key, sorted(context.options.items()), str(policy),
    ])).hexdigest()


def task_key(content_hash: str, file_name: str, image_size: ImageSize | None) -> bytes:
    size = f"{image_size.width}x{image_size.height}" if image_size else "-"
    return hashlib.blake2b(f"{content_hash}\0{file_name}\0{size}".encode(), digest_size=16).digest()


def media_task_key(key: bytes, files: list[tuple[str, int, int]]) -> bytes:
    """The task's key and, per media file its output is made from, (reference, size, mtime in ns):
    a file replaced under the same reference (re-uploaded, re-downloaded) gives another key."""
    return hashlib.blake2b(key + orjson.dumps(files), digest_size=16).digest()


class PreviousOutputs:
    """The outputs the last export of a format kept: which task's can be reused, and runs of them.

    A run of consecutive rows is reused in constant time: its spans come from (rows, streams)
    arrays, its accounting from running totals (and the few rows that dropped or skipped anything).
    """

    def __init__(self, index: pa.Table, sources: dict[str, BinaryIO], format_name: str):
        self.index = index
        self.format_name = format_name
        # Held as arrays, not Python objects: five formats' indexes of a 100 000-task shard as dicts and
        # lists took a shard step's reuse pass to ~530 MB.
        task_ids = index.column("task_id").to_numpy()
        self._row_order = np.argsort(task_ids, kind="stable")
        self._sorted_ids = task_ids[self._row_order]
        self._keys = index.column("key").combine_chunks()
        self.sources = sources  # stream name → its previous file, open for reading
        self.starts, self.lengths = (_matrix(index.column(name), len(sources)) for name in ("starts", "lengths"))
        self._totals = {name: _running_total(index.column(name).to_numpy(zero_copy_only=False))
                        for name in ("exported", "regions_in", "clipped")}
        self._totals["written"] = _running_total(pc.list_value_length(index.column("written")).to_numpy())
        written = index.column("written").combine_chunks()
        labels = pc.list_flatten(written)
        self._labels = [label for label in pc.unique(labels).to_pylist() if label is not None]
        counts = np.zeros((index.num_rows + 1, len(self._labels)), dtype=np.int32)
        if self._labels:
            codes = pc.index_in(labels, value_set=pa.array(self._labels, type=pa.string())).to_numpy(zero_copy_only=False)
            rows = pc.list_parent_indices(written).to_numpy()
            present = ~np.isnan(codes) if codes.dtype.kind == "f" else np.ones(len(codes), bool)
            np.add.at(counts, (rows[present] + 1, codes[present].astype(np.int64)), 1)
        self._label_totals = np.cumsum(counts, axis=0, dtype=np.int64 if index.num_rows >= 2**31 else np.int32)
        # The rows that dropped or skipped anything, with what: few, so kept as Python lists.
        names = ("skipped", "dropped", "images_skipped")
        any_reason = np.zeros(index.num_rows, dtype=bool)
        for name in names:
            any_reason |= pc.list_value_length(index.column(name)).to_numpy() > 0
        self._reason_rows = np.flatnonzero(any_reason).tolist()
        chosen = index.select(list(names)).take(pa.array(self._reason_rows, type=pa.int64())).to_pydict()
        self._reasons = {row: tuple(chosen[name][n] for name in names) for n, row in enumerate(self._reason_rows)}
        files = index.column("files").combine_chunks()
        self._files = pc.list_flatten(files)
        self._file_offsets = files.offsets.to_numpy()

    @classmethod
    def open(cls, directory: Path, fingerprint_now: str, streams: dict[str, Stream], dataset_dir: Path,
             format_name: str) -> PreviousOutputs | None:
        """The previous outputs in `directory`, or None when there are none that can be trusted."""
        try:
            manifest = orjson.loads((directory / MANIFEST_FILE).read_bytes())
            # Not pq.read_table: it imports pyarrow.dataset (~50 MB in every shard step).
            index = pq.ParquetFile(directory / INDEX_FILE, pre_buffer=False).read(use_threads=False)
        except (OSError, ValueError, pa.ArrowException):
            return None
        if (manifest.get("fingerprint") != fingerprint_now or manifest.get("streams") != list(streams)
                or index.schema != _SCHEMA):
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
        return cls(index.combine_chunks(), sources, format_name)

    def match(self, task_id: Any, key: bytes) -> int | None:
        """The task's row, if its output can be reused (the same key: the same task, name and size)."""
        place = int(np.searchsorted(self._sorted_ids, task_id, side="right")) - 1  # the last row of the id
        if place < 0 or self._sorted_ids[place] != task_id:
            return None
        row = int(self._row_order[place])
        return row if self._keys[row].as_py() == key else None

    def files(self, first: int, count: int) -> Iterator[tuple[int, str]]:
        """(row within the run, relative path) of every file the run's tasks wrote."""
        offsets = self._file_offsets
        start = int(offsets[first])
        files = self._files.slice(start, int(offsets[first + count]) - start).to_pylist()
        for row in range(count):
            for relative in files[offsets[first + row] - start:offsets[first + row + 1] - start]:
                yield row, relative

    def report(self, first: int, count: int) -> RegionReport:
        """The run's accounting, as `RegionReport.add_task` would add it up task by task."""
        end = first + count
        totals = {name: int(total[end] - total[first]) for name, total in self._totals.items()}
        labels = self._label_totals[end] - self._label_totals[first]
        report = RegionReport(
            self.format_name, tasks=count, annotations_exported=totals["exported"], regions_in=totals["regions_in"],
            written=totals["written"], clipped=totals["clipped"],
            labels=Counter({label: int(n) for label, n in zip(self._labels, labels) if n}),
        )
        for row in self._reason_rows[bisect_left(self._reason_rows, first):bisect_left(self._reason_rows, end)]:
            skipped, dropped, images_skipped = self._reasons[row]
            report.annotations_skipped.update(skipped)
            report.dropped.update(dropped)
            report.images_skipped.update(images_skipped)
        return report

    def close(self) -> None:
        for source in self.sources.values():
            source.close()


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    """A list column of `width` numbers a row, as a (rows, width) array."""
    return pc.list_flatten(column.combine_chunks()).to_numpy(zero_copy_only=False).reshape(-1, width)


def _running_total(values: np.ndarray) -> np.ndarray:
    """total[i] = sum of values[:i]."""
    return np.concatenate(([0], np.cumsum(values, dtype=np.int64)))


class OutputRecorder:
    """Writes the index of the export being made into its (staging) directory as the tasks come, in task
    order: rows of tasks written, a few thousand at a time, and runs of the previous index's rows for the
    tasks reused. Memory holds one batch of rows however many tasks the export has."""

    def __init__(self, directory: Path, fingerprint_now: str, streams: dict[str, Stream]):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._fingerprint = fingerprint_now
        self._streams = streams
        self._fresh: list[tuple] = []  # rows of the index not yet written, as `_SCHEMA` orders its columns
        self._file = open(directory / INDEX_FILE, "wb")  # closed by `finish` or `abandon`, also on a full disk
        self._writer = pq.ParquetWriter(self._file, _SCHEMA)

    def add(self, task_id: Any, key: bytes, spans: list[Span], files: list[str], account: TaskAccount) -> None:
        selection = account.selection
        self._fresh.append((task_id, key, [start for start, _ in spans], [length for _, length in spans], files,
                            selection.annotations_exported, selection.annotations_skipped, selection.regions_in,
                            account.written, account.clipped, account.dropped, account.images_skipped))
        if len(self._fresh) >= _RECORD_BATCH:
            self._flush()

    def add_kept(self, previous: PreviousOutputs, first: int, count: int, shifts: np.ndarray) -> None:
        """A run of the previous index's rows, its records moved by `shifts` (one offset a stream)."""
        self._flush()
        starts = previous.starts[first:first + count] + shifts
        offsets = pa.array(np.arange(0, starts.size + 1, starts.shape[1], dtype=np.int32))
        moved = pa.ListArray.from_arrays(offsets, pa.array(starts.reshape(-1), type=pa.int64()))
        rows = previous.index.slice(first, count)
        self._writer.write_table(rows.set_column(rows.schema.get_field_index("starts"), "starts", moved))

    def finish(self, dataset_dir: Path) -> None:
        """Close the index and note the stream files as they are now, published in `dataset_dir`."""
        self._flush()
        self._writer.close()
        self._file.close()
        sources = {}
        for name, stream in self._streams.items():
            status = _stream_path(stream, self.directory, dataset_dir).stat()
            sources[name] = [status.st_size, status.st_mtime_ns]
        manifest = {"fingerprint": self._fingerprint, "streams": list(self._streams), "sources": sources}
        (self.directory / MANIFEST_FILE).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))

    def abandon(self) -> None:
        """Close the index being written without finishing it: an open file's disk space is only freed
        when it is closed, even once its folder is removed."""
        with contextlib.suppress(OSError):  # the disk is full: what could not be written goes with the file
            self._writer.close()
        with contextlib.suppress(OSError):
            self._file.close()

    def _flush(self) -> None:
        if self._fresh:
            self._writer.write_table(table_of_rows(self._fresh, _SCHEMA))
            self._fresh.clear()


def _stream_path(stream: Stream, reuse_dir: Path, dataset_dir: Path) -> Path:
    """Working streams are kept with the index; the others are files of the published dataset."""
    return (reuse_dir if stream.temporary else dataset_dir) / stream.file
