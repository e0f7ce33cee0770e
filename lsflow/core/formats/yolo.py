"""YOLO (detection) and YOLO_WITH_IMAGES: `class x_center y_center width height` per object.

Rotated rectangles become the envelope of their pixel-space corners and polygons (and ellipses)
their envelope, both clipped to the image, so a file only ever holds box rows. Keypoints belong to
YOLO_POSE and brush masks to the BRUSH_* formats and COCO; both are reported as dropped here.
Layout and splits: see `ultralytics.py`.
"""

from __future__ import annotations

from lsflow.core.formats.base import ExportContext
from lsflow.core.formats.shared.ultralytics import UltralyticsWriter, coordinates_problem, detection_row

BOX_VALUES = 4


class YoloWriter(UltralyticsWriter):
    name = "YOLO"
    description = "YOLO detection labels: one normalized box row per object, Ultralytics split layout"
    task = "detect"

    kinds = frozenset({"box", "polygon"})
    elsewhere = {"keypoint": "YOLO_POSE", "mask": "the BRUSH_* formats and COCO"}

    row = staticmethod(detection_row)

    @classmethod
    def values_problem(cls, values: list[float], context: ExportContext) -> str | None:
        if len(values) != BOX_VALUES:
            return f"{len(values) + 1} columns, a box row has {BOX_VALUES + 1}"
        return coordinates_problem(values)


class YoloWithImagesWriter(YoloWriter):
    name = "YOLO_WITH_IMAGES"
    description = "YOLO detection labels with the task images copied into `images/<split>/`"
    copies_images = True
    reads_media = True
    per_task = False  # the copies come from the media, which can change without the task
