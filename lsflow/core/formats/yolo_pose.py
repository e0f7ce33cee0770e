"""YOLO_POSE: `class xc yc w h  x1 y1 v1 … xK yK vK`, a box with its keypoints (Ultralytics pose).

A keypoint belongs to the rectangle named by its `parentID` in the same annotation; its slot is its
label's place in the keypoint order (`model_index`, else label-config order) and `data.yaml` says
`kpt_shape: [K, 3]`. Missing keypoints are `0 0 0`; placed ones are visible (2). A keypoint without
a parent rectangle cannot be put in any row and is dropped with that reason (Label Studio drops it
silently). The box is the rectangle's clipped envelope, as in YOLO. Polygons and masks are dropped.
"""

from __future__ import annotations

from typing import Any

from lsflow.core.formats.base import ExportContext, TaskItem
from lsflow.core.formats.shared.ultralytics import UltralyticsWriter, coordinates_problem, detection_row
from lsflow.core.geometry.shapes import Shape
from lsflow.core.model.task import Annotation

BOX_VALUES = 4
VISIBILITIES = (0.0, 1.0, 2.0)


class YoloPoseWriter(UltralyticsWriter):
    name = "YOLO_POSE"
    description = "YOLO pose labels: each rectangle with its keypoints, in model_index order"
    task = "pose"
    control_tags = frozenset({"keypointlabels", "keypoint"})

    kinds = frozenset({"box"})
    # Keypoints have no entry: they are put aside, to join the rectangle they belong to.
    elsewhere = {"polygon": "YOLO_SEG", "mask": "the BRUSH_* formats and COCO"}
    row = staticmethod(detection_row)  # a detection row, the keypoints' columns added before its newline

    def rows(self, item: TaskItem) -> list[str]:
        keypoints: list[tuple[Annotation, Shape]] = []
        boxes = [((annotation.id, shape.region.id), row.text[:-1], shape.image)
                 for annotation, shape, row in self.labelled_rows(item, aside=keypoints)]
        parents = {key for key, _, _ in boxes if key[1] is not None}
        groups = self.group_keypoints(item, keypoints, parents)
        rows = []
        for key, columns, size in boxes:
            slots = [(0.0, 0.0, 0)] * len(self.context.keypoint_names)
            for placed in groups.pop(key, []) if key in parents else []:
                slots[placed.slot] = (placed.point[0] / size.width, placed.point[1] / size.height, 2)
                self.report.wrote(placed.label)
            rows.append(columns + "".join(f" {x:.6f} {y:.6f} {v}" for x, y, v in slots) + "\n")
        for loose in groups.values():  # what no box claimed: keypoints without a parent rectangle
            for placed in loose:
                self.drop(item, placed.annotation, placed.region,
                          "keypoint has no parent rectangle (parentID), so no YOLO_POSE row can hold it")
        return rows

    def extra_data_yaml(self) -> dict[str, Any]:
        return {"kpt_shape": [len(self.context.keypoint_names), 3]}

    @classmethod
    def values_problem(cls, values: list[float], context: ExportContext) -> str | None:
        expected = BOX_VALUES + 3 * len(context.keypoint_names)
        if len(values) != expected:
            return (f"{len(values) + 1} columns, a pose row with {len(context.keypoint_names)} keypoints "
                    f"has {expected + 1}")
        visibilities = values[BOX_VALUES + 2::3]
        if any(v not in VISIBILITIES for v in visibilities):
            return f"keypoint visibility not 0, 1 or 2: {visibilities}"
        coordinates = values[:BOX_VALUES] + [v for i, v in enumerate(values[BOX_VALUES:]) if i % 3 != 2]
        return coordinates_problem(coordinates)
