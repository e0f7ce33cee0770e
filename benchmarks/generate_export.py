"""A deterministic Label Studio 1.23-shaped image export of any size, for benchmarks.

    .venv/bin/python benchmarks/generate_export.py TASKS [--out benchmarks/out] [--seed 8]

Writes `<out>/export-<TASKS>.json` and `<out>/label_config.xml`. Tasks, annotations and regions carry
the fields a real Label Studio 1.23 JSON export has (compare `data/sample/projects/1/export.json`),
serialized the way Label Studio writes them (Python's `json`, `", "` / `": "` separators). Each task
has 1–2 annotations (some cancelled), each annotation 1–5 regions: axis-aligned rectangles, rotated
rectangles and polygons, a few of them crossing the image edge. 20 000 tasks give ~90 000 regions,
~51 MB. The same task count and seed always give the same bytes; tasks are written one at a time.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT_ID = 1
IMAGE_SIZES = ((1920, 1080), (1280, 720), (640, 480), (4032, 3024), (1024, 768))
BOX_LABELS = ("Car", "Person", "Bicycle", "Truck", "Traffic light")
POLYGON_LABELS = ("Road", "Sidewalk", "Building")
ANNOTATORS = (1, 2, 3, 4, 5, 6)
START = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

LABEL_CONFIG = f"""<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="label" toName="image">
{"".join(f'    <Label value="{name}"/>{chr(10)}' for name in BOX_LABELS)}  </RectangleLabels>
  <PolygonLabels name="outline" toName="image" strokeWidth="2">
{"".join(f'    <Label value="{name}"/>{chr(10)}' for name in POLYGON_LABELS)}  </PolygonLabels>
</View>
"""


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def region(rng: random.Random, width: int, height: int) -> dict:
    common = {"original_width": width, "original_height": height, "image_rotation": 0}
    region_id = "".join(rng.choice(ID_ALPHABET) for _ in range(10))
    kind = rng.random()
    if kind < 0.8:  # rectangles; a fifth of them rotated, a few crossing the right or bottom edge
        w, h = rng.uniform(2, 30), rng.uniform(2, 30)
        x, y = rng.uniform(0, 100 - w), rng.uniform(0, 100 - h)
        if rng.random() < 0.03:
            x = rng.uniform(100 - w, 100 - w / 3)
        rotation = rng.uniform(1, 359) if kind < 0.15 else 0
        value = {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                 "rectanglelabels": [rng.choice(BOX_LABELS)]}
        return {**common, "value": value, "id": region_id, "from_name": "label", "to_name": "image",
                "type": "rectanglelabels", "origin": "manual"}
    cx, cy, radius = rng.uniform(15, 85), rng.uniform(15, 85), rng.uniform(3, 20)
    corners = rng.randint(3, 7)
    points = []
    for step in range(corners):
        angle = math.tau * (step + rng.uniform(-0.3, 0.3)) / corners
        reach = radius * rng.uniform(0.6, 1.0)
        points.append([min(max(cx + reach * math.cos(angle), 0.0), 100.0), min(max(cy + reach * math.sin(angle), 0.0), 100.0)])
    value = {"points": points, "closed": True, "polygonlabels": [rng.choice(POLYGON_LABELS)]}
    return {**common, "value": value, "id": region_id, "from_name": "outline", "to_name": "image",
            "type": "polygonlabels", "origin": "manual"}


def annotation(rng: random.Random, annotation_id: int, task_id: int, created: datetime, size: tuple[int, int]) -> dict:
    cancelled = rng.random() < 0.02
    result = [] if cancelled else [region(rng, *size) for _ in range(rng.randint(1, 5) + (rng.random() < 0.3))]
    lead_time = round(rng.uniform(5, 400), 3)
    annotator = rng.choice(ANNOTATORS)
    return {
        "id": annotation_id, "completed_by": annotator, "result": result, "was_cancelled": cancelled,
        "ground_truth": rng.random() < 0.05, "created_at": timestamp(created),
        "updated_at": timestamp(created + timedelta(seconds=lead_time)), "draft_created_at": None,
        "lead_time": lead_time, "prediction": {}, "result_count": len(result),
        "unique_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "import_id": None,
        "last_action": None, "bulk_created": False, "task": task_id, "project": PROJECT_ID,
        "updated_by": annotator, "parent_prediction": None, "parent_annotation": None, "last_created_by": None,
    }


def task(rng: random.Random, task_id: int, first_annotation_id: int) -> dict:
    size = IMAGE_SIZES[rng.randrange(len(IMAGE_SIZES))]
    upload = f"{rng.getrandbits(32):08x}-frame_{task_id:06d}.jpg"
    created = START + timedelta(seconds=37 * task_id)
    annotations = [
        annotation(rng, first_annotation_id + n, task_id, created + timedelta(hours=2 + n, seconds=rng.randint(0, 3600)),
                   size)
        for n in range(1 if rng.random() < 0.6 else 2)
    ]
    return {
        "id": task_id, "annotations": annotations, "file_upload": upload, "drafts": [], "predictions": [],
        "data": {"image": f"/data/upload/{PROJECT_ID}/{upload}"}, "meta": {}, "created_at": timestamp(created),
        "updated_at": max(a["updated_at"] for a in annotations), "inner_id": task_id, "total_annotations": len(annotations),
        "cancelled_annotations": sum(a["was_cancelled"] for a in annotations), "total_predictions": 0,
        "comment_count": 0, "unresolved_comment_count": 0, "last_comment_updated_at": None, "project": PROJECT_ID,
        "updated_by": annotations[-1]["completed_by"], "comment_authors": [],
    }


def generate(tasks: int, out_dir: Path, seed: int = 8) -> Path:
    """Write the export (streamed, one task at a time) and its label config; returns the export path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "label_config.xml").write_text(LABEL_CONFIG, encoding="utf-8")
    path = out_dir / f"export-{tasks}.json"
    rng = random.Random(seed)
    annotation_id = 1
    with open(path, "w", encoding="utf-8") as out:
        out.write("[")
        for task_id in range(1, tasks + 1):
            item = task(rng, task_id, annotation_id)
            annotation_id += len(item["annotations"])
            out.write(("" if task_id == 1 else ", ") + json.dumps(item, ensure_ascii=False))
        out.write("]")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", type=int)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    path = generate(args.tasks, args.out, args.seed)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
