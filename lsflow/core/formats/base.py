"""The writer interface every format implements, and what the export pipeline hands it.

A writer receives tasks one at a time (`write`) and turns each into its share of the dataset: files
of its own (`task_file`: a YOLO label file, a VOC XML, a mask) and records appended to the format's
aggregate files (`append` to a `Stream`: COCO annotations, JSON_MIN records, the drop log). The
pipeline takes that share after each task (`take_output`) and puts it in place, in task order; once
every task is in, `close` assembles what needs all of them (COCO's result.json, the CSV table).
A writer accounts for every region it is given through `self.report`. Checks (`check`) read the
finished directory back, the way a user's training code would.

Because a task's share depends on nothing but the task and the context (for `per_task` writers),
tasks can be written by several processes at once, and an unchanged task's share can be kept from
the previous export instead of being made again. A `media_keyed` writer's share also depends on the
task's media files (`media_references`): it is kept while the task and those files are unchanged.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import orjson

from lsflow.core.compare.consensus import select_annotations
from lsflow.core.formats.accounting import DROPPED_FILE, RegionReport, TaskAccount, TaskSelection
from lsflow.core.geometry.shapes import RegionDrop, Shape, to_shape
from lsflow.core.model.label_config import ClassList, LabelConfig
from lsflow.core.model.media_files import MediaLookup
from lsflow.core.model.selection import AnnotationPolicy, ConsensusAnnotation
from lsflow.core.model.task import Annotation, ImageSize, Region, Task

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def write_file(path: Path | str, data: bytes) -> None:
    """Create `path` holding `data`. Per-task formats create one file per task, and on a virtual disk
    `open()` (a buffered file object, several system calls) costs twice this. A file already there is
    replaced, never written through: it may be a hard link to a published dataset's file."""
    try:
        descriptor = os.open(path, _NEW_FILE, 0o666)
    except FileExistsError:
        os.unlink(path)
        descriptor = os.open(path, _NEW_FILE, 0o666)
    try:
        write_all(descriptor, data)
    finally:
        os.close(descriptor)


def write_all(descriptor: int, data: bytes) -> None:
    """All of `data` into the open file `descriptor` (`os.write` may write only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def file_stem(name: str) -> str:
    """`PurePosixPath(name).stem` of a single path component, without building a path."""
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


@dataclass(frozen=True, slots=True)
class ExportContext:
    """What is known about the project before the first task is written."""

    classes: ClassList
    keypoint_names: tuple[str, ...] = ()
    label_config: LabelConfig | None = None
    project_id: str | None = None
    image_key: str | None = "image"  # the task `data` key holding the image
    media: MediaLookup | None = None  # finds task media on disk (or downloads it), if reachable
    # Writer options by name (`csv_header=false`), as given on the command line; each writer reads the
    # ones it declares in `DatasetWriter.option_help` and rejects values it cannot use.
    options: dict[str, str] = field(default_factory=dict)


def option_choice(context: ExportContext, name: str, choices: tuple[str, ...]) -> str:
    """The value of writer option `name`, one of `choices` (the first when the option is not given);
    any other value is refused with the ones it may take."""
    value = context.options.get(name)
    if value is None:
        return choices[0]
    if value.strip() not in choices:
        raise ValueError(f"option {name}={value!r}: expected {' or '.join(choices)}")
    return value.strip()


@dataclass(frozen=True, slots=True)
class Stream:
    """An aggregate file of a format that every task appends its records to, in task order."""

    file: str  # relative to the format's folder
    header: bytes = b""
    separator: bytes = b""  # between records (JSON arrays: b",\n"); JSON-lines records end in b"\n" instead
    footer: bytes = b""
    # A working file `close` assembles the dataset's own files from; not part of the dataset.
    temporary: bool = False


Span = tuple[int, int]  # (offset, length) of a task's records in a stream file; length 0: none


class TaskOutput(NamedTuple):
    """One format's share of one task: what it appends to each stream, the files it wrote, its account."""

    records: dict[str, bytes]  # stream name → the task's records, joined by the stream's separator
    files: list[str]  # relative paths of the task's own files
    account: TaskAccount


@dataclass(slots=True)
class TaskItem:
    """One task as the writers see it: the annotations chosen for export and its image."""

    task: Task
    annotations: list[Annotation]
    image_ref: str | None  # the task's media reference as stored in `data`
    file_name: str  # collision-free image file name inside the dataset
    image_size: ImageSize | None  # from the regions, or read from the image header
    # The regions a consensus left unmerged, with the reason: every format drops them (`write_task`).
    unmerged: tuple[tuple[Annotation, Region, str], ...] = ()
    # What several writers derive from the task alike (pixel shapes, per-annotation records),
    # computed by the first writer that asks and dropped with the item.
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def select(cls, task: Task, policy: AnnotationPolicy, image_ref: str | None, file_name: str,
               image_size: ImageSize | None) -> tuple[TaskItem, TaskSelection]:
        """The task with the annotations `policy` chooses, and what was chosen and left out. A consensus's
        regions without quorum count as regions in: `write_task` reports them dropped in every format."""
        chosen, skipped = select_annotations(task, policy, image_size)
        unmerged = tuple([unplaced for a in chosen if isinstance(a, ConsensusAnnotation) for unplaced in a.unmerged])
        selection = TaskSelection(len(chosen), tuple([reason for _, reason in skipped]),
                                  sum([len(a.regions) for a in chosen]) + len(unmerged))
        return cls(task, chosen, image_ref, file_name, image_size, unmerged), selection

    def pixel_shapes(self) -> list[tuple[Annotation, Region, Shape | str]]:
        """Every region of the chosen annotations with its pixel shape, or the reason it has none."""
        shapes = self.memo.get("shapes")
        if shapes is None:
            shapes = self.memo["shapes"] = []
            for annotation in self.annotations:
                for region in annotation.regions:
                    try:
                        shapes.append((annotation, region, to_shape(region, self.image_size)))
                    except RegionDrop as drop:
                        shapes.append((annotation, region, drop.reason))
        return shapes


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    description: str
    blocking: bool = True  # a failure makes the dataset unusable, so downstream must not run


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


class DatasetWriter(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    checks: ClassVar[tuple[CheckSpec, ...]] = ()
    # True when the writer reads every task's media file (copies images, measures audio): the CLI and
    # the Dagster asset then fetch all media concurrently before the single pass over the tasks.
    reads_media: ClassVar[bool] = False
    # True when a task's output depends on nothing but the task and the export context: tasks may
    # then be written by several processes (and in shards), and an unchanged task's output reused by
    # the next export. Writers that number across tasks, batch tasks into files or read media are not.
    per_task: ClassVar[bool] = True
    # True (with per_task False) when a task's output depends on the task, the context and the files
    # of the task's `media_references` alone: an unchanged task's output is reused while each of those
    # files has the size and mtime it had when the output was made. Written in this process only.
    media_keyed: ClassVar[bool] = False
    # The format's aggregate files, by the name `append` knows them; every format has the drop log.
    streams: ClassVar[dict[str, Stream]] = {"dropped": Stream(DROPPED_FILE)}
    # The options this writer reads from `context.options`: name → what it does (shown by the CLI).
    option_help: ClassVar[dict[str, str]] = {}
    # The format applies to a project whose label config has one of these object tags and one of
    # these control tags (empty: any) — the formats Label Studio offers for a labeling config.
    object_tags: ClassVar[frozenset[str]] = frozenset()
    control_tags: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def not_applicable(cls, config: LabelConfig | None) -> str | None:
        """Why this format cannot hold anything of a project with this config; None if it can.
        Without a config nothing is known, so every format applies."""
        if config is None:
            return None
        for wanted, present, kind in ((cls.object_tags, config.objects, "object"),
                                      (cls.control_tags, config.controls, "control")):
            if wanted and not any(tag.tag in wanted for tag in present):
                names = "/".join(sorted(wanted))
                return f"{cls.name} needs a label config with a <{names}> {kind} tag"
        return None

    @classmethod
    def media_references(cls, data: dict[str, Any], context: ExportContext) -> tuple[str, ...]:
        """The references, in a task's `data`, of every media file a `media_keyed` writer reads for it."""
        return ()

    def __init__(self, out_dir: Path, context: ExportContext, report: RegionReport):
        self.out_dir = out_dir
        self.context = context
        self.report = report
        # The newest task change seen, written as the dataset's date: the same snapshot always
        # gives the same bytes (a wall-clock date would not).
        self.dataset_date = ""
        self._records: dict[str, list[bytes]] = {}  # this task's, by stream
        self._files: list[str] = []
        self._folders: set[str] = set()
        self._class_ids = context.classes.ids

    def prepare(self) -> None:
        """Create the folders of an empty dataset, once (the processes writing tasks share them)."""

    @abstractmethod
    def write(self, item: TaskItem) -> None:
        """Turn one task into its share of the dataset (`append`, `task_file`, `self.report`)."""

    def close(self) -> None:
        """Write what needs every task (aggregate files), from the streams, once all tasks are in."""

    def append(self, stream: str, record: bytes) -> None:
        records = self._records.get(stream)
        if records is None:
            self._records[stream] = [record]
        else:
            records.append(record)

    def task_file(self, relative: str, data: bytes) -> None:
        """A file of this task's own, e.g. `labels/train/<stem>.txt`."""
        folder = relative.rpartition("/")[0]
        if folder and folder not in self._folders:
            os.makedirs(self.out_dir / folder, exist_ok=True)
            self._folders.add(folder)
        write_file(f"{self.out_dir}/{relative}", data)
        self._files.append(relative)

    def take_output(self, selection: TaskSelection) -> TaskOutput:
        """The task just written, as the pipeline puts it in place; the writer is ready for the next."""
        # Joined in place: each stream's list of records becomes its bytes (what TaskOutput holds).
        records: dict[str, Any] = self._records
        for name, pending in records.items():
            records[name] = pending[0] if len(pending) == 1 else self.streams[name].separator.join(pending)
        files, self._files, self._records = self._files, [], {}
        return TaskOutput(records, files, self.report.take_task(selection))

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        """Read the published dataset back and judge it; one outcome per entry of `checks`."""
        return []

    # Helpers shared by the vision writers.

    def shapes(self, item: TaskItem) -> Iterable[tuple[Annotation, Shape]]:
        """Every region of the chosen annotations as a pixel shape; the rest dropped with a reason."""
        memo = item.memo
        if "placed" not in memo:
            shapes = item.pixel_shapes()
            # When every region has a shape (most tasks), the vision writers share one list of them.
            memo["placed"] = (None if any(isinstance(shape, str) for _, _, shape in shapes)
                              else [(annotation, shape) for annotation, _, shape in shapes])
        placed: list[tuple[Annotation, Shape]] | None = memo["placed"]
        return placed if placed is not None else self._shapes_and_drops(item)

    def _shapes_and_drops(self, item: TaskItem) -> Iterator[tuple[Annotation, Shape]]:
        for annotation, region, shape in item.pixel_shapes():
            if isinstance(shape, str):  # each drop reported in its place among the shapes
                self.drop(item, annotation, region, shape)
            else:
                yield annotation, shape

    def class_id(self, item: TaskItem, annotation: Annotation, region: Region) -> tuple[int, str] | None:
        """(class id, name) of the region's first label, or None after reporting the drop."""
        labels = region.labels
        if not labels:
            self.drop(item, annotation, region, "region has no label")
            return None
        name = labels[0]
        class_id = self._class_ids.get(name)
        if class_id is None:
            self.drop(item, annotation, region, f"label '{name}' is not a class of the label config")
            return None
        return class_id, name

    def drop(self, item: TaskItem, annotation: Annotation, region: Region, reason: str) -> None:
        self.report.drop(reason)
        self.append("dropped", orjson.dumps(
            {"task": item.task.id, "annotation": annotation.id, "region": region.id, "reason": reason}) + b"\n")
