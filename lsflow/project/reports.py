"""Reports over a project's tasks (the prediction review, annotator agreement): computed from the
project's normalized store or from an export file, written into a staging folder, then published in one
move, so a reader never sees half a report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lsflow.core.incremental.store import iter_store_entries
from lsflow.core.model.entries import TaskEntry
from lsflow.core.pipeline.publish import publish_directory, remove_tree
from lsflow.project.layout import ProjectLayout
from lsflow.project.lock import project_lock
from lsflow.sources.export_file import iter_export_entries

Compute = Callable[[Iterator[TaskEntry]], dict[str, Any]]
Write = Callable[[dict[str, Any], Path, str], None]  # (result, folder, title)


def report_of_project(layout: ProjectLayout, compute: Compute, write: Write, destination: Path,
                      name: str) -> dict[str, Any]:
    """`compute` over the project's store, written by `write` into `destination`; the result."""
    with project_lock(layout):
        result = compute(iter_store_entries(layout.store_dir))
        _publish(result, write, destination, layout.staging_dir(name), f"project {layout.project_id}")
    return result


def report_of_export(export_file: Path, out_dir: Path, compute: Compute, write: Write) -> dict[str, Any]:
    """`compute` over a Label Studio JSON export, written by `write` into `out_dir`; the result."""
    result = compute(iter_export_entries(export_file, None))
    _publish(result, write, out_dir, out_dir.parent / f".staging-{out_dir.name}", export_file.name)
    return result


def _publish(result: dict[str, Any], write: Write, destination: Path, staging: Path, title: str) -> None:
    remove_tree(staging)
    staging.mkdir(parents=True)
    try:
        write(result, staging, title)
        destination.parent.mkdir(parents=True, exist_ok=True)
        publish_directory(staging, destination, keep_unchanged=False)
    finally:
        remove_tree(staging)
