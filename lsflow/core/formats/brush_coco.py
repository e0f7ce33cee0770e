"""BRUSH_TO_COCO: the COCO writer under Label Studio's file name for it, `result_coco.json`.

Label Studio's BRUSH_TO_COCO traces each mask's outer contours into polygons (holes are lost, one
annotation per contour); lsflow writes the mask itself as COCO RLE, one annotation per region, with
the rectangles, polygons and keypoints of the task alongside, as COCO does.
"""

from __future__ import annotations

from lsflow.core.formats.coco import CocoWriter
from lsflow.core.model.label_config import BRUSH_CONTROLS


class BrushToCocoWriter(CocoWriter):
    name = "BRUSH_TO_COCO"
    description = "COCO JSON (result_coco.json) with brush masks as RLE, holes kept"
    result_file = "result_coco.json"
    control_tags = BRUSH_CONTROLS
