"""The normalized store of one project: tasks, annotations and regions in pixel units, as Parquet.

- `tasks.parquet`: one row per task with its content hash and the task as exported (`raw_json`),
  so every format can be rebuilt from the store without downloading again;
- `annotations.parquet`: annotations and predictions (`kind`), with who and when;
- `regions.parquet`: one row per region with its shape in pixels (`points_px`, envelope) or the
  reason it has none;
- `manifest.json`: where the data came from and what it holds.

Rows are written in batches while tasks stream past; memory holds one batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from lsflow.core.model import Task
from lsflow.core.shapes import RegionDrop, to_shape
from lsflow.core.task_entries import image_reference, known_image_size

MANIFEST_FILE = "manifest.json"
BATCH_TASKS = 1000

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


def content_hash(task: Task) -> str:
    return hashlib.sha256(orjson.dumps(task.raw, option=orjson.OPT_SORT_KEYS)).hexdigest()


def write_store(tasks: Iterable[Task], directory: Path, image_key: str | None, manifest: dict[str, Any]) -> StoreSummary:
    """Write the three tables and the manifest into `directory` (which must be empty or new)."""
    directory.mkdir(parents=True, exist_ok=True)
    writers = {name: pq.ParquetWriter(directory / f"{name}.parquet", schema) for name, schema in TABLES.items()}
    # Rows are tuples in schema order, turned into columns at each flush: building a dict per row and
    # letting pyarrow look every key up again cost more than the rest of the store.
    rows: dict[str, list[tuple]] = {name: [] for name in TABLES}
    task_rows, annotation_rows, region_rows = rows["tasks"], rows["annotations"], rows["regions"]
    counts = {"tasks": 0, "annotations": 0, "predictions": 0, "regions": 0}
    labels: dict[str, int] = {}
    task_hashes = hashlib.sha256()
    max_updated_at = None
    try:
        for task in tasks:
            digest = content_hash(task)
            task_hashes.update(f"{task.id}:{digest}\n".encode())
            if task.updated_at and (max_updated_at is None or task.updated_at > max_updated_at):
                max_updated_at = task.updated_at
            size = known_image_size(task.raw)
            task_rows.append((
                task.id, task.updated_at, image_reference(task.data, image_key),
                size.width if size else None, size.height if size else None, digest, orjson.dumps(task.raw),
            ))
            counts["tasks"] += 1
            for annotation in task.annotations + task.predictions:
                kind = "prediction" if annotation.is_prediction else "annotation"
                counts["predictions" if annotation.is_prediction else "annotations"] += 1
                raw = annotation.raw
                annotation_rows.append((
                    task.id, annotation.id, kind, annotation.was_cancelled, annotation.ground_truth,
                    orjson.dumps(annotation.completed_by).decode(), annotation.created_at, annotation.updated_at,
                    _number(raw.get("lead_time")), _text(raw.get("model_version")), _number(raw.get("score")),
                    len(annotation.regions),
                ))
                counted = kind == "annotation" and not annotation.was_cancelled
                for region in annotation.regions:
                    counts["regions"] += 1
                    row = _region_row(task, annotation.id, kind, region, size)
                    label = row[_REGION_LABEL]
                    if label is not None and counted:
                        labels[label] = labels.get(label, 0) + 1
                    region_rows.append(row)
            if len(task_rows) >= BATCH_TASKS:
                _flush(writers, rows)
        _flush(writers, rows)
    finally:
        for writer in writers.values():
            writer.close()
    summary = StoreSummary(
        tasks=counts["tasks"], annotations=counts["annotations"], predictions=counts["predictions"],
        regions=counts["regions"], max_updated_at=max_updated_at, content_digest=task_hashes.hexdigest(),
        labels=dict(sorted(labels.items())),
    )
    document = {**manifest, "task_count": summary.tasks, "annotation_count": summary.annotations,
                "prediction_count": summary.predictions, "region_count": summary.regions,
                "max_updated_at": summary.max_updated_at, "content_digest": summary.content_digest}
    (directory / MANIFEST_FILE).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return summary


def read_manifest(directory: Path) -> dict[str, Any]:
    return orjson.loads((directory / MANIFEST_FILE).read_bytes())


def iter_store_tasks(directory: Path) -> Iterator[Task]:
    """Tasks back from the store, in the order they were exported, one batch in memory at a time."""
    parquet = pq.ParquetFile(directory / "tasks.parquet")
    position = 0
    for batch in parquet.iter_batches(batch_size=BATCH_TASKS, columns=["raw_json"]):
        for raw in batch.column(0).to_pylist():
            yield Task.from_dict(orjson.loads(raw), position)
            position += 1


def upserted_tasks(previous: Path, incoming: Iterable[Task], deleted_ids: set[int], changes: StoreChanges) -> Iterator[Task]:
    """The previous store's tasks with `incoming` upserted and `deleted_ids` removed.

    Order is the store's (tasks keep their place; new ones follow by id, as task ids only grow), so
    the result equals a full export of the same project state. Applying the same changes twice gives
    the same store: upserts are idempotent.
    """
    updates = {task.id: task for task in incoming}  # the changed set only: small by design
    parquet = pq.ParquetFile(previous / "tasks.parquet")
    position = 0
    for batch in parquet.iter_batches(batch_size=BATCH_TASKS, columns=["task_id", "content_hash", "raw_json"]):
        task_ids, digests, raws = (batch.column(i).to_pylist() for i in range(3))
        for task_id, digest, raw in zip(task_ids, digests, raws):
            position += 1
            if task_id in deleted_ids:
                changes.deleted += 1
                updates.pop(task_id, None)
                continue
            update = updates.pop(task_id, None)
            if update is None:
                yield Task.from_dict(orjson.loads(raw), position)
                continue
            if content_hash(update) == digest:
                changes.unchanged += 1
            else:
                changes.changed += 1
            yield update
    for task_id in sorted(updates):
        changes.new += 1
        yield updates[task_id]


def _region_row(task: Task, annotation_id: Any, kind: str, region: Any, size: Any) -> tuple:
    """A row of REGIONS_SCHEMA, in its column order."""
    labels = region.labels
    identity = (task.id, annotation_id, kind, None if region.id is None else str(region.id), region.from_name,
                region.to_name, region.type, labels[0] if labels else None, labels)
    try:
        shape = to_shape(region, size)
    except RegionDrop as drop:
        return (*identity, None, None, None, None, None, None, None, None, None, drop.reason)
    box = shape.envelope if shape.points else None
    corners = (box.xmin, box.ymin, box.xmax, box.ymax) if box else (None, None, None, None)
    return (*identity, shape.kind, shape.rotation, [c for p in shape.points for c in p], *corners,
            shape.image.width, shape.image.height, None)


_REGION_LABEL = REGIONS_SCHEMA.names.index("label")


def _flush(writers: dict[str, pq.ParquetWriter], rows: dict[str, list[tuple]]) -> None:
    for name, batch in rows.items():
        if batch:
            schema = TABLES[name]
            columns = zip(*batch)
            arrays = [pa.array(column, type=field.type) for column, field in zip(columns, schema)]
            writers[name].write_table(pa.Table.from_arrays(arrays, schema=schema))
            batch.clear()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
