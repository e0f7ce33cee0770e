"""Updating a project's normalized store from its latest snapshot."""

from __future__ import annotations

import shutil
from dataclasses import asdict

from lsflow import __version__
from lsflow.core.incremental.store import StoreChanges, StoreSummary, upsert_store, write_store
from lsflow.core.pipeline.publish import publish_directory
from lsflow.project.layout import ProjectLayout
from lsflow.project.lock import project_lock
from lsflow.project.snapshot import SnapshotRecord, snapshot_label_config, staging, store_is_upsertable
from lsflow.sources.export_file import iter_export_tasks
from lsflow.sources.target_storage import STORAGE_INDEX


def update_store(layout: ProjectLayout) -> tuple[StoreSummary, StoreChanges, SnapshotRecord]:
    """Fold the latest snapshot into the store: rewrite it (full) or upsert changes and deletions."""
    with project_lock(layout):
        record = SnapshotRecord.read(layout)
        config = snapshot_label_config(layout)
        image_key = (config.data_key("image") if config else None) or "image"
        manifest = {**asdict(record), "lsflow_version": __version__}
        tasks = iter_export_tasks(layout.snapshot_export)
        if record.mode == "incremental" and not store_is_upsertable(layout):
            raise RuntimeError(f"project {layout.project_id}: the snapshot holds only the tasks changed since the last "
                               f"one, but the store they belong to ({layout.store_dir}) is gone; export in full "
                               "(run config `full: true`, or `lsflow export --full`)")
        with staging(layout, "store") as folder:
            if record.mode == "incremental":
                summary, changes = upsert_store(layout.store_dir, tasks, set(record.deleted_task_ids), folder,
                                                image_key, manifest)
            else:
                summary = write_store(tasks, folder, image_key, manifest)
                changes = StoreChanges(new=summary.tasks)
            # What target storage's objects the store now holds: kept with it, so they are read again only when changed.
            if (layout.snapshot_dir / STORAGE_INDEX).is_file():
                shutil.copyfile(layout.snapshot_dir / STORAGE_INDEX, folder / STORAGE_INDEX)
            publish_directory(folder, layout.store_dir)
        return summary, changes, record
