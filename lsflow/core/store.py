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

from lsflow.core.export import image_reference, known_image_size
from lsflow.core.model import Task
from lsflow.core.shapes import RegionDrop, to_shape

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
    rows: dict[str, list[dict]] = {name: [] for name in TABLES}
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
            size = known_image_size(task)
            rows["tasks"].append({
                "task_id": task.id, "updated_at": task.updated_at, "image_ref": image_reference(task, image_key),
                "image_width": size.width if size else None, "image_height": size.height if size else None,
                "content_hash": digest, "raw_json": orjson.dumps(task.raw),
            })
            counts["tasks"] += 1
            for annotation in task.annotations + task.predictions:
                kind = "prediction" if annotation.is_prediction else "annotation"
                counts["predictions" if annotation.is_prediction else "annotations"] += 1
                raw = annotation.raw
                rows["annotations"].append({
                    "task_id": task.id, "annotation_id": annotation.id, "kind": kind,
                    "was_cancelled": annotation.was_cancelled, "ground_truth": annotation.ground_truth,
                    "completed_by": orjson.dumps(annotation.completed_by).decode(),
                    "created_at": annotation.created_at, "updated_at": annotation.updated_at,
                    "lead_time": _number(raw.get("lead_time")), "model_version": _text(raw.get("model_version")),
                    "score": _number(raw.get("score")), "region_count": len(annotation.regions),
                })
                for region in annotation.regions:
                    counts["regions"] += 1
                    row = _region_row(task, annotation.id, kind, region, size)
                    if row["label"] is not None and kind == "annotation" and not annotation.was_cancelled:
                        labels[row["label"]] = labels.get(row["label"], 0) + 1
                    rows["regions"].append(row)
            if len(rows["tasks"]) >= BATCH_TASKS:
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


def _region_row(task: Task, annotation_id: Any, kind: str, region: Any, size: Any) -> dict:
    row = {
        "task_id": task.id, "annotation_id": annotation_id, "kind": kind,
        "region_id": None if region.id is None else str(region.id), "from_name": region.from_name,
        "to_name": region.to_name, "type": region.type, "label": (region.labels or [None])[0],
        "labels": region.labels, "shape": None, "rotation": None, "points_px": None,
        "xmin": None, "ymin": None, "xmax": None, "ymax": None,
        "image_width": None, "image_height": None, "no_shape_reason": None,
    }
    try:
        shape = to_shape(region, size)
    except RegionDrop as drop:
        row["no_shape_reason"] = drop.reason
        return row
    box = shape.envelope if shape.points else None
    row.update(
        shape=shape.kind, rotation=shape.rotation, points_px=[c for p in shape.points for c in p],
        image_width=shape.image.width, image_height=shape.image.height,
        **({"xmin": box.xmin, "ymin": box.ymin, "xmax": box.xmax, "ymax": box.ymax} if box else {}),
    )
    return row


def _flush(writers: dict[str, pq.ParquetWriter], rows: dict[str, list[dict]]) -> None:
    for name, batch in rows.items():
        if batch:
            writers[name].write_table(pa.Table.from_pylist(batch, schema=TABLES[name]))
            batch.clear()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
