"""COCO and COCO_WITH_IMAGES: `result.json` + `images/`, Label Studio's layout.

- image ids are Label Studio task ids, so a prediction traces back to its task;
- category ids are class ids + 1 (option `coco_first_category_id`, default 1): COCO's own data
  starts at 1, and Datumaro, torchvision's detection models and CVAT read category 0 as "no class"
  (background). `coco_first_category_id=0` numbers them from 0, as Label Studio does;
- rectangles: `bbox` = the pixel-space envelope of the rotated corners, clipped to the image;
  rotated ones also get their 4-corner polygon as `segmentation`;
- polygons (and ellipses): clipped polygon as `segmentation`, shoelace `area`;
- brush masks: `segmentation` as COCO RLE (holes survive, unlike contour polygons), `area` the
  pixel count, `bbox` the mask's extent;
- keypoints: attached to their parent object (`parentID`) when it has one, else one COCO
  annotation per Label Studio annotation in an extra `keypoints` category; order from
  `model_index`, else label-config order — never a failure (Label Studio's export fails without
  `model_index`);
- every annotation carries `label_studio: {annotation, region}` for lineage.

Images and annotations are streamed into fragment files while tasks pass and joined at `close`,
so memory does not grow with the project; annotation ids (1, 2, … in task order) are given there,
so a task's records do not depend on the tasks before it.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson

from lsflow.core.formats.base import CheckOutcome, CheckSpec, Stream, TaskItem
from lsflow.core.formats.shared.coco_json import (
    COCO_CATEGORY_IDS,
    FIRST_CATEGORY_HELP,
    FIRST_CATEGORY_OPTION,
    check_category_counts,
    check_category_ids,
    class_categories,
    coco_info,
    copy_joined,
    copy_numbered,
    first_category_id,
    keypoint_category_id,
)
from lsflow.core.formats.shared.coco_stream import STREAM_ABOVE_BYTES, annotation_problems, check_streamed
from lsflow.core.formats.shared.vision import (
    IMAGE_SIZE_UNKNOWN,
    IMAGES_READABLE,
    KEYPOINT_VISIBLE,
    PlacedKeypoint,
    VisionWriter,
    check_images_readable,
)
from lsflow.core.geometry.plane import clip_envelope, clip_polygon, envelope, is_inside, polygon_area
from lsflow.core.geometry.rle import coco_rle
from lsflow.core.geometry.shapes import Shape
from lsflow.core.model.task import Annotation

COCO_LOADS = CheckSpec(
    "coco_loads", "the file loads in pycocotools (above 32 MiB it is read a record at a time instead), every box "
    "lies inside its image and every mask has its image's size"
)


class CocoWriter(VisionWriter):
    name = "COCO"
    description = "COCO JSON: boxes, polygons, keypoints and brush masks (RLE) in pixels"
    result_file: ClassVar[str] = "result.json"
    checks: ClassVar[tuple[CheckSpec, ...]] = (COCO_LOADS, COCO_CATEGORY_IDS)
    option_help = {
        FIRST_CATEGORY_OPTION: FIRST_CATEGORY_HELP,
    }

    streams = {**VisionWriter.streams, "images": Stream(".images.part", temporary=True),
               "annotations": Stream(".annotations.part", temporary=True)}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.first_category_id = first_category_id(self.context)

    def prepare(self) -> None:
        (self.out_dir / "images").mkdir()

    def write(self, item: TaskItem) -> None:
        image_file = f"images/{item.file_name}"
        if self.copies_images:
            copied = self.take_image(item, self.out_dir / "images")
            if copied is None:
                return
            image_file = copied.relative_to(self.out_dir).as_posix()
        if item.image_size is not None:
            self.append("images", orjson.dumps({
                "id": item.task.id,
                "width": item.image_size.width,
                "height": item.image_size.height,
                "file_name": image_file,
            }) + b"\n")
        else:
            self.report.skip_image(IMAGE_SIZE_UNKNOWN)
        objects: list[dict] = []
        parents: dict[tuple[Any, Any], dict] = {}  # (annotation id, region id) → its COCO annotation
        keypoints: list[tuple[Annotation, Shape]] = []
        for annotation, shape in self.shapes(item):
            if shape.kind == "keypoint":
                keypoints.append((annotation, shape))
                continue
            if shape.kind == "mask":
                coco = self._mask_annotation(item, annotation, shape)
            else:
                coco = self._shape_annotation(item, annotation, shape)
            if coco is not None:
                objects.append(coco)
                if shape.region.id is not None:
                    parents[(annotation.id, shape.region.id)] = coco
        loose = []
        for (annotation_id, parent), placed in self.group_keypoints(item, keypoints, set(parents)).items():
            if parent is None:
                loose.append(self._keypoint_group(item, annotation_id, placed))
            else:
                self._set_keypoints(parents[(annotation_id, parent)], placed)
        if objects or loose:  # one line each, appended as one: the stream has no separator
            self.append("annotations", b"".join([orjson.dumps(coco) + b"\n" for coco in [*objects, *loose]]))
        self.record_files(item, image_file, [self.result_file])

    def _shape_annotation(self, item: TaskItem, annotation: Annotation, shape: Shape) -> dict | None:
        found = self.class_id(item, annotation, shape.region)
        if found is None:
            return None
        category_id, label = found[0] + self.first_category_id, found[1]
        width, height = shape.image.width, shape.image.height
        if shape.kind == "box" and shape.rotation % 360 == 0:
            # A box's envelope is set (only a mask's is None); no assert per region.
            xmin, ymin, xmax, ymax = shape.envelope  # type: ignore[misc]
            box_width, box_height = xmax - xmin, ymax - ymin
            if xmin >= 0 and ymin >= 0 and xmax <= width and ymax <= height and box_width * box_height > 0:
                # Most boxes: upright and inside the image, nothing to clip or to outline.
                self.report.wrote(label)
                return self._object(item, annotation, shape, category_id, [], [xmin, ymin, box_width, box_height],
                                    box_width * box_height)
        points = shape.points
        if is_inside(points, width, height):
            clipped_points, was_clipped = list(points), False
        else:
            clipped_points = clip_polygon(points, width, height)
            was_clipped = clipped_points != list(points)
        area_inside = polygon_area(clipped_points) if len(clipped_points) >= 3 else 0.0
        if area_inside <= 0:
            self.drop(item, annotation, shape.region, "no area inside the image")
            return None
        if shape.kind == "box":
            box = clip_envelope(shape.envelope, width, height)  # type: ignore[arg-type]  # a box: set, as above
            if box is None:
                self.drop(item, annotation, shape.region, "no area inside the image")
                return None
            rotated = shape.rotation % 360 != 0
            segmentation = [_flat(clipped_points)] if rotated or was_clipped else []
            area = area_inside if rotated else box.area
        else:  # a polygon: its envelope is that of its points until clipped
            box = shape.envelope if not was_clipped and shape.envelope is not None else envelope(clipped_points)
            segmentation = [_flat(clipped_points)]
            area = area_inside
        self.report.wrote(label, clipped=was_clipped)
        return self._object(item, annotation, shape, category_id, segmentation,
                            [box.xmin, box.ymin, box.width, box.height], area)

    def _mask_annotation(self, item: TaskItem, annotation: Annotation, shape: Shape) -> dict | None:
        found = self.class_id(item, annotation, shape.region)
        if found is None:
            return None
        alpha = self.mask(item, annotation, shape)
        if alpha is None:
            return None
        # Any painted pixel belongs to the mask, as in Label Studio's BRUSH_TO_COCO (contours of alpha > 0).
        painted = alpha > 0
        rows, columns = np.flatnonzero(painted.any(axis=1)), np.flatnonzero(painted.any(axis=0))
        if rows.size == 0:
            self.drop(item, annotation, shape.region, "brush mask is empty")
            return None
        bbox = [int(columns[0]), int(rows[0]), int(columns[-1] + 1 - columns[0]), int(rows[-1] + 1 - rows[0])]
        self.report.wrote(found[1])
        return self._object(item, annotation, shape, found[0] + self.first_category_id, coco_rle(painted), bbox,
                            int(painted.sum()))

    def _object(self, item: TaskItem, annotation: Annotation, shape: Shape, category_id: int,
                segmentation: Any, bbox: list, area: float) -> dict:
        return {  # "id" comes first, given in `close`
            "image_id": item.task.id,
            "category_id": category_id,
            "segmentation": segmentation,
            "bbox": bbox,
            "ignore": 0,
            "iscrowd": 0,
            "area": area,
            "label_studio": {"annotation": annotation.id, "region": shape.region.id},
        }

    def _set_keypoints(self, coco: dict, placed: list[PlacedKeypoint]) -> None:
        keypoints: list[float] = [0] * (3 * len(self.context.keypoint_names))
        for point in placed:
            keypoints[3 * point.slot: 3 * point.slot + 3] = [point.point[0], point.point[1], KEYPOINT_VISIBLE]
            self.report.wrote(point.label)
        coco["keypoints"] = keypoints
        coco["num_keypoints"] = len(placed)

    def _keypoint_group(self, item: TaskItem, annotation_id: Any, placed: list[PlacedKeypoint]) -> dict:
        """Keypoints with no parent object: one COCO annotation, boxed by their envelope."""
        box = envelope([point.point for point in placed])
        group = {
            "image_id": item.task.id,
            "category_id": self._keypoint_category_id,
            "segmentation": [],
            "bbox": [box.xmin, box.ymin, box.width, box.height],
            "area": box.area,
            "iscrowd": 0,
            "label_studio": {"annotation": annotation_id, "region": None},
        }
        self._set_keypoints(group, placed)
        return group

    @property
    def _keypoint_category_id(self) -> int:
        """Keypoints without a parent box belong to one extra category after the classes."""
        return keypoint_category_id(self.context.classes, self.first_category_id)

    def close(self) -> None:
        images, annotations = self.out_dir / ".images.part", self.out_dir / ".annotations.part"
        # Keypoints without a box add a category; whether any did shows in their records.
        keypoint_category_used = _contains(annotations, b'"category_id":%d,' % self._keypoint_category_id)
        with open(self.out_dir / self.result_file, "wb") as out:
            out.write(b'{"images":[')
            copy_joined(images, out)
            out.write(b'],"categories":' + orjson.dumps(self._categories(keypoint_category_used)))
            out.write(b',"annotations":[')
            copy_numbered(annotations, out)
            out.write(b'],"info":' + orjson.dumps(coco_info(self.dataset_date, self.context.project_id)) + b"}")

    def _categories(self, keypoint_category_used: bool) -> list[dict]:
        categories = class_categories(self.context.classes, self.first_category_id)
        if keypoint_category_used:
            categories.append({"id": self._keypoint_category_id, "name": "keypoints"})
        if self.context.keypoint_names:
            for category in categories:
                category.update(keypoints=list(self.context.keypoint_names), skeleton=[])
        return categories

    @classmethod
    def check(cls, out_dir: Path, context: Any) -> list[CheckOutcome]:
        if (out_dir / cls.result_file).stat().st_size > STREAM_ABOVE_BYTES:
            outcomes = cls._check_streamed(out_dir, context)
        else:
            loaded, document = cls._check_loads(out_dir)
            outcomes = [loaded]
            if document is None:
                outcomes.append(CheckOutcome(COCO_CATEGORY_IDS.name, False, [f"{cls.result_file} does not load"]))
            else:
                outcomes.append(check_category_ids(document, context))
        if cls.copies_images:
            outcomes.append(check_images_readable(out_dir))
        return outcomes

    @classmethod
    def _check_streamed(cls, out_dir: Path, context: Any) -> list[CheckOutcome]:
        """`coco_loads` and `coco_category_ids` of a file too large to load in pycocotools (it holds ~5 bytes
        of memory a byte of file): the same properties, read one record at a time."""
        try:
            checked = check_streamed(out_dir / cls.result_file)
        except Exception as error:  # ijson's parse errors, or a record missing a key the check reads
            return [CheckOutcome(COCO_LOADS.name, False, [f"{cls.result_file} is not a COCO document: {error!r}"]),
                    CheckOutcome(COCO_CATEGORY_IDS.name, False, [f"{cls.result_file} does not load"])]
        return [CheckOutcome(COCO_LOADS.name, not checked.problems, checked.problems, {
            "images": checked.images, "annotations": checked.annotations, "categories": len(checked.categories),
            "masks": checked.masks, "checked": "streamed"}),
            check_category_counts(checked.categories, checked.annotation_categories, context)]

    @classmethod
    def _check_loads(cls, out_dir: Path) -> tuple[CheckOutcome, dict | None]:
        """The `coco_loads` outcome, and the loaded document (None when it does not load)."""
        from pycocotools.coco import COCO  # imported here: loading it costs ~0.3 s at start-up

        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                coco = COCO(str(out_dir / cls.result_file))
        except Exception as error:  # pycocotools raises bare AssertionError/KeyError on bad files
            return CheckOutcome(COCO_LOADS.name, False,
                                [f"pycocotools cannot load {cls.result_file}: {error!r}"]), None
        problems, masks = [], 0
        for annotation in coco.dataset["annotations"]:
            image = coco.imgs.get(annotation["image_id"])
            size = (image["width"], image["height"]) if image is not None else None
            masks += size is not None and isinstance(annotation.get("segmentation"), dict)
            problems += annotation_problems(annotation, size)
        return CheckOutcome(COCO_LOADS.name, not problems, problems[:20], {
            "images": len(coco.imgs), "annotations": len(coco.anns), "categories": len(coco.cats), "masks": masks,
        }), coco.dataset


class CocoWithImagesWriter(CocoWriter):
    name = "COCO_WITH_IMAGES"
    description = "COCO JSON with the task images copied into images/"
    copies_images = True
    reads_media = True
    per_task = False  # the copies come from the media, which can change without the task
    checks = (COCO_LOADS, COCO_CATEGORY_IDS, IMAGES_READABLE)


def _flat(points: list) -> list[float]:
    return [coordinate for point in points for coordinate in point]


def _contains(path: Path, text: bytes, chunk_size: int = 1 << 20) -> bool:
    """Whether `text` occurs in the file, read a chunk at a time: mapping it whole would count every
    page of it in the process's resident memory (~1 KB a task for COCO's annotations)."""
    carried = b""  # the last bytes read, in case `text` straddles two chunks
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            window = carried + chunk
            if text in window:
                return True
            carried = window[max(0, len(window) - len(text) + 1):]
    return False
