"""What BRUSH_TO_NUMPY and BRUSH_TO_PNG share: one mask file per brush region, named as Label
Studio names it, plus a merged mask per image and label.

- per region: `task-<task>-annotation-<annotation>-by-<annotator>-<from_name>-<labels>-<n>.<ext>`,
  the alpha channel of the region's RGBA canvas, (height, width) uint8 — byte for byte Label
  Studio's mask, decoded by `lsflow.core.geometry.rle` instead of the SDK's bit-string reader;
- merged: `merged/<image stem>/<label>.<ext>`, the pixel-wise maximum of every region with that
  label on the image (with several annotations per task, their union — choose the annotation policy
  `latest` or `annotator:<id>` for one annotator's masks).

Only brush regions become masks; rectangles, polygons and keypoints are dropped with the format
that holds them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, TaskItem, file_stem
from lsflow.core.formats.shared.vision import VisionWriter, read_files_mapping
from lsflow.core.model.label_config import BRUSH_CONTROLS
from lsflow.core.model.task import Annotation

MERGED_DIR = "merged"
_ELSEWHERE = {"box": "COCO, VOC and YOLO", "polygon": "COCO and YOLO_SEG", "keypoint": "COCO and YOLO_POSE"}
MASKS_MATCH = CheckSpec("masks_match_images", "every mask file exists and has its image's width and height")


class BrushMaskWriter(VisionWriter):
    """Subclasses say how a mask is stored (`extension`, `save`, `stored_size`)."""

    extension: ClassVar[str]
    checks = (MASKS_MATCH,)
    control_tags = BRUSH_CONTROLS

    @abstractmethod
    def encode(self, mask: np.ndarray) -> bytes:
        """The mask as the bytes of its file."""

    @classmethod
    @abstractmethod
    def stored_size(cls, path: Path) -> tuple[int, int]:
        """(width, height) of a stored mask."""

    def write(self, item: TaskItem) -> None:
        files: list[str] = []
        merged: dict[str, np.ndarray] = {}
        numbers: Counter[tuple[Any, str]] = Counter()  # Label Studio numbers masks per annotation and name
        for annotation, shape in self.shapes(item):
            if shape.kind != "mask":
                self.belongs_elsewhere(item, annotation, shape, _ELSEWHERE[shape.kind])
                continue
            alpha = self.mask(item, annotation, shape)
            if alpha is None:
                continue
            region = shape.region
            name = f"{region.from_name}-{'-'.join(region.labels)}"
            number = numbers[(annotation.id, name)]
            numbers[(annotation.id, name)] += 1
            file_name = f"{_region_prefix(item, annotation)}-{_safe(f'{name}-{number}')}{self.extension}"
            self.task_file(file_name, self.encode(alpha))
            files.append(file_name)
            for label in region.labels or [""]:
                merged[label] = np.maximum(merged[label], alpha) if label in merged else alpha
            self.report.wrote(region.labels[0] if region.labels else None)
        stem = file_stem(item.file_name)
        for label, mask in sorted(merged.items()):
            file_name = f"{MERGED_DIR}/{stem}/{_safe(label) or 'no_label'}{self.extension}"
            self.task_file(file_name, self.encode(mask))
            files.append(file_name)
        if files:
            self.record_files(item, None, files)

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        problems, masks = [], 0
        for entry in read_files_mapping(out_dir):
            for file_name in entry["label_files"]:
                masks += 1
                path = out_dir / file_name
                if not path.is_file():
                    problems.append(f"task {entry['task']}: {file_name} is missing")
                    continue
                size = cls.stored_size(path)
                if size != (entry["width"], entry["height"]):
                    problems.append(f"task {entry['task']}: {file_name} is {size[0]}x{size[1]}, "
                                    f"the image is {entry['width']}x{entry['height']}")
        return [CheckOutcome(MASKS_MATCH.name, not problems, problems[:20], {"masks": masks})]


def _region_prefix(item: TaskItem, annotation: Annotation) -> str:
    who: Any = annotation.completed_by
    who = who.get("email", "") if isinstance(who, dict) else str(who)
    who = "".join(c for c in who if c.isalnum() or c in "@.")  # as Label Studio cleans it
    return f"task-{item.task.id}-annotation-{annotation.id}-by-{who}"


def _safe(label: str) -> str:
    return label.replace("/", "-").replace("\\", "-")
