"""What the image formats share: the task → file mapping, image copies, brush masks, keypoint groups.

Every vision dataset holds `lsflow_files.jsonl`, one line per task it wrote: the task id, its media
reference, the image's path inside the dataset and the files holding its labels — the way back
from any file to the Label Studio task (file names alone can be renamed to avoid collisions).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import orjson
from PIL import Image, UnidentifiedImageError

from lsflow.core.formats.base import CheckOutcome, CheckSpec, DatasetWriter, Stream, TaskItem
from lsflow.core.geometry.plane import Point
from lsflow.core.geometry.rle import RleError, brush_alpha
from lsflow.core.geometry.shapes import Shape
from lsflow.core.model.label_config import SHAPE_CONTROLS
from lsflow.core.model.task import Annotation, Region

FILES_FILE = "lsflow_files.jsonl"
IMAGE_NOT_AVAILABLE = "image file not available to copy into the dataset"
IMAGE_NOT_READABLE = "image file is not an image Pillow can read"
IMAGE_SIZE_UNKNOWN = "image size unknown: no region carries it and the image is not reachable"
KEYPOINT_VISIBLE = 2
SHAPE_NAMES = {"box": "rectangles", "polygon": "polygons", "keypoint": "keypoints", "mask": "brush masks"}
IMAGES_READABLE = CheckSpec(
    "images_readable", "every copied image opens with Pillow and has the size its labels were made for"
)


@dataclass(frozen=True, slots=True)
class PlacedKeypoint:
    slot: int  # index in the keypoint order (model_index, else label-config order)
    point: Point
    label: str
    annotation: Annotation
    region: Region


class VisionWriter(DatasetWriter):
    """Base of the image formats. `copies_images` makes a `*_WITH_IMAGES` variant: a task whose
    image cannot be had is left out whole (its regions dropped with the reason), so no label ever
    points at a missing image."""

    copies_images: ClassVar[bool] = False
    object_tags = frozenset({"image"})
    control_tags = SHAPE_CONTROLS | {"labels"}
    streams = {**DatasetWriter.streams, "files": Stream(FILES_FILE)}

    def record_files(self, item: TaskItem, image_file: str | None, label_files: Iterable[str]) -> None:
        size = item.image_size
        self.append("files", orjson.dumps({
            "task": item.task.id,
            "image": item.image_ref,
            "image_file": image_file,
            "width": size.width if size else None,
            "height": size.height if size else None,
            "label_files": list(label_files),
        }) + b"\n")

    def take_image(self, item: TaskItem, directory: Path) -> Path | None:
        """Copy the task's image into `directory`; None after leaving the task out when it cannot."""
        media = self.context.media
        local = media.local_path(item.image_ref) if item.image_ref and media is not None else None
        if local is None:
            self.skip_task(item, IMAGE_NOT_AVAILABLE)
            return None
        try:
            with Image.open(local) as image:
                kind = f".{image.format.lower()}" if image.format else ""
        except (OSError, UnidentifiedImageError):
            self.skip_task(item, IMAGE_NOT_READABLE)
            return None
        name = PurePosixPath(item.file_name)
        if not name.suffix:  # Ultralytics only reads files with an image suffix
            name = name.with_suffix(local.suffix or kind)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / name.name
        shutil.copyfile(local, target)
        return target

    def belongs_elsewhere(self, item: TaskItem, annotation: Annotation, shape: Shape, formats: str) -> None:
        self.drop(item, annotation, shape.region,
                  f"{SHAPE_NAMES[shape.kind]} are exported by {formats}, not {self.name}")

    def skip_task(self, item: TaskItem, reason: str) -> None:
        self.report.skip_image(reason)
        for annotation in item.annotations:
            for region in annotation.regions:
                self.drop(item, annotation, region, reason)

    def mask(self, item: TaskItem, annotation: Annotation, shape: Shape) -> np.ndarray | None:
        """A brush region's alpha mask, (height, width) uint8; None after reporting the drop."""
        value = shape.region.value
        if "rle" not in value:
            self.drop(item, annotation, shape.region,
                      f"brush region has no 'rle' (format '{value.get('format', 'unknown')}')")
            return None
        try:
            return brush_alpha(value["rle"], shape.image.width, shape.image.height)
        except RleError as error:
            self.drop(item, annotation, shape.region, f"brush mask cannot be read: {error}")
            return None

    def group_keypoints(
        self, item: TaskItem, keypoints: list[tuple[Annotation, Shape]], parents: set[tuple[Any, Any]]
    ) -> dict[tuple[Any, Any], list[PlacedKeypoint]]:
        """Keypoints by (annotation id, parent region id); the parent is None for keypoints with no
        `parentID` among `parents`. Unusable ones are dropped with the reason, a second keypoint of
        the same name in one group included (one slot, one point)."""
        order = {name: slot for slot, name in enumerate(self.context.keypoint_names)}
        groups: dict[tuple[Any, Any], list[PlacedKeypoint]] = {}
        for annotation, shape in keypoints:
            region = shape.region
            labels = region.labels
            (x, y) = shape.points[0]
            if not labels:
                self.drop(item, annotation, region, "keypoint has no label")
                continue
            if labels[0] not in order:
                self.drop(item, annotation, region, f"keypoint label '{labels[0]}' is not in the label config")
                continue
            if not (0 <= x <= shape.image.width and 0 <= y <= shape.image.height):
                self.drop(item, annotation, region, "keypoint lies outside the image")
                continue
            parent = region.parent_id if (annotation.id, region.parent_id) in parents else None
            group = groups.setdefault((annotation.id, parent), [])
            if any(placed.label == labels[0] for placed in group):
                self.drop(item, annotation, region, f"a second '{labels[0]}' keypoint for the same object")
                continue
            group.append(PlacedKeypoint(order[labels[0]], (x, y), labels[0], annotation, region))
        return groups


def read_files_mapping(out_dir: Path) -> Iterator[dict]:
    """The task → files mapping, a line at a time (a million tasks' is ~150 MB of JSON)."""
    path = out_dir / FILES_FILE
    if path.is_file():
        with open(path, "rb") as lines:
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)


def check_images_readable(out_dir: Path) -> CheckOutcome:
    """For `*_WITH_IMAGES`: every copied image decodes and has the width/height its labels assume."""
    problems, images = [], 0
    for entry in read_files_mapping(out_dir):
        images += 1
        path = out_dir / entry["image_file"]
        try:
            with Image.open(path) as image:
                size = image.size
                image.load()
        except (OSError, UnidentifiedImageError) as error:
            problems.append(f"task {entry['task']}: {entry['image_file']} does not open: {error}")
            continue
        if entry["width"] is not None and size != (entry["width"], entry["height"]):
            problems.append(f"task {entry['task']}: {entry['image_file']} is {size[0]}x{size[1]}, "
                            f"its labels were made on {entry['width']}x{entry['height']}")
    return CheckOutcome(IMAGES_READABLE.name, not problems, problems[:20], {"images": images})
