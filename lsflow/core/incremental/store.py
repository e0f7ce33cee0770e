"""The normalized store of one project: tasks, annotations and regions in pixel units, as Parquet.

- `tasks.parquet`: one row per task with its content hash and the task as exported (`raw_json`),
  so every format can be rebuilt from the store without downloading again;
- `annotations.parquet`: annotations and predictions (`kind`), with who and when;
- `regions.parquet`: one row per region with its shape in pixels (`points_px`, envelope) or the
  reason it has none;
- `manifest.json`: where the data came from and what it holds.

Rows are written in batches while tasks stream past; memory holds one batch. An incremental
snapshot is upserted table by table (`upsert_store`): the rows of unchanged tasks are copied as they
are, without parsing a task again.

Label Studio serializes each prediction with `created_ago` ("5 minutes"), the time since it was
made at the moment of the export: the store leaves it out, so a task's content (and its hash) does
not change while it merely ages.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lsflow.core.geometry.shapes import RegionDrop, to_shape
from lsflow.core.model.entries import TaskEntry, image_reference, known_image_size
from lsflow.core.model.task import ImageSize, Task

MANIFEST_FILE = "manifest.json"
# The layout of the tables; a store of another version is not upserted into (the next export is full).
STORE_VERSION = 2
BATCH_TASKS = 1000
# Time-relative fields Label Studio adds to a task's annotations, predictions and drafts when exporting.
EXPORT_TIME_FIELDS = ("created_ago",)

TASKS_SCHEMA = pa.schema([
    ("task_id", pa.int64()), ("updated_at", pa.string()), ("image_ref", pa.string()),
    ("image_width", pa.int32()), ("image_height", pa.int32()), ("content_hash", pa.string()),
    ("raw_json", pa.binary()),
])
ANNOTATIONS_SCHEMA = pa.schema([
    ("task_id", pa.int64()), ("annotation_id", pa.int64()), ("kind", pa.string()),
    ("was_cancelled", pa.bool_()), ("ground_truth", pa.bool_()), ("completed_by", pa.string()),
    ("created_at", pa.string()), ("updated_at", pa.string()), ("lead_time", pa.float64()),
    ("model_version", pa.string()), ("score", pa.float64()), ("region_count", pa.int32()),
])
REGIONS_SCHEMA = pa.schema([
    ("task_id", pa.int64()), ("annotation_id", pa.int64()), ("kind", pa.string()),
    ("annotation_cancelled", pa.bool_()),
    ("region_id", pa.string()), ("from_name", pa.string()), ("to_name", pa.string()),
    ("type", pa.string()), ("label", pa.string()), ("labels", pa.list_(pa.string())),
    ("shape", pa.string()), ("rotation", pa.float64()), ("points_px", pa.list_(pa.float64())),
    ("xmin", pa.float64()), ("ymin", pa.float64()), ("xmax", pa.float64()), ("ymax", pa.float64()),
    ("image_width", pa.int32()), ("image_height", pa.int32()), ("no_shape_reason", pa.string()),
])
TABLES = {"tasks": TASKS_SCHEMA, "annotations": ANNOTATIONS_SCHEMA, "regions": REGIONS_SCHEMA}


@dataclass(frozen=True, slots=True)
class StoreSummary:
    tasks: int
    annotations: int
    predictions: int
    regions: int
    max_updated_at: str | None
    content_digest: str  # changes exactly when some task's content changes
    labels: dict[str, int]


@dataclass
class StoreChanges:
    """What an incremental snapshot did to the store."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0  # fetched again (the watermark overlaps) but identical
    deleted: int = 0


def stored_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """The task as the store keeps it: as exported, without the export-time fields."""
    copied = None
    for key in ("annotations", "predictions", "drafts"):
        items = raw.get(key)
        if not isinstance(items, list) or not any(isinstance(i, dict) and _has_export_time(i) for i in items):
            continue
        copied = copied if copied is not None else dict(raw)
        copied[key] = [{k: v for k, v in i.items() if k not in EXPORT_TIME_FIELDS} if isinstance(i, dict) else i
                       for i in items]
    return raw if copied is None else copied


def _has_export_time(item: dict[str, Any]) -> bool:
    return any(field in item for field in EXPORT_TIME_FIELDS)


def content_hash(raw: dict[str, Any]) -> str:
    """Of the stored task: equal exactly when the task's content is."""
    return hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()


def table_of_rows(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    """Rows as tuples in the schema's column order, as a table."""
    columns = zip(*rows) if rows else [[] for _ in schema]
    return pa.Table.from_arrays([pa.array(column, type=field.type) for column, field in zip(columns, schema)],
                                schema=schema)


class _Rows:
    """Rows of the three tables, tuples in schema order: building a dict per row and letting pyarrow
    look every key up again cost more than the rest of the store."""

    def __init__(self, image_key: str | None):
        self.image_key = image_key
        self.tasks: list[tuple] = []
        self.annotations: list[tuple] = []
        self.regions: list[tuple] = []

    def add(self, task: Task) -> tuple[str, ImageSize | None]:
        """The task's rows; (its content hash, its image size)."""
        raw = stored_raw(task.raw)
        digest = content_hash(raw)
        size = known_image_size(raw)
        self.tasks.append((task.id, task.updated_at, image_reference(task.data, self.image_key),
                           size.width if size else None, size.height if size else None, digest, orjson.dumps(raw)))
        for annotation in task.annotations + task.predictions:
            kind = "prediction" if annotation.is_prediction else "annotation"
            extra = annotation.raw
            self.annotations.append((
                task.id, annotation.id, kind, annotation.was_cancelled, annotation.ground_truth,
                orjson.dumps(annotation.completed_by).decode(), annotation.created_at, annotation.updated_at,
                _number(extra.get("lead_time")), _text(extra.get("model_version")), _number(extra.get("score")),
                len(annotation.regions),
            ))
            for region in annotation.regions:
                self.regions.append(_region_row(task, annotation.id, kind, annotation.was_cancelled, region, size))
        return digest, size

    def tables(self) -> dict[str, pa.Table]:
        tables = {}
        for (name, schema), rows in zip(TABLES.items(), (self.tasks, self.annotations, self.regions)):
            tables[name] = table_of_rows(rows, schema)
            rows.clear()
        return tables

    def __len__(self) -> int:
        return len(self.tasks)


def write_store(tasks: Iterable[Task], directory: Path, image_key: str | None, manifest: dict[str, Any]) -> StoreSummary:
    """Write the three tables and the manifest into `directory` (which must be empty or new)."""
    directory.mkdir(parents=True, exist_ok=True)
    writers = _writers(directory)
    rows = _Rows(image_key)
    try:
        for task in tasks:
            rows.add(task)
            if len(rows) >= BATCH_TASKS:
                _write(writers, rows.tables())
        _write(writers, rows.tables())
    finally:
        for writer in writers.values():
            writer.close()
    return _finish(directory, manifest)


def upsert_store(previous: Path, incoming: Iterable[Task], deleted_ids: set[int], directory: Path,
                 image_key: str | None, manifest: dict[str, Any]) -> tuple[StoreSummary, StoreChanges]:
    """The previous store with `incoming` upserted and `deleted_ids` removed, written to `directory`.

    Tasks keep their place (new ones follow, by id: task ids only grow), so the result equals a
    store of a full export of the same project state; applying the same changes twice gives the same
    store. The rows of untouched tasks are copied as they are, a batch at a time: only the changed
    tasks and the old tasks' ids (24 bytes a task) are in memory, however large the store.
    """
    changes = StoreChanges()
    updates = {task.id: task for task in incoming if task.id not in deleted_ids}  # the changed set: small
    rows = _Rows(image_key)
    digests = {task_id: rows.add(task)[0] for task_id, task in updates.items()}
    fresh = rows.tables()
    places = _Places(previous / "tasks.parquet")
    replaced = np.array(sorted(deleted_ids | set(updates)), dtype=np.int64)
    # Where each changed task's rows go: at its old place, or after every old task in id order.
    found = places.find(np.array(sorted(updates), dtype=np.int64))
    inserts = sorted((int(place), task_id) for task_id, place in zip(sorted(updates), found) if place >= 0)
    newcomers = [task_id for task_id, place in zip(sorted(updates), found) if place < 0]
    changes.new = len(newcomers)
    directory.mkdir(parents=True, exist_ok=True)
    writers = _writers(directory)
    def count(gone: pa.Table) -> None:  # the old rows of changed and deleted tasks, on their way out
        for task_id, old_digest in zip(gone.column("task_id").to_pylist(), gone.column("content_hash").to_pylist()):
            if task_id in deleted_ids:
                changes.deleted += 1
            elif digests[task_id] == old_digest:
                changes.unchanged += 1
            else:
                changes.changed += 1

    try:
        for name in TABLES:
            _upsert_table(previous / f"{name}.parquet", writers[name], places, replaced, fresh[name], inserts,
                          newcomers, count if name == "tasks" else None)
    finally:
        for writer in writers.values():
            writer.close()
    return _finish(directory, manifest), changes


_UPSERT_ROWS = 16_384  # annotation and region rows read at a time by an upsert


class _Places:
    """The old store's task ids in its order, for a row's task place: 24 bytes a task."""

    def __init__(self, tasks_file: Path):
        parquet = pq.ParquetFile(tasks_file, pre_buffer=False)
        ids = [batch.column(0).to_numpy() for batch in parquet.iter_batches(batch_size=65_536, columns=["task_id"])]
        self.ids = np.concatenate(ids) if ids else np.array([], dtype=np.int64)
        self._order = np.argsort(self.ids, kind="stable")
        self._sorted = self.ids[self._order]

    def find(self, task_ids: np.ndarray) -> np.ndarray:
        """Each id's place in the old store, -1 where it has none."""
        at = np.searchsorted(self._sorted, task_ids).clip(0, max(len(self._sorted) - 1, 0))
        if not len(self._sorted):
            return np.full(len(task_ids), -1, dtype=np.int64)
        return np.where(self._sorted[at] == task_ids, self._order[at], -1)


def _upsert_table(path: Path, writer: pq.ParquetWriter, places: _Places, replaced: np.ndarray, fresh: pa.Table,
                  inserts: list[tuple[int, int]], newcomers: list[int],
                  on_replaced: Callable[[pa.Table], None] | None) -> None:
    """One table of the upserted store, written batch by batch: the old rows, less those of replaced
    tasks, with each changed task's fresh rows at its place, then the new tasks' rows in id order.
    The old rows are grouped by task in task order (as the store writes them), which is checked."""
    fresh_ids = fresh.column("task_id").to_pylist()
    spans: dict[int, tuple[int, int]] = {}  # a task's fresh rows (consecutive: added task by task)
    for row, task_id in enumerate(fresh_ids):
        first, _ = spans.get(task_id, (row, 0))
        spans[task_id] = (first, row + 1 - first)
    pending = iter(inserts)
    insert = next(pending, None)
    last_place = -1
    parquet = pq.ParquetFile(path, pre_buffer=False)
    for batch in parquet.iter_batches(batch_size=BATCH_TASKS if path.name == "tasks.parquet" else _UPSERT_ROWS):
        ids = batch.column("task_id").to_numpy()
        row_places = places.find(ids)
        if (row_places < 0).any() or row_places[0] < last_place or (np.diff(row_places) < 0).any():
            raise ValueError(f"{path}: rows are not grouped by task in the order of the store's tasks; "
                             "export in full (`lsflow export --full`, run config `full: true`)")
        last_place = int(row_places[-1])
        gone = np.isin(ids, replaced)
        pieces: list[pa.Table] = []
        start = 0
        while insert is not None and insert[0] < last_place:  # the batch has rows of tasks after its place
            cut = int(np.searchsorted(row_places, insert[0], side="right"))
            pieces.append(_kept(batch, gone, start, cut, on_replaced))
            pieces.append(_fresh_rows(fresh, spans, insert[1]))
            start, insert = cut, next(pending, None)
        pieces.append(_kept(batch, gone, start, batch.num_rows, on_replaced))
        _write_rows(writer, pieces, path)
    rest = ([insert[1]] if insert is not None else []) + [task_id for _, task_id in pending] + newcomers
    tail = [_fresh_rows(fresh, spans, task_id) for task_id in rest]
    _write_rows(writer, tail, path)


def _kept(batch: pa.RecordBatch, gone: np.ndarray, start: int, end: int,
          on_replaced: Callable[[pa.Table], None] | None) -> pa.Table:
    rows = pa.Table.from_batches([batch.slice(start, end - start)])
    dropped = gone[start:end]
    if not dropped.any():
        return rows
    if on_replaced is not None:
        on_replaced(rows.filter(pa.array(dropped)))
    return rows.filter(pa.array(~dropped))


def _fresh_rows(fresh: pa.Table, spans: dict[int, tuple[int, int]], task_id: int) -> pa.Table:
    first, length = spans.get(task_id, (0, 0))
    return fresh.slice(first, length)


def _write_rows(writer: pq.ParquetWriter, pieces: list[pa.Table], path: Path) -> None:
    table = pa.concat_tables(pieces) if pieces else None
    if table is not None and table.num_rows:
        writer.write_table(table, row_group_size=BATCH_TASKS if path.name == "tasks.parquet" else None)


# What the summary is made of (`_finish`).
_SUMMARY_BATCH = 16_384
_SUMMARY_COLUMNS = {"tasks": ["task_id", "updated_at", "content_hash"], "annotations": ["kind"],
                    "regions": ["kind", "annotation_cancelled", "label"]}


def _writers(directory: Path) -> dict[str, pq.ParquetWriter]:
    return {name: pq.ParquetWriter(directory / f"{name}.parquet", schema) for name, schema in TABLES.items()}


def _write(writers: dict[str, pq.ParquetWriter], tables: dict[str, pa.Table]) -> None:
    for name, table in tables.items():
        if table.num_rows:
            writers[name].write_table(table, row_group_size=BATCH_TASKS if name == "tasks" else None)


def _finish(directory: Path, manifest: dict[str, Any], tables: dict[str, pa.Table] | None = None) -> StoreSummary:
    """The store's summary and its manifest, from its tables (read back from `directory` unless given)."""
    # A batch at a time: a million-task store's columns are never all in memory, nor its ids Python objects.
    def batches(name: str) -> Iterator[pa.RecordBatch | pa.Table]:
        if tables is not None:
            yield from tables[name].select(_SUMMARY_COLUMNS[name]).to_batches(max_chunksize=_SUMMARY_BATCH)
        else:
            yield from pq.ParquetFile(directory / f"{name}.parquet", pre_buffer=False).iter_batches(
                batch_size=_SUMMARY_BATCH, columns=_SUMMARY_COLUMNS[name])

    digest = hashlib.sha256()
    task_count, newest = 0, None
    for batch in batches("tasks"):
        task_count += batch.num_rows
        for task_id, task_hash in zip(batch.column("task_id").to_pylist(), batch.column("content_hash").to_pylist()):
            digest.update(f"{task_id}:{task_hash}\n".encode())
        batch_newest = pc.max(batch.column("updated_at")).as_py()
        if batch_newest is not None and (newest is None or batch_newest > newest):
            newest = batch_newest
    annotation_count = prediction_count = 0
    for batch in batches("annotations"):
        annotation_count += pc.sum(pc.equal(batch.column("kind"), "annotation")).as_py() or 0
        prediction_count += pc.sum(pc.equal(batch.column("kind"), "prediction")).as_py() or 0
    region_count, labels = 0, Counter[str]()
    for batch in batches("regions"):
        region_count += batch.num_rows
        counted = batch.filter(pc.and_(pc.equal(batch.column("kind"), "annotation"),
                                       pc.invert(batch.column("annotation_cancelled"))))
        for count in counted.column("label").drop_null().value_counts().to_pylist():
            labels[count["values"]] += count["counts"]
    summary = StoreSummary(
        tasks=task_count,
        annotations=annotation_count,
        predictions=prediction_count,
        regions=region_count,
        max_updated_at=newest or None,
        content_digest=digest.hexdigest(),
        labels=dict(sorted(labels.items())),
    )
    document = {**manifest, "store_version": STORE_VERSION, "task_count": summary.tasks,
                "annotation_count": summary.annotations, "prediction_count": summary.predictions,
                "region_count": summary.regions, "max_updated_at": summary.max_updated_at,
                "content_digest": summary.content_digest}
    (directory / MANIFEST_FILE).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return summary


def read_manifest(directory: Path) -> dict[str, Any]:
    return orjson.loads((directory / MANIFEST_FILE).read_bytes())


def iter_store_tasks(directory: Path) -> Iterator[Task]:
    """Tasks back from the store, in the order they were exported, one batch in memory at a time."""
    for entry in iter_store_entries(directory):
        yield entry.parsed()


def iter_store_entries(directory: Path) -> Iterator[TaskEntry]:
    """The store's tasks for the export pipeline, unparsed: what naming and reuse need comes from the
    columns, the task from its stored JSON when a writer needs it."""
    parquet = pq.ParquetFile(directory / "tasks.parquet", pre_buffer=False)
    position = 0
    columns = ["task_id", "updated_at", "image_ref", "image_width", "image_height", "content_hash", "raw_json"]
    for batch in parquet.iter_batches(batch_size=BATCH_TASKS, columns=columns):
        for task_id, updated_at, image_ref, width, height, digest, raw in zip(*(c.to_pylist() for c in batch.columns)):
            size = ImageSize(width, height) if width and height else None
            yield TaskEntry(task_id, updated_at, image_ref, size, raw=raw, content_hash=digest, position=position)
            position += 1


def _region_row(task: Task, annotation_id: Any, kind: str, cancelled: bool, region: Any, size: Any) -> tuple:
    """A row of REGIONS_SCHEMA, in its column order."""
    labels = region.labels
    identity = (task.id, annotation_id, kind, cancelled, None if region.id is None else str(region.id),
                region.from_name, region.to_name, region.type, labels[0] if labels else None, labels)
    try:
        shape = to_shape(region, size)
    except RegionDrop as drop:
        return (*identity, None, None, None, None, None, None, None, None, None, drop.reason)
    box = shape.envelope if shape.points else None
    corners = (box.xmin, box.ymin, box.xmax, box.ymax) if box else (None, None, None, None)
    return (*identity, shape.kind, shape.rotation, [c for p in shape.points for c in p], *corners,
            shape.image.width, shape.image.height, None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
