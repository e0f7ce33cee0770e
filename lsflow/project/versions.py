"""Dataset versions of a project: what each holds (its manifest), how two differ, which annotations
trained a model, and which versions are kept.

Each format of a project is published as immutable versions (`lsflow.core.pipeline.versions`):

    project-<id>/versions/<FORMAT>/<version id>/   the dataset files, and its description:
        lsflow_version.json            project, server URL (never a token), snapshot id and md5, label config
                                       digest, lsflow version, format options, annotation policy, changes
        lsflow_version_tasks.parquet   per task: id, split, content hash, image reference, labels, and each
                                       exported annotation's id, annotator, updated_at, ground-truth flag
        lsflow_version_files.parquet   per dataset file: path, sha256, size
        README.md, lsflow_card/        the dataset card
    project-<id>/datasets/<FORMAT>  →  the newest version (a symlink)
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lsflow import __version__
from lsflow.core.compare.consensus import select_annotations
from lsflow.core.formats import writer_class
from lsflow.core.formats.shared.ultralytics import UltralyticsWriter, split_of
from lsflow.core.incremental.store import read_manifest
from lsflow.core.model.media_files import MediaLookup
from lsflow.core.model.selection import AnnotationPolicy, contributing
from lsflow.core.model.task import Annotation, Task
from lsflow.core.pipeline.versions import (
    MANIFEST_FILE,
    TASKS_FILE,
    Describe,
    FilesSummary,
    apply_retention,
    current_version,
    file_sha256,
    read_pins,
    set_pinned,
)
from lsflow.project.layout import ProjectLayout

KEEP_VERSIONS = 10  # retention's default: the newest versions kept besides pinned ones
ANNOTATION_TYPE = pa.struct([("id", pa.int64()), ("annotator", pa.string()), ("updated_at", pa.string()),
                             ("ground_truth", pa.bool_())])
TASKS_SCHEMA = pa.schema([
    ("task_id", pa.int64()), ("split", pa.string()), ("content_hash", pa.string()), ("image_ref", pa.string()),
    ("updated_at", pa.string()), ("labels", pa.list_(pa.string())), ("annotations", pa.list_(ANNOTATION_TYPE)),
])


# In a version's manifest: the sha256 of the build's lineage file, the version's tasks without their splits
# (equal digests: equal lineage, so the next build's change counts against either are the same).
LINEAGE_DIGEST = "lineage_sha256"


def _manifest_of(version_dir: Path) -> dict:
    try:
        return orjson.loads((version_dir / MANIFEST_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


def _read_table(path: Path) -> pa.Table:
    """A Parquet file read whole through ParquetFile: `pq.read_table` goes through pyarrow.dataset, whose
    import alone is ~50 MB of the step's memory."""
    return pq.ParquetFile(path, pre_buffer=False).read(use_threads=False)


class VersionNotFound(ValueError):
    pass


@dataclass(frozen=True)
class BuildFacts:
    """What every version of one build says about where it came from."""

    project_id: str
    label_studio_url: str | None
    snapshot_id: str | None
    snapshot_md5: str | None
    label_config_sha256: str | None
    annotation_policy: str
    options: dict[str, str]


def build_facts(layout: ProjectLayout, policy: AnnotationPolicy, options: dict[str, str] | None,
                label_studio_url: str | None) -> BuildFacts:
    manifest = read_manifest(layout.store_dir)
    config = layout.snapshot_label_config
    return BuildFacts(
        project_id=layout.project_id, label_studio_url=label_studio_url,
        snapshot_id=manifest.get("snapshot_id"), snapshot_md5=manifest.get("md5"),
        label_config_sha256=hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
        annotation_policy=str(policy), options=dict(sorted((options or {}).items())),
    )


def annotator_of(completed_by: Any) -> str | None:
    """The annotator as a person reads it: the email when the export has it, else the user id."""
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id"))
    return None if completed_by is None else str(completed_by)


_LINEAGE_BATCH = 4096  # tasks (and annotation, region rows) read at a time: memory stays flat (16 384 took ~40 MB more)


class _RowsByTask:
    """Rows of a store table grouped by task, in the tasks' order (as the store writes them), read a
    batch at a time: `take(task_id)` is the next task's rows."""

    def __init__(self, path: Path, columns: list[str], keep: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None):
        self._batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=_LINEAGE_BATCH, columns=columns)
        self._keep = keep
        self._rows: list[tuple] = []
        self._next = 0

    def take(self, task_id: int) -> list[tuple]:
        found: list[tuple] = []
        while True:
            if self._next == len(self._rows) and not self._fill():
                return found
            row = self._rows[self._next]
            if row[0] != task_id:
                return found
            found.append(row)
            self._next += 1

    def _fill(self) -> bool:
        for batch in self._batches:
            if self._keep is not None:
                batch = self._keep(batch)
            if batch.num_rows:
                self._rows, self._next = list(zip(*(column.to_pylist() for column in batch.columns))), 0
                return True
        return False

    def exhausted(self) -> bool:
        return self._next == len(self._rows) and not self._fill()


def _classed_regions(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Labelled regions of annotations (boxes, polygons, masks, spans, …): (task, annotation, first label).
    Keypoints name parts and choices are not regions."""
    types = batch.column("type")
    keep = pc.and_(pc.and_(pc.equal(batch.column("kind"), "annotation"), pc.ends_with(types, "labels")),
                   pc.and_(pc.not_equal(types, "keypointlabels"),
                           pc.greater(pc.list_value_length(batch.column("labels")), 0)))
    chosen = batch.filter(keep)
    return pa.record_batch([chosen.column("task_id"), chosen.column("annotation_id"),
                            pc.list_element(chosen.column("labels"), 0)], names=["task_id", "annotation_id", "label"])


def task_lineage(store_dir: Path, policy: AnnotationPolicy) -> pa.Table:
    """Per task of the store: its content hash, media, and the annotations the policy exports (no split)."""
    batches = list(_lineage_batches(store_dir, policy))
    return pa.concat_tables(batches).combine_chunks() if batches else TASKS_SCHEMA.empty_table()


def lineage_file(store_dir: Path, policy: AnnotationPolicy, path: Path) -> Path:
    """`task_lineage` written to the Parquet file `path` a batch at a time, for `describer`: a million-task
    project's table (about 230 bytes a task) is never in memory whole."""
    with pq.ParquetWriter(path, TASKS_SCHEMA) as writer:
        for batch in _lineage_batches(store_dir, policy):
            writer.write_table(batch)
    return path


def _lineage_batches(store_dir: Path, policy: AnnotationPolicy) -> Iterator[pa.Table]:
    """`task_lineage`'s rows, a batch of tasks at a time, with their annotation and region rows read beside
    them (the store keeps a task's rows together, in task order): a million-task store never becomes
    Python objects at once."""
    tasks = pq.ParquetFile(store_dir / "tasks.parquet", pre_buffer=False)
    annotations = _RowsByTask(store_dir / "annotations.parquet", [
        "task_id", "annotation_id", "kind", "was_cancelled", "ground_truth", "completed_by", "created_at", "updated_at"])
    regions = _RowsByTask(store_dir / "regions.parquet", ["task_id", "annotation_id", "kind", "type", "labels"],
                          _classed_regions)
    for batch in tasks.iter_batches(batch_size=_LINEAGE_BATCH,
                                    columns=["task_id", "content_hash", "image_ref", "updated_at"]):
        rows: dict[str, list] = {name: [] for name in TASKS_SCHEMA.names}
        for task_id, content_hash, image_ref, updated_at in zip(*(c.to_pylist() for c in batch.columns)):
            chosen_from = [Annotation(annotation_id, False, bool(cancelled), bool(ground_truth),
                                      orjson.loads(completed_by) if completed_by else None, created_at,
                                      annotation_updated, (), {})
                           for _, annotation_id, kind, cancelled, ground_truth, completed_by, created_at,
                           annotation_updated in annotations.take(task_id) if kind == "annotation"]
            labels: dict[int, list[str]] = {}
            for _, annotation_id, label in regions.take(task_id):
                labels.setdefault(annotation_id, []).append(label)
            chosen, _ = select_annotations(Task(task_id, {}, tuple(chosen_from), (), updated_at, {}), policy)
            chosen = contributing(chosen)  # a consensus's lineage is every annotation merged into it
            rows["task_id"].append(task_id)
            rows["split"].append(None)
            rows["content_hash"].append(content_hash)
            rows["image_ref"].append(image_ref)
            rows["updated_at"].append(updated_at)
            rows["labels"].append([label for a in chosen if a.id is not None for label in labels.get(a.id, ())])
            rows["annotations"].append([{"id": a.id, "annotator": annotator_of(a.completed_by),
                                         "updated_at": a.updated_at, "ground_truth": a.ground_truth} for a in chosen])
        yield pa.table(rows, schema=TASKS_SCHEMA)
    if not (annotations.exhausted() and regions.exhausted()):
        raise ValueError(f"{store_dir}: annotation or region rows are not grouped in the order of the tasks")


def splits_tasks(format_name: str) -> bool:
    """The format puts each task in a split (the YOLO family)."""
    return issubclass(writer_class(format_name), UltralyticsWriter)


def with_splits(tasks: pa.Table, format_name: str) -> pa.Table:
    """The tasks with the split each lands in, for the formats that split (the YOLO family)."""
    if not splits_tasks(format_name):
        return tasks
    splits = pa.array([split_of(task_id) for task_id in tasks.column("task_id").to_pylist()], type=pa.string())
    return tasks.set_column(tasks.schema.get_field_index("split"), "split", splits)


def _lineage_tables(tasks: pa.Table | Path) -> Iterator[pa.Table]:
    """A lineage table (or the Parquet file `lineage_file` wrote) a batch of tasks at a time."""
    if isinstance(tasks, pa.Table):
        for batch in tasks.to_batches(max_chunksize=_LINEAGE_BATCH):
            yield pa.Table.from_batches([batch], schema=TASKS_SCHEMA)
        return
    for batch in pq.ParquetFile(tasks, pre_buffer=False).iter_batches(batch_size=_LINEAGE_BATCH):
        yield pa.Table.from_batches([batch]).cast(TASKS_SCHEMA)


def describer(versions_root: Path, facts: BuildFacts, tasks: Callable[[], pa.Table | Path], media: MediaLookup | None,
              write_card: Callable[[Path, dict, pa.Table | Path, MediaLookup | None], None] | None,
              ) -> Callable[[str], Describe]:
    """Per format, what writes a new version's manifest, task table and card into its folder. `tasks` gives
    the lineage (a table, or better the file `lineage_file` wrote) when the first version is described,
    after the export pass: the processes the pass forks do not start with it in their memory. The version's
    task table is written, compared with the previous one and summed up for the card a batch at a time."""

    # Every format's version of one build has the same lineage (its task table without splits), and the formats'
    # previous versions mostly had the same one too: the change counts are walked once per previous lineage.
    counts_since: dict[str, dict[str, int]] = {}  # previous version's LINEAGE_DIGEST → change counts

    @cache
    def lineage_digest() -> str | None:
        lineage = tasks()
        return file_sha256(lineage) if isinstance(lineage, Path) else None

    def for_format(format_name: str) -> Describe:
        def describe(folder: Path, version: str, previous: str | None, files: FilesSummary) -> None:
            format_tasks = folder / TASKS_FILE
            lineage = tasks()
            if isinstance(lineage, Path) and not splits_tasks(format_name):
                shutil.copyfile(lineage, format_tasks)  # the very table (copy_file_range: no rewrite)
            else:
                with pq.ParquetWriter(format_tasks, TASKS_SCHEMA) as writer:
                    for table in _lineage_tables(lineage):
                        writer.write_table(with_splits(table, format_name))
            changes = None
            previous_dir = versions_root / format_name / (previous or "")
            if previous is not None and (previous_dir / TASKS_FILE).is_file():
                since = _manifest_of(previous_dir).get(LINEAGE_DIGEST)
                changes = counts_since.get(since) if since else None
                if changes is None:
                    changes = diff_counts(previous_dir / TASKS_FILE, format_tasks)
                    if since:
                        counts_since[since] = changes
            report = orjson.loads((folder / "lsflow_report.json").read_bytes())
            manifest = {
                "version": version, "format": format_name, "created_at": datetime.now(UTC).isoformat(),
                "previous_version": previous, "project_id": facts.project_id,
                "label_studio_url": facts.label_studio_url,
                "snapshot": {"id": facts.snapshot_id, "md5": facts.snapshot_md5},
                "label_config_sha256": facts.label_config_sha256, "lsflow_version": __version__,
                "options": facts.options, "annotation_policy": facts.annotation_policy,
                "tasks": report["tasks"], "regions_written": report["regions_written"],
                "regions_dropped": report["regions_dropped"], "files": files.files,
                "bytes": files.bytes, "changes": changes, LINEAGE_DIGEST: lineage_digest(),
            }
            if write_card is not None:
                write_card(folder, manifest, format_tasks, media)
            (folder / MANIFEST_FILE).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))

        return describe

    return for_format


# --- reading versions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    version: str
    path: Path
    manifest: dict
    current: bool
    pinned: bool


def list_versions(layout: ProjectLayout, format_name: str) -> list[VersionInfo]:
    """The format's versions, newest first."""
    root = layout.versions_dir(format_name)
    if not root.is_dir():
        return []
    current, pins = current_version(layout.dataset_dir(format_name)), read_pins(root)
    found = []
    for folder in root.iterdir():
        manifest_file = folder / MANIFEST_FILE
        if folder.name.startswith(".") or not manifest_file.is_file():
            continue
        manifest = orjson.loads(manifest_file.read_bytes())
        found.append(VersionInfo(folder.name, folder, manifest, folder.name == current, folder.name in pins))
    return sorted(found, key=lambda info: info.manifest.get("created_at", ""), reverse=True)


def find_version(layout: ProjectLayout, format_name: str, wanted: str) -> VersionInfo:
    """A version by id or unique id prefix, or `current`."""
    versions = list_versions(layout, format_name)
    matches = [v for v in versions if (v.current if wanted == "current" else v.version.startswith(wanted))]
    if len(matches) != 1:
        known = ", ".join(v.version for v in versions[:10]) or "none"
        why = "matches several versions" if matches else "is not a version of it"
        raise VersionNotFound(f"project {layout.project_id} {format_name}: '{wanted}' {why} (versions: {known})")
    return matches[0]


def read_tasks(version: VersionInfo) -> pa.Table:
    return _read_table(version.path / TASKS_FILE)


@dataclass
class AnnotationChange:
    task_id: int
    annotation_id: int
    annotator: str | None
    updated_at: str | None


@dataclass
class VersionDiff:
    tasks_added: list[int] = field(default_factory=list)
    tasks_removed: list[int] = field(default_factory=list)
    tasks_changed: list[int] = field(default_factory=list)
    annotations_added: list[AnnotationChange] = field(default_factory=list)
    annotations_removed: list[AnnotationChange] = field(default_factory=list)
    annotations_edited: list[AnnotationChange] = field(default_factory=list)
    classes_before: dict[str, dict[str, int]] = field(default_factory=dict)  # split → class → regions
    classes_after: dict[str, dict[str, int]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in (
            "tasks_added", "tasks_removed", "tasks_changed", "annotations_added", "annotations_removed",
            "annotations_edited")}

    def as_dict(self) -> dict[str, Any]:
        def changes(items: list[AnnotationChange]) -> list[dict]:
            return [vars(item) for item in items]

        return {"counts": self.counts(), "tasks_added": self.tasks_added, "tasks_removed": self.tasks_removed,
                "tasks_changed": self.tasks_changed, "annotations_added": changes(self.annotations_added),
                "annotations_removed": changes(self.annotations_removed),
                "annotations_edited": changes(self.annotations_edited),
                "classes_before": self.classes_before, "classes_after": self.classes_after}


def class_counts(tasks: pa.Table) -> dict[str, dict[str, int]]:
    """split ("all" for formats without splits) → class → regions."""
    counts: dict[str, Counter[str]] = {}
    for split, labels in zip(tasks.column("split").to_pylist(), tasks.column("labels").to_pylist()):
        counts.setdefault(split or "all", Counter()).update(labels or ())
    return {split: dict(sorted(counter.items())) for split, counter in sorted(counts.items())}


def diff_tables(before: pa.Table, after: pa.Table) -> VersionDiff:
    old = {row["task_id"]: row for row in before.to_pylist()}
    new = {row["task_id"]: row for row in after.to_pylist()}
    diff = VersionDiff(classes_before=class_counts(before), classes_after=class_counts(after))
    diff.tasks_added = sorted(set(new) - set(old))
    diff.tasks_removed = sorted(set(old) - set(new))
    diff.tasks_changed = sorted(t for t in set(old) & set(new) if old[t]["content_hash"] != new[t]["content_hash"])
    for task_id in sorted(set(old) | set(new)):
        was = {a["id"]: a for a in (old[task_id]["annotations"] if task_id in old else [])}
        now = {a["id"]: a for a in (new[task_id]["annotations"] if task_id in new else [])}
        for annotation_id in sorted(set(now) - set(was)):
            a = now[annotation_id]
            diff.annotations_added.append(AnnotationChange(task_id, annotation_id, a["annotator"], a["updated_at"]))
        for annotation_id in sorted(set(was) - set(now)):
            a = was[annotation_id]
            diff.annotations_removed.append(AnnotationChange(task_id, annotation_id, a["annotator"], a["updated_at"]))
        for annotation_id in sorted(set(was) & set(now)):
            if was[annotation_id]["updated_at"] != now[annotation_id]["updated_at"]:
                a = now[annotation_id]
                diff.annotations_edited.append(AnnotationChange(task_id, annotation_id, a["annotator"], a["updated_at"]))
    return diff


def _rows_in_id_order(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[int, str, pa.ListScalar]]:
    """(task id, content hash, annotations) a batch at a time; stops with ValueError if ids do not grow. The
    annotations stay Arrow's until they are needed: most tasks of two versions have the same."""
    last = None
    for batch in batches:
        ids, hashes, annotations = batch.columns
        for task_id, content_hash, task_annotations in zip(ids.to_pylist(), hashes.to_pylist(), annotations):
            if last is not None and task_id <= last:
                raise ValueError("task ids not in ascending order")
            last = task_id
            yield task_id, content_hash, task_annotations


def diff_counts(previous_tasks: Path, tasks: pa.Table | Path) -> dict[str, int]:
    """`diff_tables(previous, tasks).counts()`, walking both task tables side by side in id order a batch at
    a time (a million-task version's table is never turned into Python rows at once)."""
    columns = ["task_id", "content_hash", "annotations"]

    def batches(table: pa.Table | Path) -> Iterator[pa.RecordBatch]:
        if isinstance(table, pa.Table):
            return iter(table.select(columns).to_batches(max_chunksize=_LINEAGE_BATCH))
        return pq.ParquetFile(table, pre_buffer=False).iter_batches(batch_size=_LINEAGE_BATCH, columns=columns)

    try:
        return _walk_counts(_rows_in_id_order(batches(previous_tasks)), _rows_in_id_order(batches(tasks)))
    except ValueError:  # not in id order (a store of unsorted ids): compared whole
        return diff_tables(_read_table(previous_tasks),
                           tasks if isinstance(tasks, pa.Table) else _read_table(tasks)).counts()


def _walk_counts(old_rows: Iterator[tuple[int, str, pa.ListScalar]],
                 new_rows: Iterator[tuple[int, str, pa.ListScalar]]) -> dict[str, int]:
    counts = dict.fromkeys(("tasks_added", "tasks_removed", "tasks_changed", "annotations_added",
                            "annotations_removed", "annotations_edited"), 0)
    old, new = next(old_rows, None), next(new_rows, None)
    while old is not None or new is not None:
        if new is None or (old is not None and old[0] < new[0]):
            counts["tasks_removed"] += 1
            counts["annotations_removed"] += len({a["id"] for a in old[2].as_py()})  # type: ignore[index]
            old = next(old_rows, None)
        elif old is None or new[0] < old[0]:
            counts["tasks_added"] += 1
            counts["annotations_added"] += len({a["id"] for a in new[2].as_py()})
            new = next(new_rows, None)
        elif old[1] == new[1] and old[2].equals(new[2]):  # the same task, the same annotations: nothing to count
            old, new = next(old_rows, None), next(new_rows, None)
        else:
            counts["tasks_changed"] += old[1] != new[1]
            was = {a["id"]: a["updated_at"] for a in old[2].as_py()}
            now = {a["id"]: a["updated_at"] for a in new[2].as_py()}
            counts["annotations_added"] += len(now.keys() - was.keys())
            counts["annotations_removed"] += len(was.keys() - now.keys())
            counts["annotations_edited"] += sum(1 for a in now.keys() & was.keys() if was[a] != now[a])
            old, new = next(old_rows, None), next(new_rows, None)
    return counts


def diff_versions(layout: ProjectLayout, format_name: str, first: str, second: str) -> VersionDiff:
    return diff_tables(read_tasks(find_version(layout, format_name, first)),
                       read_tasks(find_version(layout, format_name, second)))


def lineage(layout: ProjectLayout, format_name: str, version: str, task_id: int | None = None) -> list[dict]:
    """The annotations a version holds, task by task: (task, annotation, annotator, updated_at, ground truth)."""
    tasks = read_tasks(find_version(layout, format_name, version))
    rows = []
    for row in tasks.to_pylist():
        if task_id is not None and row["task_id"] != task_id:
            continue
        for annotation in row["annotations"]:
            rows.append({"task_id": row["task_id"], "split": row["split"], "annotation_id": annotation["id"],
                         "annotator": annotation["annotator"], "updated_at": annotation["updated_at"],
                         "ground_truth": annotation["ground_truth"]})
    return rows


def pin(layout: ProjectLayout, format_name: str, version: str, pinned: bool = True) -> VersionInfo:
    found = find_version(layout, format_name, version)
    set_pinned(layout.versions_dir(format_name), found.version, pinned)
    return found


def retain(layout: ProjectLayout, format_name: str, keep: int = KEEP_VERSIONS) -> list[str]:
    """Remove the versions beyond the newest `keep`, never a pinned one or the current one."""
    newest_first = [v.version for v in list_versions(layout, format_name)]
    return apply_retention(layout.versions_dir(format_name), layout.dataset_dir(format_name), keep, newest_first)
