"""Label Studio's target (export) storage as a task source: a folder or bucket of per-task or per-annotation
JSON objects, read incrementally.

Label Studio 1.23 writes one of two layouts (docs/target-storage.md): one object per task, the whole task
with all its annotations (`<task id>.json`), or one object per annotation, the annotation with its task
nested (`<annotation id>`). Each object says which it is by its content, so both are read alike.

The listing's ETags (or size and modification time) say which objects changed since the objects the
project's store was built from (`STORAGE_INDEX`, kept in the store): only those are read, plus, in the
per-annotation layout, the other objects of the tasks they belong to. Vanished objects are deletions.
Objects that are not a task or an annotation of this project are reported by key and skipped.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from lsflow.sources.base import EXPORT_FILE, LABEL_CONFIG_FILE, ProjectInfo, Snapshot
from lsflow.sources.export_file import write_export
from lsflow.sources.media_download import object_validator

# The store's record of the objects it was built from; a snapshot carries the new one for the store to keep.
STORAGE_INDEX = "storage_objects.parquet"
# One line per object that could not be read as a task or an annotation of the project: key and reason.
STORAGE_PROBLEMS = "storage_problems.jsonl"
PROJECT_PLACEHOLDER = "{project}"

# Label Studio's storage type → fsspec protocol, and the lsflow extra that installs it.
_PROTOCOLS = {"file": ("file", None), "s3": ("s3", "s3"), "gs": ("gcs", "gcs"), "azure": ("az", "azure")}
_INDEX_SCHEMA = pa.schema([("key", pa.string()), ("fingerprint", pa.string()), ("task_id", pa.int64())])
_READERS = 16  # objects read at once: object stores answer in parallel


class StorageError(RuntimeError):
    pass


@dataclass(frozen=True)
class StorageObject:
    key: str
    fingerprint: str  # changes whenever the object's bytes do


@dataclass
class StorageRead:
    """What one snapshot did with the storage: counted, so "only the changed objects were read" is visible."""

    listed: int = 0
    read: int = 0
    changed: int = 0
    vanished: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)


def fingerprint(info: dict[str, Any]) -> str:
    """The object's validator as the media cache takes it (ETag where the store gives one, else its
    modification time: local files), with its size."""
    return f"{object_validator(info)}|size:{info.get('size')}"


class TargetStorageSource:
    """Target storage at `url`: `file:///exports/{project}`, `s3://bucket/prefix/{project}`, `gs://…`, `azure://…`.

    `{project}` stands for the project id (without it, the URL holds one project's objects, any id).
    `label_config` is the labeling config's file (target storage holds none), `{project}` in its path
    standing for the id; `storage_options` go to fsspec (e.g. `{"endpoint_url": ...}` for MinIO).
    """

    lists_deletions = True  # vanished objects are the deletions: no separate search

    def __init__(self, url: str, label_config: str | Path | None = None,
                 storage_options: dict[str, Any] | None = None, readers: int = _READERS):
        scheme, separator, rest = url.partition("://")
        if not separator or scheme not in _PROTOCOLS:
            raise StorageError(f"target storage URL {url!r}: expected file://, s3://, gs:// or azure:// and a path")
        self.url = url.rstrip("/")
        self.scheme = scheme
        self._root = rest.rstrip("/")
        self.label_config = str(label_config) if label_config else None
        self.storage_options = storage_options or {}
        self.readers = readers
        self._filesystem: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"target-storage:{self.url}"

    @property
    def filesystem(self):
        with self._lock:
            if self._filesystem is None:
                protocol, extra = _PROTOCOLS[self.scheme]
                try:
                    import fsspec

                    # A fresh instance: fsspec's shared ones cache listings, which would hide a change.
                    self._filesystem = fsspec.filesystem(protocol, skip_instance_cache=True, **self.storage_options)
                except ImportError as error:
                    raise StorageError(f"reading {self.scheme}:// needs the optional extra: "
                                       f"pip install 'lsflow[{extra}]' ({error})") from None
            return self._filesystem

    def _prefix(self, project_id: str) -> str:
        return self._root.replace(PROJECT_PLACEHOLDER, str(project_id))

    def list_projects(self) -> list[ProjectInfo]:
        """With `{project}` in the URL: every numeric folder/prefix in its place, with its object count and a
        digest of its objects' fingerprints (which moves whenever an object changes, comes or goes)."""
        if PROJECT_PLACEHOLDER not in self._root:
            raise StorageError(f"{self.url} names no {PROJECT_PLACEHOLDER}: give the project id")
        parent = self._root.partition(PROJECT_PLACEHOLDER)[0].rstrip("/") or "/"
        try:
            names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.filesystem.ls(parent, detail=False)]
        except FileNotFoundError:
            return []
        projects = []
        for name in sorted((n for n in names if n.isdigit()), key=int):
            objects = self._list(name)
            if objects:
                digest = hashlib.sha256("\n".join(f"{o.key} {o.fingerprint}" for o in objects).encode()).hexdigest()
                projects.append(ProjectInfo(name, name, len(objects), digest[:16]))
        return projects

    def _list(self, project_id: str) -> list[StorageObject]:
        prefix = self._prefix(project_id)
        self.filesystem.invalidate_cache(prefix)  # s3fs and others keep listings: each listing is asked afresh
        try:
            found = self.filesystem.find(prefix, detail=True)
        except FileNotFoundError:
            return []
        return sorted((StorageObject(self._relative(name, prefix), fingerprint(info)) for name, info in found.items()
                       if info.get("type", "file") != "directory"), key=lambda o: o.key)

    @staticmethod
    def _relative(name: str, prefix: str) -> str:
        stripped = prefix.lstrip("/")
        name = name.lstrip("/")
        return name[len(stripped):].lstrip("/") if name.startswith(stripped) else name

    def deleted_task_ids(self, project_id: str, known_ids: list[int]) -> set[int]:
        """Tasks none of whose objects is left; `take_snapshot` reports the same without a second listing."""
        present = {task_id for task_id, _, _ in self._read(project_id, [o.key for o in self._list(project_id)],
                                                          StorageRead()).values()}
        return set(known_ids) - present

    def take_snapshot(self, project_id: str, destination: Path, changed_since: str | None = None,
                      store_dir: Path | None = None) -> Snapshot:
        """Read the new and changed objects (all of them without `store_dir`'s index or for a full snapshot)."""
        previous = _read_index(store_dir) if store_dir is not None and changed_since is not None else None
        listing = self._list(project_id)
        if not listing and previous is None:
            raise StorageError(f"project {project_id}: no objects under {self.url.replace(PROJECT_PLACEHOLDER, project_id)}")
        current = {o.key: o.fingerprint for o in listing}
        known = previous or {}
        changed = [key for key, value in current.items() if known.get(key, (None,))[0] != value]
        vanished = [key for key in known if key not in current]
        # A task is rebuilt from all its objects: in the per-annotation layout, its unchanged ones too.
        touched_tasks = {known[key][1] for key in changed + vanished if key in known and known[key][1] is not None}
        read = StorageRead(listed=len(listing), changed=len(changed), vanished=len(vanished))
        contents = self._read(project_id, changed, read)
        for key in changed:
            task_id = contents[key][0] if key in contents else None
            if task_id is not None:
                touched_tasks.add(task_id)
        siblings = [key for key, (_, task_id) in known.items()
                    if task_id in touched_tasks and key in current and key not in changed]
        contents.update(self._read(project_id, siblings, read))

        tasks: dict[int, dict[str, Any]] = {}
        for key in sorted(contents, key=_natural):
            task_id, kind, value = contents[key]
            _merge(tasks, task_id, kind, value)
        index_rows = [(key, current[key], contents[key][0] if key in contents else known.get(key, ("", None))[1])
                      for key in current]
        present_tasks = {task_id for _, _, task_id in index_rows if task_id is not None}
        deleted = {task_id for _, task_id in known.values() if task_id is not None} - present_tasks
        destination.mkdir(parents=True, exist_ok=True)
        md5 = write_export((tasks[t] for t in sorted(tasks)), destination / EXPORT_FILE)
        _write_index(destination / STORAGE_INDEX, index_rows)
        (destination / STORAGE_PROBLEMS).write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in read.problems))
        label_config = None
        if self.label_config:
            label_config = Path(self.label_config.replace(PROJECT_PLACEHOLDER, str(project_id))).read_text(encoding="utf-8")
            (destination / LABEL_CONFIG_FILE).write_text(label_config, encoding="utf-8")
        return Snapshot(project_id=str(project_id), export_path=destination / EXPORT_FILE, label_config=label_config,
                        snapshot_id=f"storage-{md5[:12]}", md5=md5, source=self.describe(),
                        deleted_task_ids=sorted(deleted),
                        counts={"objects_listed": read.listed, "objects_changed": read.changed,
                                "objects_vanished": read.vanished, "objects_read": read.read,
                                "objects_skipped": len(read.problems)})

    def _read(self, project_id: str, keys: list[str], read: StorageRead) -> dict[str, tuple[int, str, dict]]:
        """Each object's task id, kind ("task" | "annotation") and content; problems reported, not raised."""
        prefix = self._prefix(project_id)
        if not keys:
            return {}

        def fetch(key: str) -> tuple[str, bytes | None, str | None]:
            try:
                return key, self.filesystem.cat_file(f"{prefix}/{key}"), None
            except FileNotFoundError:
                return key, None, "vanished while being read"
            except Exception as error:  # each backend raises its own kinds; one object's problem
                return key, None, f"cannot be read ({type(error).__name__}: {error})"

        out: dict[str, tuple[int, str, dict]] = {}
        with ThreadPoolExecutor(self.readers) as pool:
            for key, body, problem in pool.map(fetch, keys):
                read.read += body is not None
                parsed = _parse(body, project_id) if body is not None else (problem or "unreadable")
                if isinstance(parsed, str):
                    read.problems.append({"key": key, "reason": parsed})
                else:
                    out[key] = parsed
        return out


def _parse(body: bytes, project_id: str) -> tuple[int, str, dict] | str:
    """(task id, kind, content) of a task or annotation object of the project, else why not."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return f"not JSON ({error})"
    if not isinstance(value, dict):
        return f"not a task or an annotation: a JSON {type(value).__name__}"
    if "data" in value and isinstance(value.get("id"), int):
        kind, task = "task", value
    elif "result" in value and isinstance(value.get("task"), dict) and isinstance(value["task"].get("id"), int):
        kind, task = "annotation", value["task"]
    else:
        return "not a task (no 'data' and integer 'id') or an annotation (no 'result' and nested 'task')"
    owner = task.get("project", value.get("project"))
    if owner is not None and str(owner) != str(project_id):
        return f"a task of project {owner}, not {project_id}"
    return int(task["id"]), kind, value


def _merge(tasks: dict[int, dict[str, Any]], task_id: int, kind: str, value: dict[str, Any]) -> None:
    """Fold an object into its task: a whole task replaces what is known; an annotation joins its task's list."""
    if kind == "task":
        known = tasks.get(task_id)
        tasks[task_id] = value if known is None else {**value, "annotations": _union(value.get("annotations") or [],
                                                                                      known.get("annotations") or [])}
        return
    annotation = {k: v for k, v in value.items() if k != "task"}
    task = tasks.setdefault(task_id, {**value["task"], "annotations": []})
    task["annotations"] = _union(task.get("annotations") or [], [annotation])


def _union(first: Iterable[dict], second: Iterable[dict]) -> list[dict]:
    by_id = {a.get("id"): a for a in second}
    by_id.update({a.get("id"): a for a in first})
    return sorted(by_id.values(), key=lambda a: (a.get("id") is None, a.get("id") or 0))


def _natural(key: str) -> tuple[int, str]:
    stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
    return (int(stem), key) if stem.isdigit() else (1 << 62, key)


def _read_index(store_dir: Path) -> dict[str, tuple[str, int | None]] | None:
    path = store_dir / STORAGE_INDEX
    if not path.is_file():
        return None
    table = pq.read_table(path)
    return {key: (value, task_id) for key, value, task_id in
            zip(*(table.column(name).to_pylist() for name in ("key", "fingerprint", "task_id")))}


def _write_index(path: Path, rows: list[tuple[str, str, int | None]]) -> None:
    columns = {name: [row[i] for row in rows] for i, name in enumerate(_INDEX_SCHEMA.names)}
    pq.write_table(pa.table(columns, schema=_INDEX_SCHEMA), path)
