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
from collections.abc import Callable, Iterator
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
# The previous index's rows read at once, and how far behind the row asked for (see PreviousOutputs.rows).
_WINDOW_ROWS, _WINDOW_BEHIND = 8192, 2048
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
_STARTS = _SCHEMA.get_field_index("starts")


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


_KEY_BYTES = 16


def task_key(content_hash: str, file_name: str, image_size: ImageSize | None) -> bytes:
    size = f"{image_size.width}x{image_size.height}" if image_size else "-"
    return hashlib.blake2b(f"{content_hash}\0{file_name}\0{size}".encode(), digest_size=_KEY_BYTES).digest()


def media_task_key(key: bytes, files: list[tuple[str, int, int]]) -> bytes:
    """The task's key and, per media file its output is made from, (reference, size, mtime in ns):
    a file replaced under the same reference (re-uploaded, re-downloaded) gives another key."""
    return hashlib.blake2b(key + orjson.dumps(files), digest_size=_KEY_BYTES).digest()


class PreviousOutputs:
    """The outputs the last export of a format kept: which task's can be reused, and runs of them.

    Only the task ids and keys are held whole (~40 bytes a task); the rest of the index is read a
    window of rows at a time as the pass reaches them: five formats' whole indexes of a 100 000-task
    shard took its reuse pass to ~470 MB. The pass meets the rows in order (the store keeps a task's
    place), so a window is read a few times per 10 000 tasks.
    """

    def __init__(self, index: pq.ParquetFile, sources: dict[str, BinaryIO], format_name: str):
        self._index = index
        self.format_name = format_name
        self.sources = sources  # stream name → its previous file, open for reading
        # A batch at a time: read whole, the two columns' buffers cost ~20 MB a format that the allocator keeps.
        ids, keys = [], []
        for batch in index.iter_batches(_WINDOW_ROWS, columns=["task_id", "key"], use_threads=False):
            ids.append(batch.column(0).to_numpy())
            keys.append(_fixed_keys(batch.column(1)))
        task_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        self._row_order = np.argsort(task_ids, kind="stable")
        self._sorted_ids = task_ids[self._row_order]
        self._keys = np.concatenate(keys) if keys else np.zeros((0, 2), dtype=np.uint64)
        sizes = [index.metadata.row_group(group).num_rows for group in range(index.num_row_groups)]
        self._group_starts = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
        self._window_first = self._window_end = 0
        self._window: pa.Table = _SCHEMA.empty_table()
        self._window_facts: _WindowFacts | None = None

    @classmethod
    def open(cls, directory: Path, fingerprint_now: str, streams: dict[str, Stream], dataset_dir: Path,
             format_name: str) -> PreviousOutputs | None:
        """The previous outputs in `directory`, or None when there are none that can be trusted."""
        try:
            manifest = orjson.loads((directory / MANIFEST_FILE).read_bytes())
            # Not pq.read_table: it imports pyarrow.dataset (~50 MB in every shard step).
            index = pq.ParquetFile(directory / INDEX_FILE, pre_buffer=False)
        except (OSError, ValueError, pa.ArrowException):
            return None
        sources: dict[str, BinaryIO] = {}

        def untrusted() -> PreviousOutputs | None:
            """Nothing to reuse: what was opened, closed."""
            for source in sources.values():
                source.close()
            index.close()
            return None

        if (manifest.get("fingerprint") != fingerprint_now or manifest.get("streams") != list(streams)
                or index.schema_arrow != _SCHEMA):
            return untrusted()
        for name, stream in streams.items():
            path = _stream_path(stream, directory, dataset_dir)
            try:
                status = path.stat()
            except OSError:
                status = None
            if status is None or [status.st_size, status.st_mtime_ns] != manifest["sources"].get(name):
                return untrusted()
            sources[name] = open(path, "rb")
        try:
            return cls(index, sources, format_name)
        except (OSError, ValueError, pa.ArrowException):  # ValueError: a key not of `task_key`'s size
            return untrusted()

    def match(self, task_id: Any, key: bytes) -> int | None:
        """The task's row, if its output can be reused (the same key: the same task, name and size)."""
        place = int(np.searchsorted(self._sorted_ids, task_id, side="right")) - 1  # the last row of the id
        if place < 0 or self._sorted_ids[place] != task_id:
            return None
        row = int(self._row_order[place])
        return row if self._keys[row].tobytes() == key else None

    def match_many(self, task_ids: list[Any], keys: list[bytes | None]) -> list[int | None]:
        """`match` for a batch of tasks at once (None for a task without a key)."""
        if not all(type(task_id) is int for task_id in task_ids) or \
                not all(key is None or len(key) == _KEY_BYTES for key in keys) or not len(self._sorted_ids):
            return [None if key is None else self.match(task_id, key) for task_id, key in zip(task_ids, keys)]
        ids = np.array(task_ids, dtype=np.int64)
        places = np.maximum(np.searchsorted(self._sorted_ids, ids, side="right") - 1, 0)  # each id's last row
        rows = self._row_order[places]
        wanted = np.frombuffer(b"".join(key or bytes(_KEY_BYTES) for key in keys), dtype=np.uint64).reshape(-1, 2)
        same = (self._sorted_ids[places] == ids) & (self._keys[rows] == wanted).all(axis=1)
        return [int(row) if hit and key is not None else None for row, hit, key in zip(rows.tolist(), same.tolist(), keys)]

    def rows(self, first: int, count: int) -> pa.Table:
        """The index rows of a run."""
        self._load_window(first, count)
        return self._window.slice(first - self._window_first, count)

    def _load_window(self, first: int, count: int) -> None:
        """The window of the index holding the run's rows, read unless it is the one held."""
        end = first + count
        if first < self._window_first or end > self._window_end:
            # Batches still being finished lie a little behind the one being started: read some of those too.
            low = max(0, first - _WINDOW_BEHIND)
            high = max(end, first + _WINDOW_ROWS)
            groups = range(int(np.searchsorted(self._group_starts, low, side="right")) - 1,
                           min(int(np.searchsorted(self._group_starts, high, side="left")), self._index.num_row_groups))
            self._window = self._index.read_row_groups(list(groups), use_threads=False).combine_chunks()
            self._window_first = int(self._group_starts[groups.start])
            self._window_end = self._window_first + self._window.num_rows
            self._window_facts = None

    def _facts(self, first: int, count: int) -> tuple[_WindowFacts, int, int]:
        """The window's facts, and the run's rows in it: a run's spans and accounting are slices of arrays
        made once a window, not a dozen Arrow calls a run (1 % of the tasks changed, scattered, makes
        ~200 runs a format in 20 000 tasks)."""
        self._load_window(first, count)
        if self._window_facts is None:
            self._window_facts = _WindowFacts(self._window, len(self.sources))
        low = first - self._window_first
        return self._window_facts, low, low + count

    def spans(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, lengths) of the run's records: a (rows, streams) array each."""
        facts, low, high = self._facts(first, count)
        return facts.starts[low:high], facts.lengths[low:high]

    def files(self, first: int, count: int) -> Iterator[tuple[int, str]]:
        """(row within the run, relative path) of every file the run's tasks wrote."""
        for row, files in enumerate(self.rows(first, count).column("files").to_pylist()):
            for relative in files:
                yield row, relative

    def report(self, first: int, count: int) -> RegionReport:
        """The run's accounting, as `RegionReport.add_task` would add it up task by task."""
        facts, low, high = self._facts(first, count)
        totals = facts.totals[high] - facts.totals[low]
        report = RegionReport(self.format_name, tasks=count, annotations_exported=int(totals[0]),
                              regions_in=int(totals[1]), clipped=int(totals[2]))
        written = facts.values["written"](low, high)
        report.written = len(written)
        report.labels.update(label for label in written if label is not None)
        for name, reasons in (("skipped", report.annotations_skipped), ("dropped", report.dropped),
                              ("images_skipped", report.images_skipped)):
            reasons.update(facts.values[name](low, high))
        return report

    def close(self) -> None:
        for source in self.sources.values():
            source.close()
        self._index.close()


class _WindowFacts:
    """A window's spans as (rows, streams) arrays, its counts as running totals, its list columns flattened."""

    def __init__(self, window: pa.Table, streams: int):
        self.starts = _matrix(window.column("starts"), streams)
        self.lengths = _matrix(window.column("lengths"), streams)
        counts = np.stack([window.column(name).to_numpy(zero_copy_only=False).astype(np.int64)
                           for name in ("exported", "regions_in", "clipped")], axis=1) if window.num_rows else \
            np.zeros((0, 3), dtype=np.int64)
        self.totals = np.concatenate((np.zeros((1, 3), dtype=np.int64), np.cumsum(counts, axis=0)))
        self.values = {name: _flattened(window.column(name).combine_chunks())
                       for name in ("written", "skipped", "dropped", "images_skipped")}


def _flattened(column: pa.ListArray) -> Callable[[int, int], list]:
    """The values of rows [low, high) of a list column of strings, in order, from one dictionary-encoded
    copy of it (4 bytes a value, where Python strings took ~60: a window of a million-task shard's labels)."""
    encoded = pc.dictionary_encode(column.flatten(), null_encoding="encode")
    names = encoded.dictionary.to_pylist()
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    offsets = column.offsets.to_numpy(zero_copy_only=False) - column.offsets[0].as_py()
    return lambda low, high: [names[i] for i in indices[offsets[low]:offsets[high]].tolist()]


def _fixed_keys(keys: pa.BinaryArray) -> np.ndarray:
    """The keys (16 bytes each, as `task_key` makes them) as a (rows, 2) array: 16 bytes a task, where
    Arrow's binary column holds 20 and Python's bytes objects 49."""
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int32)[keys.offset:keys.offset + len(keys) + 1]
    if keys.null_count or np.any(np.diff(offsets) != _KEY_BYTES):
        raise ValueError("reuse index keys are not all 16 bytes")
    data = np.frombuffer(keys.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return data.view(np.uint64).reshape(-1, 2).copy()


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    """A list column of `width` numbers a row, as a (rows, width) array."""
    return pc.list_flatten(column.combine_chunks()).to_numpy(zero_copy_only=False).reshape(-1, width)


class OutputRecorder:
    """Writes the index of the export being made into its (staging) directory as the tasks come, in task
    order: rows of tasks written, a few thousand at a time, and runs of the previous index's rows for the
    tasks reused. Memory holds one batch of rows however many tasks the export has."""

    def __init__(self, directory: Path, fingerprint_now: str, streams: dict[str, Stream]):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._fingerprint = fingerprint_now
        self._streams = streams
        # Rows not yet written, in task order: written as one row group once there are `_RECORD_BATCH` of them.
        # A row group a kept run made 1 % of changed tasks scattered over a project write ~400 row groups a
        # format, a third of an incremental build's time. Rows of tasks written are tuples in `_SCHEMA`'s
        # column order, made into one table a row group; `_order` lists both kinds' runs as they came.
        self._fresh: list[tuple] = []
        self._kept: list[pa.Table] = []
        self._order: list[tuple[bool, int]] = []  # (kept?, rows)
        self._pending_rows = 0
        self._file = open(directory / INDEX_FILE, "wb")  # closed by `finish` or `abandon`, also on a full disk
        self._writer = pq.ParquetWriter(self._file, _SCHEMA)

    def add(self, task_id: Any, key: bytes, spans: list[Span], files: list[str], account: TaskAccount) -> None:
        selection = account.selection
        self._fresh.append((task_id, key, [start for start, _ in spans], [length for _, length in spans], files,
                            selection.annotations_exported, selection.annotations_skipped, selection.regions_in,
                            account.written, account.clipped, account.dropped, account.images_skipped))
        self._came(False, 1)

    def add_kept(self, rows: pa.Table, starts: np.ndarray) -> None:
        """A run of the previous index's rows, with where their records start now ((rows, streams) array)."""
        offsets = pa.array(np.arange(0, starts.size + 1, starts.shape[1], dtype=np.int32))
        moved = pa.ListArray.from_arrays(offsets, pa.array(starts.reshape(-1), type=pa.int64()))
        self._kept.append(rows.set_column(_STARTS, _SCHEMA.field(_STARTS), moved))
        self._came(True, rows.num_rows)

    def _came(self, kept: bool, rows: int) -> None:
        if self._order and self._order[-1][0] == kept:
            self._order[-1] = (kept, self._order[-1][1] + rows)
        else:
            self._order.append((kept, rows))
        self._pending_rows += rows
        if self._pending_rows >= _RECORD_BATCH:
            self._flush()

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
        if not self._pending_rows:
            return
        fresh = table_of_rows(self._fresh, _SCHEMA)
        if not self._kept:
            table = fresh
        else:  # the fresh rows first, then the kept ones, put back in the order they came
            table = pa.concat_tables([fresh, *self._kept])
            places, fresh_at, kept_at = [], 0, len(self._fresh)
            for kept, rows in self._order:
                start = kept_at if kept else fresh_at
                places.append(np.arange(start, start + rows))
                if kept:
                    kept_at += rows
                else:
                    fresh_at += rows
            table = table.take(np.concatenate(places))
        self._writer.write_table(table.combine_chunks())
        self._fresh.clear()
        self._kept.clear()
        self._order.clear()
        self._pending_rows = 0


def _stream_path(stream: Stream, reuse_dir: Path, dataset_dir: Path) -> Path:
    """Working streams are kept with the index; the others are files of the published dataset."""
    return (reuse_dir if stream.temporary else dataset_dir) / stream.file
