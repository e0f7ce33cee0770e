"""The dataset card: README.md and lsflow_card/*.png, written for real datasets of the image sample."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ElementTree
from array import array
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from PIL import Image

from lsflow.core.formats.shared.ultralytics import split_of
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.pipeline.versions import CARD_DIR, CARD_FILE
from lsflow.project import card
from lsflow.project.card import (
    CAPTION,
    IMAGE_LOOKUPS,
    TILE,
    _smallest_with_image,
    class_colours,
    size_category,
    write_card,
)
from lsflow.project.convert import convert_export
from lsflow.project.datasets import DatasetOptions
from lsflow.sources.media import MediaResolver
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT, SAMPLE_MEDIA

FORMATS = ["COCO", "COCO_WITH_IMAGES", "YOLO", "VOC", "JSON_MIN"]
VISION = {"COCO", "COCO_WITH_IMAGES", "YOLO", "VOC"}
SCHEMA = pa.schema([
    ("task_id", pa.int64()), ("split", pa.string()), ("content_hash", pa.string()), ("image_ref", pa.string()),
    ("updated_at", pa.string()), ("labels", pa.list_(pa.string())),
    ("annotations", pa.list_(pa.struct([("id", pa.int64()), ("annotator", pa.string()),
                                        ("updated_at", pa.string()), ("ground_truth", pa.bool_())]))),
])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    with MediaResolver(SAMPLE_MEDIA, cache_dir=root / "cache") as media:
        convert_export(IMAGE_EXPORT, FORMATS, root / "out", LabelConfig.from_file(IMAGE_CONFIG), media,
                       DatasetOptions(workers=1))
    return root


@pytest.fixture
def media(tmp_path):
    with MediaResolver(SAMPLE_MEDIA, cache_dir=tmp_path / "cache") as resolver:
        yield resolver


def dataset(built: Path, format_name: str, tmp_path: Path) -> Path:
    """A private copy of the format's folder: each test writes its own card."""
    return Path(shutil.copytree(built / "out" / format_name, tmp_path / format_name))


def tasks_table(format_name: str) -> pa.Table:
    """What the versions code records per task, built by hand from the export (cancelled ones left out)."""
    rows: dict[str, list] = {name: [] for name in SCHEMA.names}
    for task in json.loads(IMAGE_EXPORT.read_text()):
        chosen = [a for a in task["annotations"] if not a.get("was_cancelled")]
        rows["task_id"].append(task["id"])
        rows["split"].append(split_of(task["id"]) if format_name.startswith("YOLO") else None)
        rows["content_hash"].append(f"hash-{task['id']}")
        rows["image_ref"].append(task["data"].get("image"))
        rows["updated_at"].append(task.get("updated_at"))
        rows["labels"].append([values[0] for a in chosen for region in a["result"]
                               for key, values in region["value"].items() if key.endswith("labels") and values])
        rows["annotations"].append([{"id": a["id"], "annotator": str(a["completed_by"]), "updated_at": a["updated_at"],
                                     "ground_truth": bool(a.get("ground_truth"))} for a in chosen])
    return pa.table(rows, schema=SCHEMA)


def manifest(format_name: str, options: dict | None = None) -> dict:
    return {"version": "0123456789abcdef", "format": format_name, "created_at": "2025-11-01T10:00:00+00:00",
            "previous_version": "fedcba9876543210", "project_id": "1", "label_studio_url": "http://ls.example:8080",
            "snapshot": {"id": "20251101T095900Z", "md5": "d41d8cd98f00b204e9800998ecf8427e"},
            "label_config_sha256": "ab" * 32, "lsflow_version": "0.1.0", "annotation_policy": "all",
            "options": options or {}, "changes": {"tasks_added": 2, "tasks_removed": 1, "tasks_changed": 3}}


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])


def markdown_table(text: str, heading: str) -> tuple[list[str], list[list[str]]]:
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    return cells[0], cells[2:]


@pytest.mark.parametrize("format_name", FORMATS)
def test_card_sections_and_counts(built, tmp_path, media, format_name):
    folder = dataset(built, format_name, tmp_path)
    tasks = tasks_table(format_name)
    write_card(folder, manifest(format_name), tasks, media)
    text = (folder / CARD_FILE).read_text(encoding="utf-8")

    front = front_matter(text)
    assert front["tags"] == ["lsflow", "label-studio", format_name.lower()]
    assert front["size_categories"] == ["n<1K"]
    assert front["pretty_name"] == f"Label Studio project 1 ({format_name})"
    if format_name in VISION:
        assert front["task_categories"] == ["object-detection"]
    else:
        assert "task_categories" not in front
    for fact in ("0123456789abcdef", "fedcba9876543210", "20251101T095900Z", "d41d8cd98f00b204e9800998ecf8427e",
                 "0.1.0", "http://ls.example:8080/projects/1", "2 tasks added, 1 removed, 3 changed",
                 "lsflow_dropped.jsonl", "lsflow_version_files.parquet", "lsflow_version_tasks.parquet"):
        assert fact in text, fact

    # Classes per split: the table's numbers are the task table's.
    expected: dict[str, Counter] = {}
    for split, labels in zip(tasks.column("split").to_pylist(), tasks.column("labels").to_pylist()):
        for label in labels:
            expected.setdefault(label, Counter())[split or "all"] += 1
    header, rows = markdown_table(text, "Classes per split")
    splits = header[1:-2]
    assert splits == (["train", "val", "test"] if format_name.startswith("YOLO") else ["all"])
    report = json.loads((folder / "lsflow_report.json").read_text())
    by_class = {row[0]: row for row in rows if row[0] != "**total**"}
    assert set(by_class) == set(expected) | set(report["labels"])
    for name, row in by_class.items():
        counts = expected.get(name, Counter())
        assert [int(v) for v in row[1:-2]] == [counts[s] for s in splits], name
        assert int(row[-2]) == sum(counts.values())
        assert int(row[-1]) == report["labels"].get(name, 0)

    # Annotators and the date range.
    annotations = [a for task in tasks.column("annotations").to_pylist() for a in task]
    _, annotator_rows = markdown_table(text, "Annotators")
    assert {row[0]: int(row[1]) for row in annotator_rows} == Counter(a["annotator"] for a in annotations)
    dates = sorted(a["updated_at"] for a in annotations)
    assert f"between {dates[0]} and {dates[-1]}" in text

    # Drops by reason, from the report.
    if report["dropped_by_reason"]:
        _, drop_rows = markdown_table(text, "Drops")
        assert {row[0].replace("\\|", "|"): int(row[1]) for row in drop_rows} == report["dropped_by_reason"]
    else:
        assert "No region was dropped." in text

    with Image.open(folder / CARD_DIR / "class_counts.png") as chart:
        assert chart.format == "PNG" and chart.width == card.CHART_WIDTH and 100 < chart.height < 2000
    assert f"]({CARD_DIR}/class_counts.png)" in text
    preview = folder / CARD_DIR / "preview.png"
    if format_name in VISION:
        assert preview.is_file() and f"]({CARD_DIR}/preview.png)" in text
    else:
        assert not preview.exists()
        assert "No preview: JSON_MIN is not an image format." in text


def first_box(folder: Path, format_name: str) -> tuple[str, tuple[float, float, float, float]]:
    """Task 101's first upright box, in pixels, read from the dataset's own file (not from lsflow's code)."""
    if format_name.startswith("COCO"):
        result = json.loads((folder / "result.json").read_text())
        names = {c["id"]: c["name"] for c in result["categories"]}
        record = next(a for a in result["annotations"] if a["image_id"] == 101 and not a["segmentation"])
        x, y, w, h = record["bbox"]
        return names[record["category_id"]], (x, y, x + w, y + h)
    if format_name == "VOC":
        root = ElementTree.parse(folder / "Annotations" / "3f2a1b9c-street.xml").getroot()
        name = str(root.findtext("object/name"))
        xmin, ymin, xmax, ymax = (int(str(root.findtext(f"object/bndbox/{k}"))) for k in ("xmin", "ymin", "xmax", "ymax"))
        return name, (xmin - 1, ymin - 1, xmax, ymax)  # 1-based inclusive pixels → edges
    classes = (folder / "classes.txt").read_text().splitlines()
    label = next(folder.glob("labels/*/3f2a1b9c-street.txt"))
    class_id, *values = label.read_text().splitlines()[0].split()
    width, height = 640, 480
    xc, yc, w, h = (float(v) * size for v, size in zip(values, (width, height, width, height)))
    return classes[int(class_id)], (xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2)


@pytest.mark.parametrize("format_name", ["COCO", "COCO_WITH_IMAGES", "YOLO", "VOC"])
def test_preview_draws_the_datasets_boxes(built, tmp_path, media, format_name):
    folder = dataset(built, format_name, tmp_path)
    tasks = tasks_table(format_name)
    # COCO_WITH_IMAGES holds its images: no media lookup needed.
    write_card(folder, manifest(format_name), tasks, None if format_name == "COCO_WITH_IMAGES" else media)
    report = json.loads((folder / "lsflow_report.json").read_text())
    colours = class_colours([*(label for labels in tasks.column("labels").to_pylist() for label in labels),
                             *report["labels"]])
    name, (left, top, right, bottom) = first_box(folder, format_name)
    colour = colours[name]
    with Image.open(folder / CARD_DIR / "preview.png") as opened:
        preview = opened.convert("RGB")
    assert preview.width == 3 * TILE + 2 * 6  # 6 tasks with shapes: a 3 × 2 grid
    # Task 101 (640 × 480) is the first tile, scaled by 320 / 640; its left edge's middle is drawn in its colour.
    scale = TILE / 640
    x, y = round(left * scale), round(CAPTION + (top + bottom) / 2 * scale)
    around = {preview.getpixel((x + dx, y + dy)) for dx in range(-2, 3) for dy in range(-2, 3)}
    assert colour in around, (name, colour, around)
    # ... and not the middle of the box (the image shows through: boxes are outlines).
    middle = preview.getpixel((round((left + right) / 2 * scale), round(CAPTION + (top + bottom) / 2 * scale)))
    assert middle != colour


def test_voc_pixel_origin_zero_moves_the_box(built, tmp_path, media):
    """With voc_pixel_origin=0 the same numbers are edges: the card must not subtract the 1."""
    folder = dataset(built, "VOC", tmp_path)
    tasks = tasks_table("VOC")
    write_card(folder, manifest("VOC", {"voc_pixel_origin": "1"}), tasks, media)
    one_based = (folder / CARD_DIR / "preview.png").read_bytes()
    write_card(folder, manifest("VOC", {"voc_pixel_origin": "0"}), tasks, media)
    assert (folder / CARD_DIR / "preview.png").read_bytes() != one_based


def test_same_inputs_same_bytes(built, tmp_path, media):
    folder = dataset(built, "YOLO", tmp_path)
    tasks = tasks_table("YOLO")
    write_card(folder, manifest("YOLO"), tasks, media)
    first = {p.relative_to(folder): p.read_bytes() for p in [folder / CARD_FILE, *(folder / CARD_DIR).iterdir()]}
    write_card(folder, manifest("YOLO"), tasks, media)
    second = {p.relative_to(folder): p.read_bytes() for p in [folder / CARD_FILE, *(folder / CARD_DIR).iterdir()]}
    assert first == second and len(first) == 3


def test_no_image_no_preview(built, tmp_path):
    """YOLO without copies and without media: no preview, and the card says why."""
    folder = dataset(built, "YOLO", tmp_path)
    write_card(folder, manifest("YOLO"), tasks_table("YOLO"), None)
    assert not (folder / CARD_DIR / "preview.png").exists()
    assert "No preview: no task with exported shapes has an image" in (folder / CARD_FILE).read_text()


def test_empty_task_table(built, tmp_path):
    folder = dataset(built, "JSON_MIN", tmp_path)
    write_card(folder, {**manifest("JSON_MIN"), "previous_version": None, "changes": None}, SCHEMA.empty_table())
    text = (folder / CARD_FILE).read_text()
    assert "No annotations." in text and "| Previous version | none |" in text
    with Image.open(folder / CARD_DIR / "class_counts.png") as chart:
        assert chart.width == card.CHART_WIDTH


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 20_000, 2_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "10K<n<100K", "1M<n<10M"]


def test_coco_preview_keeps_the_smallest_annotated_ids_with_an_image_across_batches():
    """The COCO preview's scan keeps a bounded list of annotated image ids, cut down batch by batch: the
    result must be what sorting every annotated id with an image record would give."""
    rng = np.random.default_rng(3)
    images = np.unique(rng.integers(0, 50_000, 20_000))
    annotated = rng.integers(0, 60_000, 30_000)  # some without an image record
    kept = np.zeros(0, dtype=np.int64)
    for part in np.array_split(annotated, 7):
        kept = _smallest_with_image(kept, array("q", part.tolist()), images)
    expected = np.unique(annotated[np.isin(annotated, images)])[:IMAGE_LOOKUPS]
    assert kept.tolist() == expected.tolist() and len(kept) == IMAGE_LOOKUPS
