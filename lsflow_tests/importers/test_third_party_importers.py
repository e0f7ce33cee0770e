"""lsflow's COCO, VOC and YOLO, loaded by Datumaro and supervision as a user would load them.

A small Label Studio export is built here (real images written by Pillow, rectangles upright, rotated,
clipped at every edge, rotated and clipped, and a task annotated twice), converted by lsflow's
pipeline, and loaded by each importer in its own virtualenv (`load_with_importer.py`, run with
`importer_python`). Every box the importer reads must carry the class and the pixel coordinates
computed below from the percents and image sizes alone — none of lsflow's geometry is used.

Tolerances, in pixels:
- COCO: lsflow writes full-precision floats. supervision holds boxes as float32 (one unit in the
  last place is 6.1e-5 px below 1024 px): 1e-3. Datumaro rounds every coordinate to 2 decimals
  (`COORDINATE_ROUNDING_DIGITS`): at most 0.005 px off, so 0.01.
- YOLO: lsflow writes normalized centres and sizes with 6 decimals, each at most 5e-7 off; a corner
  (centre − size / 2) at most 7.5e-7 × 640 px = 4.8e-4 px: 1e-3 for supervision, 0.01 for Datumaro.
- VOC: whole pixels, compared exactly: the importer must give the edges of the pixels that cover the
  box, floor of the minimum and ceil of the maximum (0-based edges), or be off by the one pixel the
  test states for that importer and convention.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from lsflow_tests.core.formats.exporting import annotation, rectangle, run, task

LOADER = Path(__file__).with_name("load_with_importer.py")
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car"/><Label value="Person"/><Label value="Bike"/>
  </RectangleLabels>
</View>"""
# name → (width, height, Pillow format); the file names keep their stems in every format.
IMAGES = {"street.png": (640, 480, "PNG"), "lot.jpg": (300, 200, "JPEG"), "empty.png": (320, 240, "PNG")}
# (region id, label, x %, y %, width %, height %, rotation °) per image; each inner list one annotation.
ANNOTATIONS = {
    "street.png": [[
        ("upright", "Car", 10.3, 12.1, 20.2, 15.7, 0),  # class 0: COCO category 1, the one 0 would lose
        ("rotated", "Person", 50, 30, 15, 20, 30),
        ("clipped", "Bike", 85, 80, 25, 30, 0),  # past the right and bottom edges
        ("rotated-clipped", "Car", 70, 3, 20, 10, 330),  # turned 30° counter-clockwise: past the top edge
        ("left", "Person", -4, 60, 10, 15, 0),  # past the left edge
    ]],
    "lot.jpg": [  # two annotators: both annotations are exported (policy `all`)
        [("car-a", "Car", 10, 20, 30, 25, 0), ("bike", "Bike", 60, 50, 20, 40, 45)],
        [("car-b", "Car", 12.5, 21, 29, 24, 0), ("person", "Person", 80, 70, 30, 40, 0)],
    ],
    "empty.png": [],  # a background image: no boxes, but listed
}
SUPERVISION_TOLERANCE, DATUMARO_TOLERANCE = 1e-3, 0.01
TOLERANCE = {"supervision": SUPERVISION_TOLERANCE, "datumaro": DATUMARO_TOLERANCE}


def pixel_box(x: float, y: float, width: float, height: float, rotation: float, image: tuple[int, int]):
    """The box an axis-aligned format holds for a Label Studio rectangle: the corners in pixels,
    turned `rotation` degrees clockwise about the top-left one (y points down), enveloped, and the
    envelope clipped to the image. Returns (x1, y1, x2, y2)."""
    image_width, image_height = image
    left, top = x / 100 * image_width, y / 100 * image_height
    w, h = width / 100 * image_width, height / 100 * image_height
    turn = math.radians(rotation)
    corners = [(left + dx * math.cos(turn) - dy * math.sin(turn), top + dx * math.sin(turn) + dy * math.cos(turn))
               for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
    xs, ys = [cx for cx, _ in corners], [cy for _, cy in corners]
    return (max(min(xs), 0), max(min(ys), 0), min(max(xs), image_width), min(max(ys), image_height))


def expected_boxes() -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    """image stem → [(class name, (x1, y1, x2, y2))], every region of every annotation."""
    return {Path(name).stem: [(label, pixel_box(x, y, w, h, turn, IMAGES[name][:2]))
                              for regions in ANNOTATIONS[name] for _, label, x, y, w, h, turn in regions]
            for name in IMAGES}


def build_export(root: Path, options: dict[str, str]) -> Path:
    """Write the images and the tasks, run lsflow; returns the folder holding each format's folder."""
    media = root / "media" / "upload" / "1"
    media.mkdir(parents=True, exist_ok=True)
    for name, (width, height, kind) in IMAGES.items():
        Image.new("RGB", (width, height), (90, 120, 150)).save(media / name, kind)
    tasks = []
    for task_id, (name, per_annotator) in enumerate(ANNOTATIONS.items(), 1):
        size = IMAGES[name][:2]
        tasks.append(task(task_id, [
            annotation(task_id * 10 + number, [rectangle(rid, x, y, w, h, label=label, rotation=turn, size=size)
                                               for rid, label, x, y, w, h, turn in regions],
                       completed_by=number + 1)
            for number, regions in enumerate(per_annotator)], image=f"/data/upload/1/{name}"))
    results = run(root, tasks, ["COCO_WITH_IMAGES", "VOC", "YOLO_WITH_IMAGES"], config=CONFIG,
                  media_root=root / "media", options=options)
    for result in results.values():
        assert result.report["balanced"] and result.report["regions_dropped"] == 0, result.report
    # VOC's images/ is where the user puts the images (lsflow writes only the XML): as named in its files.
    voc = results["VOC"].path
    for line in (voc / "lsflow_files.jsonl").read_text().splitlines():
        entry = json.loads(line)
        shutil.copyfile(media / Path(entry["image"]).name, voc / entry["image_file"])
    return root / "out"


@pytest.fixture(scope="module")
def default_export(tmp_path_factory) -> Path:
    return build_export(tmp_path_factory.mktemp("defaults"), {})


@pytest.fixture(scope="module")
def label_studio_conventions(tmp_path_factory) -> Path:
    """The settings that keep Label Studio's numbering: categories from 0, 0-based VOC pixels."""
    return build_export(tmp_path_factory.mktemp("label-studio"),
                        {"coco_first_category_id": "0", "voc_pixel_origin": "0"})


def load(importer_python: Path, tool: str, fmt: str, dataset: Path, *extra: str) -> dict:
    done = subprocess.run([str(importer_python), str(LOADER), tool, fmt, str(dataset), *extra],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{tool} could not load {fmt} from {dataset}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def assert_boxes(loaded: dict, expected: dict, tolerance: float) -> None:
    """Every image, and in it every box with its class, as expected; boxes paired in (x1, y1) order
    (the test's boxes are pixels apart there)."""
    assert sorted(loaded["images"]) == sorted(expected)
    for stem, boxes in expected.items():
        found = sorted(loaded["images"][stem], key=lambda b: (round(b["box"][0]), round(b["box"][1])))
        wanted = sorted(boxes, key=lambda b: (round(b[1][0]), round(b[1][1])))
        assert [b["label"] for b in found] == [label for label, _ in wanted], stem
        for box, (label, values) in zip(found, wanted):
            assert box["box"] == pytest.approx(values, abs=tolerance), f"{stem}: {label}"


@pytest.mark.parametrize("tool", ["datumaro", "supervision"])
def test_coco_classes_and_boxes_read_right(importer_python, default_export, tool):
    loaded = load(importer_python, tool, "coco", default_export / "COCO_WITH_IMAGES")
    assert_boxes(loaded, expected_boxes(), TOLERANCE[tool])
    assert all(loaded["image_files"].values()), loaded["image_files"]  # every file_name leads to its image
    assert not [w for w in loaded["warnings"] if "reserved for no class" in w]


def test_label_studio_category_ids_lose_class_0_in_datumaro_but_not_in_supervision(
        importer_python, label_studio_conventions):
    """Why categories start at 1: with Label Studio's ids Datumaro reads category 0 (Car) as "no class"
    and warns; supervision maps the ids it finds, so both numberings load right there."""
    dataset = label_studio_conventions / "COCO_WITH_IMAGES"
    assert json.loads((dataset / "result.json").read_text())["categories"][0] == {"id": 0, "name": "Car"}
    datumaro = load(importer_python, "datumaro", "coco", dataset)
    lost = {stem: [(None if label == "Car" else label, box) for label, box in boxes]
            for stem, boxes in expected_boxes().items()}
    assert_boxes(datumaro, lost, DATUMARO_TOLERANCE)  # the boxes are right, the Car class is gone
    assert any("Category id of '0' is reserved for no class" in w for w in datumaro["warnings"])
    assert_boxes(load(importer_python, "supervision", "coco", dataset), expected_boxes(), SUPERVISION_TOLERANCE)


def covering_pixels(shift: int) -> dict:
    """The boxes as whole pixels, in 0-based edges: floor of the minimum (moved by `shift` pixels, the
    error an importer makes with a convention it does not expect), ceil of the maximum."""
    return {stem: [(label, (math.floor(x1) + shift, math.floor(y1) + shift, math.ceil(x2), math.ceil(y2)))
                   for label, (x1, y1, x2, y2) in boxes]
            for stem, boxes in expected_boxes().items()}


@pytest.mark.parametrize("origin, tool, mode, shift", [
    # lsflow's default, the VOC devkit's 1-based pixel numbers: right in supervision and in Datumaro's
    # `voc-one-based` mode; Datumaro's default mode takes the numbers as 0-based edges (one pixel in).
    (1, "supervision", None, 0),
    (1, "datumaro", "voc-one-based", 0),
    (1, "datumaro", "dm-zero-based", 1),
    # voc_pixel_origin=0, Label Studio's 0-based edges: right in Datumaro's default mode only;
    # supervision subtracts 1 (a box clipped at the left edge starts at -1).
    (0, "datumaro", "dm-zero-based", 0),
    (0, "datumaro", "voc-one-based", -1),
    (0, "supervision", None, -1),
])
def test_voc_boxes_as_each_importer_reads_each_pixel_origin(
        importer_python, default_export, label_studio_conventions, origin, tool, mode, shift):
    export = default_export if origin == 1 else label_studio_conventions
    loaded = load(importer_python, tool, "voc", export / "VOC", *(["--voc-mode", mode] if mode else []))
    assert_boxes(loaded, covering_pixels(shift), 0)
    if origin == 0 and tool == "supervision":
        assert min(box["box"][0] for box in loaded["images"]["street"]) == -1


@pytest.mark.parametrize("tool", ["datumaro", "supervision"])
def test_yolo_classes_and_boxes_read_right(importer_python, default_export, tool):
    loaded = load(importer_python, tool, "yolo", default_export / "YOLO_WITH_IMAGES")
    assert_boxes(loaded, expected_boxes(), TOLERANCE[tool])
    assert all(loaded["image_files"].values())


def test_the_settings_leave_yolo_alone(default_export, label_studio_conventions):
    """YOLO's class ids are 0-based in either case: that is Ultralytics' convention."""
    for export in (default_export, label_studio_conventions):
        assert (export / "YOLO_WITH_IMAGES" / "classes.txt").read_text().splitlines() == ["Car", "Person", "Bike"]
    for label_file in (default_export / "YOLO_WITH_IMAGES" / "labels").rglob("*.txt"):
        twin = label_studio_conventions / "YOLO_WITH_IMAGES" / label_file.relative_to(default_export / "YOLO_WITH_IMAGES")
        assert label_file.read_bytes() == twin.read_bytes()
