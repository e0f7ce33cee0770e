"""YOLO (detection): `labels/<image stem>.txt`, `classes.txt`, `notes.json` — Label Studio's layout.

One row per object, `class x_center y_center width height`, normalized to [0, 1]. Rotated
rectangles become the envelope of their pixel-space corners and polygons their envelope, both
clipped to the image, so a file only ever holds box rows. Keypoints belong to YOLO_POSE and
brush masks to the BRUSH_* formats; both are reported as dropped here.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from lsflow.core.formats.base import CheckOutcome, CheckSpec, DatasetWriter, TaskItem
from lsflow.core.geometry import clip_envelope

BOX_COLUMNS = 5


class YoloWriter(DatasetWriter):
    name = "YOLO"
    description = "YOLO detection labels: one normalized box row per object"
    checks = (
        CheckSpec("yolo_rows_valid",
                  "every row has 5 columns, coordinates in [0, 1] and a class id listed in classes.txt"),
        CheckSpec("yolo_label_per_image", "every exported task has a label file"),
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        (self.out_dir / "labels").mkdir()
        (self.out_dir / "images").mkdir()

    def write(self, item: TaskItem) -> None:
        rows = []
        for annotation, shape in self.shapes(item):
            if shape.kind in ("keypoint", "mask"):
                where = "YOLO_POSE" if shape.kind == "keypoint" else "the BRUSH_* formats"
                self.drop(item, annotation, shape.region, f"{shape.kind}s are exported by {where}, not YOLO")
                continue
            found = self.class_id(item, annotation, shape.region)
            if found is None:
                continue
            box = clip_envelope(shape.envelope, shape.image.width, shape.image.height)
            if box is None:
                self.drop(item, annotation, shape.region, "no area inside the image")
                continue
            width, height = shape.image.width, shape.image.height
            rows.append(
                f"{found[0]} {(box.xmin + box.xmax) / 2 / width:.6f} {(box.ymin + box.ymax) / 2 / height:.6f} "
                f"{box.width / width:.6f} {box.height / height:.6f}\n"
            )
            self.report.wrote(found[1], clipped=box != shape.envelope)
        label_path = self.out_dir / "labels" / f"{PurePosixPath(item.file_name).stem}.txt"
        label_path.write_text("".join(rows), encoding="utf-8")

    def close(self) -> None:
        classes = self.context.classes
        (self.out_dir / "classes.txt").write_text("".join(f"{name}\n" for name in _names_in_id_order(classes)),
                                                  encoding="utf-8")
        notes = {
            "categories": [{"id": class_id, "name": name} for class_id, name in classes.names_by_id],
            "info": {"version": "1.0", "contributor": "Label Studio, exported by lsflow",
                     "date_created": self.dataset_date},
        }
        (self.out_dir / "notes.json").write_bytes(orjson.dumps(notes, option=orjson.OPT_INDENT_2))

    @classmethod
    def check(cls, out_dir: Path, context: Any) -> list[CheckOutcome]:
        class_count = len((out_dir / "classes.txt").read_text(encoding="utf-8").splitlines())
        problems, rows = [], 0
        label_files = sorted((out_dir / "labels").glob("*.txt"))
        for path in label_files:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                rows += 1
                problem = _row_problem(line, class_count, BOX_COLUMNS)
                if problem:
                    problems.append(f"{path.name}:{number}: {problem}")
        report = orjson.loads((out_dir / "lsflow_report.json").read_bytes())
        missing = report["tasks"] - len(label_files)
        return [
            CheckOutcome("yolo_rows_valid", not problems, problems[:20], {"rows": rows, "classes": class_count}),
            CheckOutcome("yolo_label_per_image", missing == 0,
                         [f"{missing} exported tasks have no label file"] if missing else [],
                         {"label_files": len(label_files)}),
        ]


def _names_in_id_order(classes: Any) -> list[str]:
    """classes.txt line N is class id N; ids left free by `category` gaps get a placeholder name."""
    by_id = dict(classes.names_by_id)
    return [by_id.get(i, f"unused_{i}") for i in range(max(by_id, default=-1) + 1)]


def _row_problem(line: str, class_count: int, columns: int) -> str | None:
    parts = line.split()
    if len(parts) != columns:
        return f"{len(parts)} columns, expected {columns}"
    try:
        class_id = int(parts[0])
        values = [float(v) for v in parts[1:]]
    except ValueError:
        return "not numbers"
    if not 0 <= class_id < class_count:
        return f"class id {class_id} is not in classes.txt ({class_count} classes)"
    if any(not 0.0 <= v <= 1.0 for v in values):
        return f"coordinates outside [0, 1]: {parts[1:]}"
    return None
