"""What every task source gives: the projects it knows and a snapshot of one project on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# A source writes a snapshot into a folder of its own under these names.
EXPORT_FILE = "export.json"
LABEL_CONFIG_FILE = "label_config.xml"


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    project_id: str
    title: str
    task_count: int | None
    # A value that moves whenever the project's tasks change (server's last change), if known.
    changed_at: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A project's export, downloaded into a folder of its own."""

    project_id: str
    export_path: Path
    label_config: str | None
    snapshot_id: str | None
    md5: str | None
    source: str
    # Set by a source that finds deletions while it snapshots (`lists_deletions`): the tasks gone since `store_dir`'s.
    deleted_task_ids: list[int] | None = None
    # What the source counted (e.g. objects listed and read), for the snapshot's record and metadata.
    counts: dict[str, int] = field(default_factory=dict)


class TaskSource(Protocol):
    def describe(self) -> str:
        """Where tasks come from, safe to log (never a secret)."""

    def list_projects(self) -> list[ProjectInfo]: ...

    def take_snapshot(self, project_id: str, destination: Path, changed_since: str | None = None,
                      store_dir: Path | None = None) -> Snapshot:
        """Export the project into `destination`; with `changed_since` (server time), only the tasks
        whose `updated_at` is later. `store_dir` is the project's store, for a source that keeps its
        own record of what was read there (target storage)."""

    def deleted_task_ids(self, project_id: str, known_ids: list[int]) -> set[int]:
        """Which of `known_ids` (tasks the project had) it no longer has."""
