"""COCO: `result.json` + `images/`, Label Studio's layout.

- image ids are Label Studio task ids, so a prediction traces back to its task;
- rectangles: `bbox` = the pixel-space envelope of the rotated corners, clipped to the image;
  rotated ones also get their 4-corner polygon as `segmentation`;
- polygons (and ellipses): clipped polygon as `segmentation`, shoelace `area`;
- keypoints: attached to their parent rectangle (`parentID`) when it has one, else one COCO
  annotation per Label Studio annotation; order from `model_index`, else label-config order;
- every annotation carries `label_studio: {annotation, region}` for lineage.

Images and annotations are streamed into fragment files while tasks pass and joined at `close`,
so memory does not grow with the project.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import orjson

from lsflow.core.formats.base import CheckOutcome, CheckSpec, DatasetWriter, TaskItem
from lsflow.core.geometry import clip_envelope, clip_polygon, envelope, is_inside, polygon_area
from lsflow.core.model import Annotation
from lsflow.core.shapes import Shape

RESULT_FILE = "result.json"
KEYPOINT_VISIBLE = 2
IMAGE_SIZE_UNKNOWN = "image size unknown: no region carries it and the image is not reachable"


class CocoWriter(DatasetWriter):
    name = "COCO"
    description = "COCO JSON: boxes, polygons and keypoints in pixels"
    checks = (
        CheckSpec("coco_loads", "result.json loads in pycocotools and every box lies inside its image"),
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._images = open(self.out_dir / ".images.part", "wb")
        self._annotations = open(self.out_dir / ".annotations.part", "wb")
        self._next_annotation_id = 1
        self._keypoint_category_used = False
        (self.out_dir / "images").mkdir()

    def write(self, item: TaskItem) -> None:
        if item.image_size is not None:
            self._append(self._images, {
                "id": item.task.id,
                "width": item.image_size.width,
                "height": item.image_size.height,
                "file_name": f"images/{item.file_name}",
            })
        else:
            self.report.images_skipped[IMAGE_SIZE_UNKNOWN] += 1
        boxes: dict[tuple[Any, str], dict] = {}  # (annotation id, region id) → COCO box annotation
        loose_keypoints: dict[Any, list[Shape]] = {}
        pending: list[tuple[Annotation, Shape]] = []
        for annotation, shape in self.shapes(item):
            if shape.kind == "mask":
                self.drop(item, annotation, shape.region, "brush masks go to BRUSH_* formats, not COCO")
            elif shape.kind == "keypoint":
                pending.append((annotation, shape))
            else:
                coco = self._shape_annotation(item, annotation, shape)
                if coco is not None:
                    boxes[(annotation.id, shape.region.id)] = coco
        for annotation, shape in pending:
            parent = boxes.get((annotation.id, shape.region.parent_id))
            if parent is not None:
                self._add_keypoint(item, annotation, shape, parent)
            else:
                loose_keypoints.setdefault(annotation.id, []).append(shape)
        for coco in boxes.values():
            self._append(self._annotations, coco)
        for annotation in item.annotations:
            if annotation.id in loose_keypoints:
                self._keypoint_group(item, annotation, loose_keypoints[annotation.id])

    def _shape_annotation(self, item: TaskItem, annotation: Annotation, shape: Shape) -> dict | None:
        found = self.class_id(item, annotation, shape.region)
        if found is None:
            return None
        category_id, label = found
        width, height = shape.image.width, shape.image.height
        clipped_points = list(shape.points)
        if not is_inside(shape.points, width, height):
            clipped_points = clip_polygon(shape.points, width, height)
        if len(clipped_points) < 3 or polygon_area(clipped_points) <= 0:
            self.drop(item, annotation, shape.region, "no area inside the image")
            return None
        was_clipped = len(clipped_points) != len(shape.points) or clipped_points != list(shape.points)
        if shape.kind == "box":
            box = clip_envelope(shape.envelope, width, height)
            if box is None:
                self.drop(item, annotation, shape.region, "no area inside the image")
                return None
            rotated = shape.rotation % 360 != 0
            segmentation = [_flat(clipped_points)] if rotated or was_clipped else []
            area = polygon_area(clipped_points) if rotated else box.area
        else:
            box = envelope(clipped_points)
            segmentation = [_flat(clipped_points)]
            area = polygon_area(clipped_points)
        self.report.wrote(label, clipped=was_clipped)
        coco = {
            "id": self._take_id(),
            "image_id": item.task.id,
            "category_id": category_id,
            "segmentation": segmentation,
            "bbox": [box.xmin, box.ymin, box.width, box.height],
            "ignore": 0,
            "iscrowd": 0,
            "area": area,
            "label_studio": {"annotation": annotation.id, "region": shape.region.id},
        }
        return coco

    def _keypoint_slot(self, item: TaskItem, annotation: Annotation, shape: Shape) -> int | None:
        (x, y), image = shape.points[0], shape.image
        labels = shape.region.labels
        if not labels:
            self.drop(item, annotation, shape.region, "keypoint has no label")
            return None
        if labels[0] not in self.context.keypoint_names:
            self.drop(item, annotation, shape.region, f"keypoint label '{labels[0]}' is not in the label config")
            return None
        if not (0 <= x <= image.width and 0 <= y <= image.height):
            self.drop(item, annotation, shape.region, "keypoint lies outside the image")
            return None
        return self.context.keypoint_names.index(labels[0])

    def _add_keypoint(self, item: TaskItem, annotation: Annotation, shape: Shape, parent: dict) -> None:
        slot = self._keypoint_slot(item, annotation, shape)
        if slot is None:
            return
        keypoints = parent.setdefault("keypoints", [0] * (3 * len(self.context.keypoint_names)))
        keypoints[3 * slot: 3 * slot + 3] = [shape.points[0][0], shape.points[0][1], KEYPOINT_VISIBLE]
        parent["num_keypoints"] = sum(1 for v in keypoints[2::3] if v)
        self.report.wrote(shape.region.labels[0])

    def _keypoint_group(self, item: TaskItem, annotation: Annotation, shapes: list[Shape]) -> None:
        group = {
            "id": 0,
            "image_id": item.task.id,
            "category_id": self._keypoint_category_id,
            "segmentation": [],
            "iscrowd": 0,
            "label_studio": {"annotation": annotation.id, "region": None},
        }
        placed = []
        for shape in shapes:
            if self._keypoint_slot(item, annotation, shape) is not None:
                self._add_keypoint(item, annotation, shape, group)
                placed.append(shape.points[0])
        if not placed:
            return
        box = envelope(placed)
        group.update(id=self._take_id(), bbox=[box.xmin, box.ymin, box.width, box.height], area=box.area)
        self._keypoint_category_used = True
        self._append(self._annotations, group)

    @property
    def _keypoint_category_id(self) -> int:
        """Keypoints without a parent box belong to one extra category after the classes."""
        return max((class_id for class_id, _ in self.context.classes.names_by_id), default=-1) + 1

    def close(self) -> None:
        categories = [
            {"id": class_id, "name": name} for class_id, name in self.context.classes.names_by_id
        ]
        if self._keypoint_category_used:
            categories.append({"id": self._keypoint_category_id, "name": "keypoints"})
        if self.context.keypoint_names:
            for category in categories:
                category.update(keypoints=list(self.context.keypoint_names), skeleton=[])
        info = {
            "year": int(self.dataset_date[:4]) if self.dataset_date[:4].isdigit() else None,
            "version": "1.0",
            "description": f"Label Studio project {self.context.project_id}" if self.context.project_id else "",
            "contributor": "Label Studio, exported by lsflow",
            "url": "",
            "date_created": self.dataset_date,
        }
        self._images.close()
        self._annotations.close()
        with open(self.out_dir / RESULT_FILE, "wb") as out:
            out.write(b'{"images":[')
            _copy_fragments(self.out_dir / ".images.part", out)
            out.write(b'],"categories":' + orjson.dumps(categories) + b',"annotations":[')
            _copy_fragments(self.out_dir / ".annotations.part", out)
            out.write(b'],"info":' + orjson.dumps(info) + b"}")
        (self.out_dir / ".images.part").unlink()
        (self.out_dir / ".annotations.part").unlink()

    def _take_id(self) -> int:
        self._next_annotation_id += 1
        return self._next_annotation_id - 1

    @staticmethod
    def _append(fragments: Any, record: dict) -> None:
        fragments.write(orjson.dumps(record) + b"\n")

    @classmethod
    def check(cls, out_dir: Path, context: Any) -> list[CheckOutcome]:
        from pycocotools.coco import COCO  # imported here: loading it costs ~0.3 s at start-up

        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                coco = COCO(str(out_dir / RESULT_FILE))
        except Exception as error:  # pycocotools raises bare AssertionError/KeyError on bad files
            return [CheckOutcome("coco_loads", False, [f"pycocotools cannot load result.json: {error!r}"])]
        problems = []
        for annotation in coco.dataset["annotations"]:
            image = coco.imgs.get(annotation["image_id"])
            x, y, w, h = annotation["bbox"]
            # A keypoint group may be one point: its envelope has no size, and that is the truth.
            needs_size = not annotation.get("num_keypoints")
            if image is None:
                problems.append(f"annotation {annotation['id']}: image {annotation['image_id']} is not listed")
            elif (x < 0 or y < 0 or x + w > image["width"] + 1e-6 or y + h > image["height"] + 1e-6
                  or (needs_size and (w <= 0 or h <= 0))):
                problems.append(
                    f"annotation {annotation['id']} (task {annotation['image_id']}): bbox {annotation['bbox']} "
                    f"is not inside the {image['width']}x{image['height']} image"
                )
        return [CheckOutcome("coco_loads", not problems, problems[:20], {
            "images": len(coco.imgs), "annotations": len(coco.anns), "categories": len(coco.cats),
        })]


def _flat(points: list) -> list[float]:
    return [coordinate for point in points for coordinate in point]


def _copy_fragments(path: Path, out: Any) -> None:
    """Join newline-separated JSON records from `path` with commas, streaming."""
    first = True
    with open(path, "rb") as fragments:
        for line in fragments:
            if not first:
                out.write(b",")
            out.write(line.rstrip(b"\n"))
            first = False
