"""Building Label Studio-shaped tasks for format tests, and running the real export pipeline on them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from lsflow.core.model.label_config import LabelConfig
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.pipeline.build import FormatResult
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.sources.export_file import iter_export_tasks
from lsflow.sources.media import MediaResolver
from lsflow_tests.paths import IMAGE_CONFIG

SIZE = (640, 480)


def region(region_id: str, kind: str, value: dict, size: tuple[int, int] | None = SIZE, **extra) -> dict:
    from_name = {"rectanglelabels": "label", "polygonlabels": "outline", "keypointlabels": "joints",
                 "brushlabels": "surface"}[kind]
    found = {"id": region_id, "from_name": from_name, "to_name": "image", "type": kind, "value": value,
             "origin": "manual", "image_rotation": 0, **extra}
    if size is not None:
        found.update(original_width=size[0], original_height=size[1])
    return found


def rectangle(region_id, x, y, width, height, label="Car", rotation=0.0, size=SIZE):
    return region(region_id, "rectanglelabels", {"x": x, "y": y, "width": width, "height": height,
                                                 "rotation": rotation, "rectanglelabels": [label]}, size)


def polygon(region_id, points, label="Road", size=SIZE):
    return region(region_id, "polygonlabels", {"points": points, "closed": True, "polygonlabels": [label]}, size)


def keypoint(region_id, x, y, label, parent=None, size=SIZE):
    extra = {"parentID": parent} if parent else {}
    return region(region_id, "keypointlabels", {"x": x, "y": y, "width": 0.5, "keypointlabels": [label]}, size,
                  **extra)


def brush(region_id, rle, label="Road", size=SIZE):
    return region(region_id, "brushlabels", {"format": "rle", "rle": rle, "brushlabels": [label]}, size)


def annotation(annotation_id, result, completed_by=1, updated_at="2025-10-02T09:00:00Z", **extra):
    return {"id": annotation_id, "completed_by": completed_by, "result": result, "was_cancelled": False,
            "ground_truth": False, "created_at": updated_at, "updated_at": updated_at, **extra}


def task(task_id, annotations, image=None):
    return {"id": task_id, "data": {"image": image or f"/data/upload/1/task-{task_id}.jpg"},
            "annotations": annotations, "predictions": [], "updated_at": "2025-10-02T09:00:00Z"}


def run(tmp_path: Path, tasks: list[dict] | Path, formats: list[str], config: str | Path = IMAGE_CONFIG,
        media_root: Path | None = None, policy: str = "all",
        options: dict[str, str] | None = None) -> dict[str, FormatResult]:
    """Export `tasks` (task dicts, or an export file) with lsflow's pipeline into `tmp_path/out`,
    with the writer `options` given (`{"voc_pixel_origin": "0"}`)."""
    if isinstance(tasks, Path):
        export_file = tasks
    else:
        tmp_path.mkdir(parents=True, exist_ok=True)
        export_file = tmp_path / "export.json"
        export_file.write_text(json.dumps(tasks))
    label_config = LabelConfig.from_file(config) if isinstance(config, Path) else LabelConfig.parse(config)
    with MediaResolver(media_root, cache_dir=tmp_path / "media-cache") as media:
        context = export_context(label_config, lambda: iter_export_tasks(export_file), "1", media)
        context = replace(context, options=options or {})
        return export_datasets(iter_export_tasks(export_file), formats, tmp_path / "out", context,
                               AnnotationPolicy.parse(policy))


def rows(result: FormatResult, stem: str) -> list[list[float]]:
    """The rows of a YOLO-family label file, wherever its split put it."""
    (label_file,) = result.path.glob(f"labels/*/{stem}.txt")
    return [[float(v) for v in line.split()] for line in label_file.read_text().splitlines()]


def files_mapping(result: FormatResult) -> dict[int, dict]:
    lines = (result.path / "lsflow_files.jsonl").read_text().splitlines()
    return {entry["task"]: entry for entry in map(json.loads, lines)}


def dropped(result: FormatResult) -> list[dict]:
    return [json.loads(line) for line in (result.path / "lsflow_dropped.jsonl").read_text().splitlines()]
