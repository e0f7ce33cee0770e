"""Bring a project's local copy up to date: snapshot (full or only changed tasks), then the store.

Used by the Dagster assets and by `lsflow export`, so both decide "incremental or full" the same way:
incremental whenever an earlier store of the project exists and a full export was not asked for.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from lsflow import __version__
from lsflow.core.pipeline.build import FormatResult
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.core.formats.base import ExportContext
from lsflow.core.incremental.changes import WATERMARK_OVERLAP, watermark
from lsflow.core.model.label_config import LabelConfig
from lsflow.project.layout import ProjectLayout
from lsflow.core.model.media_files import MediaLookup
from lsflow.core.pipeline.parallel import usable_cores
from lsflow.core.pipeline.publish import publish_directory
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.incremental.store import (
    MANIFEST_FILE,
    STORE_VERSION,
    StoreChanges,
    StoreSummary,
    iter_store_entries,
    iter_store_tasks,
    read_manifest,
    upsert_store,
    write_store,
)
from lsflow.core.model.entries import TaskEntry
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
    if not full and _upsertable(layout):
        newest = read_manifest(layout.store_dir).get("max_updated_at")
        since = watermark(newest, overlap) if newest else None
    with _staging(layout, "snapshot") as staging, ThreadPoolExecutor(1) as background:
        # Which stored tasks are gone is asked while the snapshot is made: both wait on the server.
        # Tasks new since the store have larger ids and are in the snapshot, so the store's are the ones to check.
        deletions = None if since is None else background.submit(
            source.deleted_task_ids, layout.project_id, sorted(stored_task_ids(layout.store_dir)))
        snapshot = source.take_snapshot(layout.project_id, staging, changed_since=since)
        fetched = [task.id for task in iter_export_tasks(snapshot.export_path)]
        deleted = set() if deletions is None else deletions.result()
        record = SnapshotRecord(
            project_id=snapshot.project_id, snapshot_id=snapshot.snapshot_id, md5=snapshot.md5,
            source=snapshot.source, task_count=len(fetched), mode="full" if since is None else "incremental",
            changed_since=since, deleted_task_ids=sorted(deleted),
        )
        (staging / SNAPSHOT_FILE).write_bytes(orjson.dumps(asdict(record), option=orjson.OPT_INDENT_2))
        publish_directory(staging, layout.snapshot_dir)
    return record


def _upsertable(layout: ProjectLayout) -> bool:
    """An earlier store of this layout's version exists (a store of another lsflow is built anew)."""
    return (layout.store_dir / MANIFEST_FILE).is_file() and \
        read_manifest(layout.store_dir).get("store_version") == STORE_VERSION


def snapshot_label_config(layout: ProjectLayout) -> LabelConfig | None:
    path = layout.snapshot_dir / LABEL_CONFIG_FILE
    return LabelConfig.from_file(path) if path.is_file() else None


def update_store(layout: ProjectLayout) -> tuple[StoreSummary, StoreChanges, SnapshotRecord]:
    """Fold the latest snapshot into the store: rewrite it (full) or upsert changes and deletions."""
    record = SnapshotRecord.read(layout)
    config = snapshot_label_config(layout)
    image_key = (config.data_key("image") if config else None) or "image"
    manifest = {**asdict(record), "lsflow_version": __version__}
    tasks = iter_export_tasks(layout.snapshot_dir / EXPORT_FILE)
    if record.mode == "incremental" and not _upsertable(layout):
        raise RuntimeError(f"project {layout.project_id}: the snapshot holds only the tasks changed since the last "
                           f"one, but the store they belong to ({layout.store_dir}) is gone; export in full "
                           "(run config `full: true`, or `lsflow export --full`)")
    with _staging(layout, "store") as staging:
        if record.mode == "incremental":
            summary, changes = upsert_store(layout.store_dir, tasks, set(record.deleted_task_ids), staging,
                                            image_key, manifest)
        else:
            summary = write_store(tasks, staging, image_key, manifest)
            changes = StoreChanges(new=summary.tasks)
        publish_directory(staging, layout.store_dir)
    return summary, changes, record


def build_datasets(layout: ProjectLayout, formats: list[str], policy: AnnotationPolicy = AnnotationPolicy(),
                   media: MediaLookup | None = None, options: dict[str, str] | None = None,
                   progress: Callable[[Iterator[TaskEntry]], Iterable[TaskEntry]] | None = None,
                   workers: int | None = None) -> tuple[dict[str, FormatResult], ExportContext]:
    """Every format from one pass over the store, published under `layout.datasets_dir`, reusing the
    output of every task the last build of the same formats already wrote; `progress` may wrap the
    task stream (a progress bar), `workers` writes tasks in that many processes (default: one a core)."""
    context = replace(export_context(snapshot_label_config(layout), lambda: iter_store_tasks(layout.store_dir),
                                     layout.project_id, media=media), options=options or {})
    tasks = iter_store_entries(layout.store_dir)
    results = export_datasets(progress(tasks) if progress else tasks, formats, layout.datasets_dir, context, policy,
                              workers=workers or usable_cores(), reuse_dir=layout.reuse_dir)
    return results, context
