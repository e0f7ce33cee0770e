"""Label Studio JSON exports on disk: streamed task by task, and a source of recorded snapshots.

`ExportFileSource` is the offline twin of the live Label Studio source: a folder per project holding
`export.json` (a Label Studio JSON export or snapshot) and `label_config.xml`.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import ijson
import orjson

from lsflow.core.incremental import changed_after
from lsflow.core.model import ExportFormatError, Task
from lsflow.sources.base import ProjectInfo, Snapshot

EXPORT_FILE = "export.json"
LABEL_CONFIG_FILE = "label_config.xml"
_COPY_CHUNK = 1 << 20


def iter_export_tasks(path: Path) -> Iterator[Task]:
    """Tasks of a JSON export one at a time; the file is never held in memory whole."""
    with open(path, "rb") as stream:
        first = _first_significant_byte(stream, path)
        stream.seek(0)
        if first == b"{":  # a single task, as Label Studio's converter also accepts
            items = ijson.items(stream, "", use_float=True)
        elif first == b"[":
            items = ijson.items(stream, "item", use_float=True)
        else:
            raise ExportFormatError(f"{path} is not a Label Studio JSON export (it does not start with '[' or '{{')")
        position, last_id = 0, None
        try:
            for position, raw in enumerate(items):
                task = Task.from_dict(raw, position)
                last_id = task.id
                yield task
        except ijson.JSONError as error:
            after = f"after task {last_id} (item {position})" if last_id is not None else "before the first task"
            raise ExportFormatError(f"{path} is not valid JSON {after}: {error}") from None


def count_tasks(path: Path) -> int:
    return sum(1 for _ in iter_export_tasks(path))


def _first_significant_byte(stream, path: Path) -> bytes:
    while chunk := stream.read(1):
        if not chunk.isspace():
            return chunk
    raise ExportFormatError(f"{path} is empty")


def write_export(tasks: Iterable[dict], destination: Path) -> str:
    """Write tasks as a JSON export, streaming; returns the file's md5."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(destination, "wb") as writer:
        separator = b"["
        for raw in tasks:
            chunk = separator + orjson.dumps(raw)
            digest.update(chunk)
            writer.write(chunk)
            separator = b","
        closing = b"[]" if separator == b"[" else b"]"
        digest.update(closing)
        writer.write(closing)
    return digest.hexdigest()


def copy_with_md5(source: Path, destination: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        while chunk := reader.read(_COPY_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


class ExportFileSource:
    """Projects recorded on disk: `<root>/<project id>/export.json` + `label_config.xml`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def describe(self) -> str:
        return f"files:{self.root}"

    def list_projects(self) -> list[ProjectInfo]:
        projects = []
        for folder in sorted(self.root.iterdir() if self.root.is_dir() else []):
            export = folder / EXPORT_FILE
            if export.is_file():
                projects.append(ProjectInfo(folder.name, folder.name, count_tasks(export), None))
        return projects

    def _export(self, project_id: str) -> Path:
        export = self.root / str(project_id) / EXPORT_FILE
        if not export.is_file():
            known = ", ".join(p.project_id for p in self.list_projects()) or "none"
            raise FileNotFoundError(f"project {project_id}: no {export} (projects on disk: {known})")
        return export

    def task_count(self, project_id: str) -> int:
        return count_tasks(self._export(project_id))

    def task_ids(self, project_id: str) -> list[int]:
        return [task.id for task in iter_export_tasks(self._export(project_id))]

    def take_snapshot(self, project_id: str, destination: Path, changed_since: str | None = None) -> Snapshot:
        export = self._export(project_id)
        folder = export.parent
        destination.mkdir(parents=True, exist_ok=True)
        if changed_since is None:
            md5 = copy_with_md5(export, destination / EXPORT_FILE)
        else:
            changed = (t.raw for t in iter_export_tasks(export) if changed_after(t.updated_at, changed_since))
            md5 = write_export(changed, destination / EXPORT_FILE)
        label_config = None
        if (folder / LABEL_CONFIG_FILE).is_file():
            shutil.copyfile(folder / LABEL_CONFIG_FILE, destination / LABEL_CONFIG_FILE)
            label_config = (folder / LABEL_CONFIG_FILE).read_text(encoding="utf-8")
        return Snapshot(
            project_id=str(project_id),
            export_path=destination / EXPORT_FILE,
            label_config=label_config,
            snapshot_id=f"file-{md5[:12]}",
            md5=md5,
            source=self.describe(),
        )
