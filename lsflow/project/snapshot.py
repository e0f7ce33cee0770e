"""Taking a project's snapshot: every task the first time, then only the tasks changed since.

The CLI (`lsflow export`) and the Dagster asset decide "incremental or full" the same way, here:
incremental whenever an earlier store of the project exists and a full export was not asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from lsflow.core.incremental.changes import WATERMARK_OVERLAP, watermark
from lsflow.core.incremental.store import MANIFEST_FILE, STORE_VERSION, read_manifest
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.pipeline.publish import publish_directory, remove_tree
from lsflow.project.layout import ProjectLayout
from lsflow.project.lock import project_lock
from lsflow.sources.base import TaskSource
from lsflow.sources.export_file import iter_export_tasks


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
    counts: dict[str, int] = field(default_factory=dict)  # the source's own (target storage: objects read, ...)

    @classmethod
    def read(cls, layout: ProjectLayout) -> SnapshotRecord:
        return cls(**orjson.loads(layout.snapshot_record.read_bytes()))


@contextmanager
def staging(layout: ProjectLayout, name: str) -> Iterator[Path]:
    """A private folder to build `name` in; gone afterwards, whether it was published or not."""
    directory = layout.staging_dir(name)
    remove_tree(directory)
    directory.mkdir(parents=True)
    try:
        yield directory
    finally:
        remove_tree(directory)


def stored_task_ids(store_dir: Path) -> set[int]:
    ids = pq.ParquetFile(store_dir / "tasks.parquet", pre_buffer=False).read(columns=["task_id"], use_threads=False)
    return set(ids.column(0).to_pylist())


def take_project_snapshot(source: TaskSource, layout: ProjectLayout, full: bool = False,
                          overlap: timedelta = WATERMARK_OVERLAP) -> SnapshotRecord:
    """Snapshot the project into `layout.snapshot_dir` (published atomically), holding the project's lock."""
    with project_lock(layout):
        since = None
        if not full and store_is_upsertable(layout):
            newest = read_manifest(layout.store_dir).get("max_updated_at")
            since = watermark(newest, overlap) if newest else None
        with staging(layout, "snapshot") as folder, ThreadPoolExecutor(1) as background:
            # Which stored tasks are gone is asked while the snapshot is made: both wait on the server.
            # Tasks new since the store have larger ids and are in the snapshot, so the store's are the ones to check.
            # A source that lists its deletions itself (target storage) reports them with the snapshot.
            deletions = None if since is None or getattr(source, "lists_deletions", False) else background.submit(
                source.deleted_task_ids, layout.project_id, sorted(stored_task_ids(layout.store_dir)))
            snapshot = source.take_snapshot(layout.project_id, folder, changed_since=since, store_dir=layout.store_dir)
            fetched = [task.id for task in iter_export_tasks(snapshot.export_path)]
            deleted = set(snapshot.deleted_task_ids or ()) if deletions is None else deletions.result()
            record = SnapshotRecord(
                project_id=snapshot.project_id, snapshot_id=snapshot.snapshot_id, md5=snapshot.md5,
                source=snapshot.source, task_count=len(fetched), mode="full" if since is None else "incremental",
                changed_since=since, deleted_task_ids=sorted(deleted), counts=snapshot.counts,
            )
            (folder / layout.snapshot_record.name).write_bytes(orjson.dumps(asdict(record), option=orjson.OPT_INDENT_2))
            publish_directory(folder, layout.snapshot_dir)
        return record


def store_is_upsertable(layout: ProjectLayout) -> bool:
    """An earlier store of this layout's version exists (a store of another lsflow is built anew)."""
    return (layout.store_dir / MANIFEST_FILE).is_file() and \
        read_manifest(layout.store_dir).get("store_version") == STORE_VERSION


def snapshot_label_config(layout: ProjectLayout) -> LabelConfig | None:
    path = layout.snapshot_label_config
    return LabelConfig.from_file(path) if path.is_file() else None
