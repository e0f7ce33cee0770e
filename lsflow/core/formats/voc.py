"""Pascal VOC: `Annotations/<image stem>.xml`, one file per task with a known image size.

Boxes are the clipped pixel envelope of each rectangle (rotation included), in whole pixels,
0-based like Label Studio's. VOC has no polygons: a polygon is written as its envelope box, a
documented choice that keeps detection datasets complete; keypoints and masks are dropped.
`truncated` is 1 when the box was clipped at the image edge.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path, PurePosixPath
from typing import Any

from lsflow.core.formats.base import CheckOutcome, CheckSpec, TaskItem
from lsflow.core.formats.vision import IMAGE_SIZE_UNKNOWN, VisionWriter
from lsflow.core.geometry import clip_envelope


class VocWriter(VisionWriter):
    name = "VOC"
    description = "Pascal VOC XML: one file per image, boxes in whole pixels"
    checks = (CheckSpec("voc_parses", "every XML parses and its boxes lie inside the image size it states"),)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        (self.out_dir / "Annotations").mkdir()
        (self.out_dir / "images").mkdir()

    def write(self, item: TaskItem) -> None:
        objects = []
        for annotation, shape in self.shapes(item):
            if shape.kind in ("keypoint", "mask"):
                self.drop(item, annotation, shape.region, f"VOC has no {shape.kind}s")
                continue
            found = self.class_id(item, annotation, shape.region)
            if found is None:
                continue
            box = clip_envelope(shape.envelope, shape.image.width, shape.image.height)
            if box is None:
                self.drop(item, annotation, shape.region, "no area inside the image")
                continue
            pixels = (
                math.floor(box.xmin), math.floor(box.ymin),
                min(math.ceil(box.xmax), shape.image.width), min(math.ceil(box.ymax), shape.image.height),
            )
            clipped = box != shape.envelope
            objects.append((found[1], clipped, pixels))
            self.report.wrote(found[1], clipped=clipped)
        if item.image_size is None:  # no regions could be placed either: each was dropped for the missing size
            self.report.images_skipped[IMAGE_SIZE_UNKNOWN] += 1
            return
        root = ElementTree.Element("annotation")
        _child(root, "folder", "images")
        _child(root, "filename", item.file_name)
        source = _child(root, "source")
        _child(source, "database", f"Label Studio project {self.context.project_id or ''}".strip())
        _child(source, "task_id", str(item.task.id))
        size = _child(root, "size")
        _child(size, "width", str(item.image_size.width))
        _child(size, "height", str(item.image_size.height))
        _child(size, "depth", "3")
        _child(root, "segmented", "0")
        for name, clipped, (xmin, ymin, xmax, ymax) in objects:
            node = _child(root, "object")
            _child(node, "name", name)
            _child(node, "pose", "Unspecified")
            _child(node, "truncated", "1" if clipped else "0")
            _child(node, "difficult", "0")
            bndbox = _child(node, "bndbox")
            for tag, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
                _child(bndbox, tag, str(value))
        ElementTree.indent(root)
        label_file = f"Annotations/{PurePosixPath(item.file_name).stem}.xml"
        ElementTree.ElementTree(root).write(self.out_dir / label_file, encoding="utf-8", xml_declaration=True)
        self.record_files(item, f"images/{item.file_name}", [label_file])

    @classmethod
    def check(cls, out_dir: Path, context: Any) -> list[CheckOutcome]:
        problems, objects, files = [], 0, 0
        for path in sorted((out_dir / "Annotations").glob("*.xml")):
            files += 1
            try:
                root = ElementTree.parse(path).getroot()
                width, height = int(root.findtext("size/width")), int(root.findtext("size/height"))
                for node in root.iter("object"):
                    objects += 1
                    xmin, ymin, xmax, ymax = (int(node.findtext(f"bndbox/{k}"))
                                              for k in ("xmin", "ymin", "xmax", "ymax"))
                    if not (0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height):
                        problems.append(f"{path.name}: box {xmin},{ymin},{xmax},{ymax} outside {width}x{height}")
                    if node.findtext("name") not in context.classes:
                        problems.append(f"{path.name}: class '{node.findtext('name')}' is not in the label config")
            except (ElementTree.ParseError, TypeError, ValueError) as error:
                problems.append(f"{path.name}: {error}")
        return [CheckOutcome("voc_parses", not problems, problems[:20], {"files": files, "objects": objects})]


def _child(parent: ElementTree.Element, tag: str, text: str | None = None) -> ElementTree.Element:
    node = ElementTree.SubElement(parent, tag)
    if text is not None:
        node.text = text
    return node
