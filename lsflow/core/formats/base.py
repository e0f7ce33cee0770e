"""The writer interface every format implements, and what the export pipeline hands it.

A writer receives tasks one at a time (`write`), writes into its own directory, and is closed once
(`close`). It accounts for every region it is given through `self.report`. Checks (`check`) read
the finished directory back, the way a user's training code would.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lsflow.core.label_config import ClassList, LabelConfig
from lsflow.core.media_files import MediaLookup
from lsflow.core.model import Annotation, Region, Task
from lsflow.core.report import RegionReport
from lsflow.core.shapes import ImageSize, RegionDrop, Shape, to_shape


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def write_file(path: Path | str, data: bytes) -> None:
    """Create `path` holding `data`. Per-task formats create one file per task, and on a virtual disk
    `open()` (a buffered file object, several system calls) costs twice this."""
    descriptor = os.open(path, _NEW_FILE, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
    finally:
        os.close(descriptor)


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


@dataclass(slots=True)
class TaskItem:
    """One task as the writers see it: the annotations chosen for export and its image."""

    task: Task
    annotations: list[Annotation]
    image_ref: str | None  # the task's media reference as stored in `data`
    file_name: str  # collision-free image file name inside the dataset
    image_size: ImageSize | None  # from the regions, or read from the image header
    # What several writers derive from the task alike (pixel shapes, per-annotation records),
    # computed by the first writer that asks and dropped with the item.
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

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

    def __init__(self, out_dir: Path, context: ExportContext, report: RegionReport):
        self.out_dir = out_dir
        self.context = context
        self.report = report
        # The newest task change seen, written as the dataset's date: the same snapshot always
        # gives the same bytes (a wall-clock date would not).
        self.dataset_date = ""

    @abstractmethod
    def write(self, item: TaskItem) -> None: ...

    def close(self) -> None:
        """Write what can only be written once every task is seen (aggregate files)."""

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        """Read the published dataset back and judge it; one outcome per entry of `checks`."""
        return []

    # Helpers shared by the vision writers.

    def shapes(self, item: TaskItem) -> Iterator[tuple[Annotation, Shape]]:
        """Every region of the chosen annotations as a pixel shape; the rest dropped with a reason."""
        for annotation, region, shape in item.pixel_shapes():
            if isinstance(shape, str):
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
        class_id = self.context.classes.ids.get(name)
        if class_id is None:
            self.drop(item, annotation, region, f"label '{name}' is not a class of the label config")
            return None
        return class_id, name

    def drop(self, item: TaskItem, annotation: Annotation, region: Region, reason: str) -> None:
        self.report.drop(item.task.id, annotation.id, region.id, reason)
