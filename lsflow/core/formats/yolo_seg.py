"""YOLO_SEG: `class x1 y1 x2 y2 … xn yn`, one polygon per object (Ultralytics segment labels).

Polygons and ellipses (as 64-vertex polygons) keep their outline; rectangles, rotated or not,
become their four pixel-space corners — so every row of a file is a polygon row, never a box row.
Outlines are clipped to the image (Sutherland–Hodgman) and counted as clipped. Label Studio has no
such format (its YOLO export mixes polygon rows into box files). Keypoints belong to YOLO_POSE and
brush masks to the BRUSH_* formats and COCO; both are dropped here.
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
from lsflow.core.geometry.plane import clip_polygon, is_inside, polygon_area
from lsflow.core.geometry.shapes import Shape

MIN_VERTICES = 3


class YoloSegWriter(UltralyticsWriter):
    name = "YOLO_SEG"
    description = "YOLO segmentation labels: one normalized polygon row per object"
    task = "segment"

    kinds = frozenset({"box", "polygon"})
    elsewhere = {"keypoint": "YOLO_POSE", "mask": "the BRUSH_* formats and COCO"}

    @staticmethod
    def row(shape: Shape, class_id: int) -> LabelRow | str:
        width, height = shape.image.width, shape.image.height
        inside = is_inside(shape.points, width, height)
        outline = list(shape.points) if inside else clip_polygon(shape.points, width, height)
        if len(outline) < MIN_VERTICES or polygon_area(outline) <= 0:
            return NO_AREA
        return LabelRow(f"{class_id} {normalized(outline, width, height)}\n", not inside)

    @classmethod
    def values_problem(cls, values: list[float], context: ExportContext) -> str | None:
        if len(values) % 2 or len(values) < 2 * MIN_VERTICES:
            return f"{len(values) + 1} columns: a polygon row is a class and at least {MIN_VERTICES} x y pairs"
        return coordinates_problem(values)
