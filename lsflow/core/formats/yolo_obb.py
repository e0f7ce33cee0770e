"""YOLO_OBB and YOLO_OBB_WITH_IMAGES: `class x1 y1 x2 y2 x3 y3 x4 y4`, a rectangle's four corners.

Corners are computed in pixels (a rotation is rigid only there) and normalized afterwards, in the
order top-left, top-right, bottom-right, bottom-left of the unrotated rectangle, as Label Studio's
converter writes them. A corner beyond the image edge is moved onto the edge and the region counted
as clipped: Ultralytics rejects coordinates outside [0, 1] and fits a rotated box to the four points.
Polygons belong to YOLO_SEG, keypoints to YOLO_POSE, masks to the BRUSH_* formats; all dropped here.
"""

from __future__ import annotations

from lsflow.core.formats.base import ExportContext
from lsflow.core.formats.shared.ultralytics import (
    NO_AREA,
    LabelRow,
    UltralyticsWriter,
    coordinates_problem,
    normalized,
)
from lsflow.core.geometry.plane import clip_envelope
from lsflow.core.geometry.shapes import Shape

CORNER_VALUES = 8


class YoloObbWriter(UltralyticsWriter):
    name = "YOLO_OBB"
    description = "YOLO oriented boxes: the four normalized corners of each (rotated) rectangle"
    task = "obb"

    kinds = frozenset({"box"})
    elsewhere = {"polygon": "YOLO_SEG", "keypoint": "YOLO_POSE", "mask": "the BRUSH_* formats and COCO"}

    @staticmethod
    def row(shape: Shape, class_id: int) -> LabelRow | str:
        width, height = shape.image.width, shape.image.height
        # Only boxes come here (`kinds`): the envelope is set, only a mask's is None; no assert per region.
        if clip_envelope(shape.envelope, width, height) is None:  # type: ignore[arg-type]
            return NO_AREA
        corners = [(min(max(x, 0.0), width), min(max(y, 0.0), height)) for x, y in shape.points]
        return LabelRow(f"{class_id} {normalized(corners, width, height)}\n", corners != list(shape.points))

    @classmethod
    def values_problem(cls, values: list[float], context: ExportContext) -> str | None:
        if len(values) != CORNER_VALUES:
            return f"{len(values) + 1} columns, an oriented box row has {CORNER_VALUES + 1}"
        return coordinates_problem(values)


class YoloObbWithImagesWriter(YoloObbWriter):
    name = "YOLO_OBB_WITH_IMAGES"
    description = "YOLO oriented boxes with the task images copied into `images/<split>/`"
    copies_images = True
    reads_media = True
    per_task = False  # the copies come from the media, which can change without the task
