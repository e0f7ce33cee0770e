"""Bring a project's local copy up to date: snapshot (full or only changed tasks), then the store.

Used by the Dagster assets and by `lsflow export`, so both decide "incremental or full" the same way:
incremental whenever an earlier store of the project exists and a full export was not asked for.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from lsflow import __version__
from lsflow.core.export import FormatResult, export_context, export_datasets
from lsflow.core.publish import publish_directory
from lsflow.core.formats.base import ExportContext
from lsflow.core.incremental import WATERMARK_OVERLAP, deleted_task_ids, watermark
from lsflow.core.label_config import LabelConfig
from lsflow.core.layout import ProjectLayout
from lsflow.core.media_files import MediaLookup
from lsflow.core.model import Task
from lsflow.core.selection import AnnotationPolicy
from lsflow.core.store import (
    MANIFEST_FILE, StoreChanges, StoreSummary, iter_store_tasks, read_manifest, upserted_tasks, write_store,
)
from lsflow.sources.base import TaskSource
from lsflow.sources.export_file import EXPORT_FILE, LABEL_CONFIG_FILE, iter_export_tasks

SNAPSHOT_FILE = "snapshot.json"


@dataclass(frozen=True)
class SnapshotRecord:
    project_id: str
    snapshot_id: str | None
    md5: str | None
    source: str
    task_count: int  # tasks in this snapshot: all of them, or the changed ones
    mode: str  # "full" | "incremental"
    changed_since: str | None = None
    deleted_task_ids: list[int] = field(default_factory=list)

    @classmethod
    def read(cls, layout: ProjectLayout) -> SnapshotRecord:
        return cls(**orjson.loads((layout.snapshot_dir / SNAPSHOT_FILE).read_bytes()))


@contextmanager
def _staging(layout: ProjectLayout, name: str) -> Iterator[Path]:
    """A private folder to build `name` in; gone afterwards, whether it was published or not."""
    directory = layout.staging_dir(name)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def stored_task_ids(store_dir: Path) -> set[int]:
    return set(pq.read_table(store_dir / "tasks.parquet", columns=["task_id"]).column(0).to_pylist())


def take_project_snapshot(source: TaskSource, layout: ProjectLayout, full: bool = False,
                          overlap: timedelta = WATERMARK_OVERLAP) -> SnapshotRecord:
    """Snapshot the project into `layout.snapshot_dir` (published atomically)."""
    since = None
    if not full and (layout.store_dir / MANIFEST_FILE).is_file():
        newest = read_manifest(layout.store_dir).get("max_updated_at")
        since = watermark(newest, overlap) if newest else None
    with _staging(layout, "snapshot") as staging:
        snapshot = source.take_snapshot(layout.project_id, staging, changed_since=since)
        fetched = [task.id for task in iter_export_tasks(snapshot.export_path)]
        deleted: set[int] = set()
        if since is not None:
            known = stored_task_ids(layout.store_dir) | set(fetched)
            deleted = deleted_task_ids(known, source.task_count(layout.project_id),
                                       lambda: source.task_ids(layout.project_id))
        record = SnapshotRecord(
            project_id=snapshot.project_id, snapshot_id=snapshot.snapshot_id, md5=snapshot.md5,
            source=snapshot.source, task_count=len(fetched), mode="full" if since is None else "incremental",
            changed_since=since, deleted_task_ids=sorted(deleted),
        )
        (staging / SNAPSHOT_FILE).write_bytes(orjson.dumps(asdict(record), option=orjson.OPT_INDENT_2))
        publish_directory(staging, layout.snapshot_dir)
    return record


def snapshot_label_config(layout: ProjectLayout) -> LabelConfig | None:
    path = layout.snapshot_dir / LABEL_CONFIG_FILE
    return LabelConfig.from_file(path) if path.is_file() else None


def update_store(layout: ProjectLayout) -> tuple[StoreSummary, StoreChanges, SnapshotRecord]:
    """Fold the latest snapshot into the store: rewrite it (full) or upsert changes and deletions."""
    record = SnapshotRecord.read(layout)
    config = snapshot_label_config(layout)
    changes = StoreChanges()
    tasks = iter_export_tasks(layout.snapshot_dir / EXPORT_FILE)
    if record.mode == "incremental" and (layout.store_dir / MANIFEST_FILE).is_file():
        tasks = upserted_tasks(layout.store_dir, tasks, set(record.deleted_task_ids), changes)
    with _staging(layout, "store") as staging:
        summary = write_store(
            tasks, staging,
            image_key=(config.data_key("image") if config else None) or "image",
            manifest={**asdict(record), "lsflow_version": __version__},
        )
        publish_directory(staging, layout.store_dir)
    if record.mode == "full":
        changes.new = summary.tasks
    return summary, changes, record


def build_datasets(layout: ProjectLayout, formats: list[str], policy: AnnotationPolicy = AnnotationPolicy(),
                   media: MediaLookup | None = None, options: dict[str, str] | None = None,
                   progress: Callable[[Iterator[Task]], Iterable[Task]] | None = None,
                   ) -> tuple[dict[str, FormatResult], ExportContext]:
    """Every format from one pass over the store, published under `layout.datasets_dir`;
    `progress` may wrap the task stream (a progress bar)."""
    context = replace(export_context(snapshot_label_config(layout), lambda: iter_store_tasks(layout.store_dir),
                                     layout.project_id, media=media), options=options or {})
    tasks = iter_store_tasks(layout.store_dir)
    results = export_datasets(progress(tasks) if progress else tasks, formats, layout.datasets_dir, context, policy)
    return results, context
