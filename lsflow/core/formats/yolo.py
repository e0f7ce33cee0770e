"""YOLO (detection) and YOLO_WITH_IMAGES: `class x_center y_center width height` per object.

Rotated rectangles become the envelope of their pixel-space corners and polygons (and ellipses)
their envelope, both clipped to the image, so a file only ever holds box rows. Keypoints belong to
YOLO_POSE and brush masks to the BRUSH_* formats and COCO; both are reported as dropped here.
Layout and splits: see `ultralytics.py`.
"""

from __future__ import annotations

from lsflow.core.formats.base import ExportContext, TaskItem
from lsflow.core.formats.ultralytics import UltralyticsWriter, box_columns, coordinates_problem
from lsflow.core.geometry.plane import clip_envelope

BOX_VALUES = 4
ELSEWHERE = {"keypoint": "YOLO_POSE", "mask": "the BRUSH_* formats and COCO"}


class YoloWriter(UltralyticsWriter):
    name = "YOLO"
    description = "YOLO detection labels: one normalized box row per object, Ultralytics split layout"
    task = "detect"

    def rows(self, item: TaskItem) -> list[str]:
        rows = []
        for annotation, shape, class_id, label in self.labelled_shapes(item, {"box", "polygon"}, ELSEWHERE):
            width, height = shape.image.width, shape.image.height
            box = clip_envelope(shape.envelope, width, height)
            if box is None:
                self.drop(item, annotation, shape.region, "no area inside the image")
                continue
            rows.append(box_columns(class_id, box, width, height) + "\n")
            self.report.wrote(label, clipped=box != shape.envelope)
        return rows

    @classmethod
    def values_problem(cls, values: list[float], context: ExportContext) -> str | None:
        if len(values) != BOX_VALUES:
            return f"{len(values) + 1} columns, a box row has {BOX_VALUES + 1}"
        return coordinates_problem(values)


class YoloWithImagesWriter(YoloWriter):
    name = "YOLO_WITH_IMAGES"
    description = "YOLO detection labels with the task images copied into images/<split>/"
    copies_images = True
    reads_media = True
    per_task = False  # the copies come from the media, which can change without the task
