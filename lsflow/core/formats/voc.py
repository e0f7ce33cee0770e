"""Pascal VOC: `Annotations/<image stem>.xml`, one file per task with a known image size.

Boxes are the clipped pixel envelope of each rectangle (rotation included), in whole pixels that
cover it: by default as the VOC devkit numbers pixels, 1-based and inclusive (`xmin` = floor(x) + 1,
`xmax` = ceil(x + width)), which supervision's and Ultralytics' VOC readers and Datumaro's
`voc-one-based` mode undo. Option `voc_pixel_origin=0` writes 0-based edges (`xmin` = floor(x),
`xmax` the same), as Label Studio does and Datumaro's default mode reads. VOC has no polygons: a
polygon is written as its envelope box, a documented choice that keeps detection datasets complete;
keypoints and masks are dropped. `truncated` is 1 when the box was clipped at the image edge.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, TaskItem, file_stem, option_choice
from lsflow.core.formats.shared.problems import Problems, files_in
from lsflow.core.formats.shared.vision import IMAGE_SIZE_UNKNOWN, VisionWriter
from lsflow.core.geometry.plane import clip_envelope

PIXEL_ORIGIN_OPTION = "voc_pixel_origin"
PIXEL_ORIGINS = ("1", "0")  # the default first


def pixel_origin(context: ExportContext) -> int:
    """The number of the first pixel column and row: 1 (the VOC devkit's), or 0 (Label Studio's)."""
    return int(option_choice(context, PIXEL_ORIGIN_OPTION, PIXEL_ORIGINS))


class VocWriter(VisionWriter):
    name = "VOC"
    description = "Pascal VOC XML: one file per image, boxes in whole pixels"
    checks = (CheckSpec("voc_parses", "every XML parses, its classes are the label config's and its boxes lie "
                                      "inside the image size it states, numbered from voc_pixel_origin (1 by "
                                      "default, as the VOC devkit)"),)
    option_help = {
        PIXEL_ORIGIN_OPTION: "1 (default): boxes in the VOC devkit's 1-based inclusive pixel numbers, "
                             "xmin = floor(x) + 1, xmax = ceil(x + w); 0: 0-based edges as Label Studio writes, "
                             "xmin = floor(x)",
    }

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.origin = pixel_origin(self.context)
        self._object_starts: dict[str, str] = {}  # by class name: the same few lines, escaped once
        self._database = _text_element("    ", "database", f"Label Studio project {self.context.project_id or ''}".strip())

    def _object_start(self, name: str) -> str:
        start = self._object_starts.get(name)
        if start is None:
            start = self._object_starts[name] = (f"  <object>\n{_text_element('    ', 'name', name)}"
                                                 "    <pose>Unspecified</pose>\n")
        return start

    def prepare(self) -> None:
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
            width, height = shape.image
            # Keypoints and masks were dropped above; a box's or polygon's envelope is set (no assert per region).
            box = clip_envelope(shape.envelope, width, height)  # type: ignore[arg-type]
            if box is None:
                self.drop(item, annotation, shape.region, "no area inside the image")
                continue
            xmin, ymin, xmax, ymax = box
            # The pixels the box touches, the first numbered from `origin`. xmax is ceil(x + w) either way:
            # 0-based, the far edge of the last pixel; 1-based, that pixel's own number.
            pixels = (math.floor(xmin) + self.origin, math.floor(ymin) + self.origin,
                      min(math.ceil(xmax), width), min(math.ceil(ymax), height))
            clipped = box != shape.envelope
            objects.append((found[1], clipped, pixels))
            self.report.wrote(found[1], clipped=clipped)
        if item.image_size is None:  # no regions could be placed either: each was dropped for the missing size
            self.report.skip_image(IMAGE_SIZE_UNKNOWN)
            return
        parts = [
            "<?xml version='1.0' encoding='utf-8'?>\n<annotation>\n  <folder>images</folder>\n",
            _text_element("  ", "filename", item.file_name),
            "  <source>\n",
            self._database,
            _text_element("    ", "task_id", str(item.task.id)),
            "  </source>\n",
            f"  <size>\n    <width>{item.image_size.width}</width>\n    <height>{item.image_size.height}</height>\n"
            "    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n",
        ]
        for name, clipped, (xmin, ymin, xmax, ymax) in objects:
            parts.append(
                f"{self._object_start(name)}    <truncated>{1 if clipped else 0}</truncated>\n    <difficult>0</difficult>\n"
                f"    <bndbox>\n      <xmin>{xmin}</xmin>\n      <ymin>{ymin}</ymin>\n      <xmax>{xmax}</xmax>\n"
                f"      <ymax>{ymax}</ymax>\n    </bndbox>\n  </object>\n"
            )
        parts.append("</annotation>")
        label_file = f"Annotations/{file_stem(item.file_name)}.xml"
        self.task_file(label_file, "".join(parts).encode())
        self.record_files(item, f"images/{item.file_name}", [label_file])

    @classmethod
    def check(cls, out_dir: Path, context: Any) -> list[CheckOutcome]:
        origin = pixel_origin(context)
        # 1-based: the first and last pixel, inclusive (one pixel: xmin = xmax); 0-based: its edges.
        last = 0 if origin == 1 else 1
        problems, objects, files = Problems(), 0, 0
        for path in files_in(out_dir / "Annotations", ".xml"):
            files += 1
            try:
                root = ElementTree.parse(path).getroot()
                # A missing element gives None, and int(None) the TypeError reported below: on purpose.
                width, height = int(root.findtext("size/width")), int(root.findtext("size/height"))  # type: ignore[arg-type]
                for node in root.iter("object"):
                    objects += 1
                    xmin, ymin, xmax, ymax = (int(node.findtext(f"bndbox/{k}"))  # type: ignore[arg-type]  # as above
                                              for k in ("xmin", "ymin", "xmax", "ymax"))
                    if not (origin <= xmin <= xmax - last and xmax <= width
                            and origin <= ymin <= ymax - last and ymax <= height):
                        problems.add(path.name, f"{path.name}: box {xmin},{ymin},{xmax},{ymax} is not a box inside "
                                        f"{width}x{height} with pixels numbered from {origin} "
                                        f"({PIXEL_ORIGIN_OPTION}={origin})")
                    if node.findtext("name") not in context.classes:
                        problems.add(path.name, f"{path.name}: class '{node.findtext('name')}' is not in the label config")
            except (ElementTree.ParseError, TypeError, ValueError) as error:
                problems.add(path.name, f"{path.name}: {error}")
        return [CheckOutcome("voc_parses", not problems.count, problems.first(),
                             {"files": files, "objects": objects, "pixel_origin": origin})]


def _text_element(indent: str, tag: str, text: str) -> str:
    """One line of a VOC file, escaped as ElementTree writes it (an empty text makes an empty element)."""
    return f"{indent}<{tag}>{escape(text)}</{tag}>\n" if text else f"{indent}<{tag} />\n"
