"""Differential tests: lsflow against `label_studio_sdk.converter.Converter` on the same input.

Where the SDK is right (axis-aligned rectangles, polygons, keypoints, oriented corners inside the
image) the numbers must be identical, parsed from both outputs and compared with a tolerance of
1e-6 (lsflow writes six decimals). Where lsflow differs on purpose, the test shows what the SDK does
and why lsflow does otherwise. Inputs: the SDK's own test corpus (skipped when absent) and the sample.
"""

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from label_studio_sdk.converter import Converter

from lsflow_tests.core.formats.exporting import rows, run
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT, PEER_CORPUS

YOLO_CORPUS = PEER_CORPUS / "test_export_yolo"
COCO_CORPUS = PEER_CORPUS / "test_export_coco"
needs_corpus = pytest.mark.skipif(not PEER_CORPUS.is_dir(), reason=f"peer corpus not found at {PEER_CORPUS}")
TOLERANCE = 1e-6


def sdk_convert(tmp_path: Path, config: Path | str, export: Path, fmt: str) -> Path:
    out = tmp_path / f"sdk-{fmt}-{len(list(tmp_path.glob('sdk-*')))}"
    out.mkdir(parents=True)
    Converter(config=str(config), project_dir=None, download_resources=False).convert(
        str(export), str(out), fmt, is_dir=False)
    return out


def sdk_rows(out: Path) -> dict[str, list[list[float]]]:
    """Rows per image stem; the SDK prefixes a hash (`718f1d05__image1`) when it cannot find the file."""
    found = {}
    for path in (out / "labels").glob("*.txt"):
        lines = path.read_text().splitlines()
        found[path.stem.split("__")[-1]] = [[float(v) for v in line.split()] for line in lines if line.strip()]
    return found


def sdk_rows_per_annotation(tmp_path: Path, config: Path | str, export: Path, fmt: str) -> dict[str, list]:
    """What the SDK writes for each annotation on its own, gathered per image: it keeps only one
    annotation per task when given several, so each is fed to it alone."""
    tasks = json.loads(export.read_text())
    tmp_path.mkdir(parents=True, exist_ok=True)
    gathered: dict[str, list] = defaultdict(list)
    for k in range(max(len(t["annotations"]) for t in tasks)):
        single = [{**t, "annotations": [t["annotations"][k]]} for t in tasks if len(t["annotations"]) > k]
        path = tmp_path / f"annotation-{k}.json"
        path.write_text(json.dumps(single))
        for stem, found in sdk_rows(sdk_convert(tmp_path, config, path, fmt)).items():
            gathered[stem] += found
    return gathered


def class_names(out: Path) -> list[str]:
    return (out / "classes.txt").read_text().splitlines()


def named(found: list[list[float]], names: list[str]) -> list[tuple]:
    """Rows with the class id replaced by its name (the SDK numbers classes alphabetically, lsflow in
    label-config order), sorted, for comparison."""
    return sorted((names[int(row[0])], *row[1:]) for row in found)


def assert_same_rows(ours: list[tuple], theirs: list[tuple]) -> None:
    assert len(ours) == len(theirs)
    for mine, sdk in zip(ours, theirs):
        assert mine[0] == sdk[0] and len(mine) == len(sdk)
        assert mine[1:] == pytest.approx(sdk[1:], abs=TOLERANCE)


@needs_corpus
def test_yolo_boxes_equal_the_sdk_for_every_annotation(tmp_path):
    config, export = YOLO_CORPUS / "label_config.xml", YOLO_CORPUS / "data.json"
    theirs = sdk_rows_per_annotation(tmp_path, config, export, "YOLO")
    sdk_names = class_names(next(tmp_path.glob("sdk-*")))
    result = run(tmp_path, export, ["YOLO"], config=config)["YOLO"]
    ours_names = class_names(result.path)
    assert set(theirs) == {"image1", "image2"}
    for stem, found in theirs.items():
        assert_same_rows(named(rows(result, stem), ours_names), named(found, sdk_names))


@needs_corpus
def test_with_two_annotations_the_sdk_keeps_the_oldest_and_lsflow_keeps_both(tmp_path):
    """Deliberate difference: the SDK writes each annotation's rows to the same file, so the last one
    it visits (the oldest, after sorting newest first) silently wins. lsflow's default policy `all`
    keeps every annotation; `latest` keeps the newest."""
    config, export = YOLO_CORPUS / "label_config.xml", YOLO_CORPUS / "data.json"
    sdk_names = class_names(sdk_convert(tmp_path, config, export, "YOLO"))
    whole = named(sdk_rows(next(tmp_path.glob("sdk-*")))["image1"], sdk_names)
    per_annotation = sdk_rows_per_annotation(tmp_path / "each", config, export, "YOLO")["image1"]
    oldest = named(per_annotation[:2], sdk_names)  # task 1's first annotation is its oldest
    assert whole == oldest
    result = run(tmp_path / "all", export, ["YOLO"], config=config)["YOLO"]
    assert len(rows(result, "image1")) == 4
    latest = run(tmp_path / "latest", export, ["YOLO"], config=config, policy="latest")["YOLO"]
    assert_same_rows(named(rows(latest, "image1"), class_names(latest.path)),
                     named(per_annotation[2:], sdk_names))


@needs_corpus
def test_yolo_seg_polygons_equal_the_sdk_polygon_rows(tmp_path):
    config, export = YOLO_CORPUS / "label_config_polygons.xml", YOLO_CORPUS / "data_polygons.json"
    out = sdk_convert(tmp_path, config, export, "YOLO")
    result = run(tmp_path, export, ["YOLO_SEG"], config=config)["YOLO_SEG"]
    (stem,) = sdk_rows(out)
    assert_same_rows(named(rows(result, stem), class_names(result.path)), named(sdk_rows(out)[stem], class_names(out)))


@needs_corpus
def test_yolo_obb_equals_the_sdk_where_corners_lie_inside_and_is_clamped_where_not(tmp_path):
    """Deliberate difference: the SDK leaves corners outside the image (values beyond [0, 1], which
    Ultralytics rejects: it skips the whole image); lsflow moves them onto the edge."""
    # The corpus labels its boxes `Butterfly` while its config says `butterfly`: name both, for both tools.
    config = (YOLO_CORPUS / "label_config_obb.xml").read_text().replace(
        '<Label value="butterfly" background="green"/>',
        '<Label value="butterfly" background="green"/><Label value="Butterfly"/>')
    config_path = tmp_path / "config.xml"
    config_path.write_text(config)
    export = YOLO_CORPUS / "data_obb.json"
    out = sdk_convert(tmp_path, config_path, export, "YOLO_OBB")
    result = run(tmp_path, export, ["YOLO_OBB"], config=config_path)["YOLO_OBB"]
    theirs, outside = sdk_rows(out), 0
    assert len(theirs) == 3
    for stem, found in theirs.items():
        sdk = named(found, class_names(out))
        outside += sum(1 for row in sdk if min(row[1:]) < 0 or max(row[1:]) > 1)
        clamped = [(row[0], *np.clip(row[1:], 0, 1)) for row in sdk]
        assert_same_rows(named(rows(result, stem), class_names(result.path)), sorted(clamped))
    assert result.report["regions_clipped"] == outside


@needs_corpus
def test_yolo_pose_rows_equal_the_sdk_keypoint_rows(tmp_path):
    config, export = YOLO_CORPUS / "label_config_keypoints.xml", YOLO_CORPUS / "data_keypoints.json"
    out = sdk_convert(tmp_path, config, export, "YOLO")
    result = run(tmp_path, export, ["YOLO_POSE"], config=config)["YOLO_POSE"]
    assert_same_rows(named(rows(result, "image1"), class_names(result.path)),
                     named(sdk_rows(out)["image1"], class_names(out)))


@needs_corpus
def test_coco_boxes_polygons_and_keypoints_equal_the_sdk(tmp_path):
    config, export = COCO_CORPUS / "label_config.xml", COCO_CORPUS / "data.json"
    sdk = json.loads((sdk_convert(tmp_path, config, export, "COCO") / "result.json").read_text())
    ours = json.loads((run(tmp_path, export, ["COCO"], config=config)["COCO"].path / "result.json").read_text())
    assert [(i["width"], i["height"]) for i in ours["images"]] == [(i["width"], i["height"]) for i in sdk["images"]]

    def by_kind(document):
        names = {c["id"]: c["name"] for c in document["categories"]}
        return {("keypoints" if "keypoints" in a else names[a["category_id"]]): a for a in document["annotations"]}

    theirs, mine = by_kind(sdk), by_kind(ours)
    for kind in ("rectangle_label", "polygon_label"):
        assert mine[kind]["bbox"] == pytest.approx(theirs[kind]["bbox"], abs=TOLERANCE)
        assert mine[kind]["area"] == pytest.approx(theirs[kind]["area"], abs=TOLERANCE)
        assert mine[kind]["segmentation"] == [pytest.approx(s, abs=TOLERANCE) for s in theirs[kind]["segmentation"]]
    # The SDK rounds keypoints to whole pixels; lsflow keeps Label Studio's sub-pixel position.
    assert mine["keypoints"]["keypoints"] == pytest.approx(theirs["keypoints"]["keypoints"], abs=0.5)
    assert mine["keypoints"]["num_keypoints"] == theirs["keypoints"]["num_keypoints"] == 2


def test_coco_category_ids_are_the_sdks_plus_1_unless_label_studio_numbering_is_asked_for(tmp_path):
    """Deliberate difference: Label Studio numbers COCO categories from 0, which Datumaro, torchvision's
    detection models and CVAT read as "no class"; lsflow numbers them from 1. `coco_first_category_id=0`
    gives Label Studio's ids (the sample's classes are in sorted order, so the SDK's order is the config's)."""
    sdk = json.loads((sdk_convert(tmp_path, IMAGE_CONFIG, IMAGE_EXPORT, "COCO") / "result.json").read_text())
    classes = ("Car", "Person", "Road")
    theirs = {c["name"]: c["id"] for c in sdk["categories"] if c["name"] in classes}
    assert sorted(theirs.values()) == [0, 1, 2]
    for options, shift in (({}, 1), ({"coco_first_category_id": "0"}, 0)):
        result = run(tmp_path / str(shift), IMAGE_EXPORT, ["COCO"], options=options)["COCO"]
        ours = json.loads((result.path / "result.json").read_text())
        assert {c["name"]: c["id"] for c in ours["categories"] if c["name"] in classes} == {
            name: category_id + shift for name, category_id in theirs.items()}
        # The classes the boxes carry are the same in both (the SDK's and lsflow's names of their ids).
        sdk_names, our_names = ({c["id"]: c["name"] for c in d["categories"]} for d in (sdk, ours))
        assert {our_names[a["category_id"]] for a in ours["annotations"]} & set(classes) == \
            {sdk_names[a["category_id"]] for a in sdk["annotations"]} & set(classes)


def sample_config_without_keypoints(tmp_path: Path) -> Path:
    """The sample config minus its KeyPointLabels: with keypoints in the config the SDK's YOLO export
    writes pose rows instead of boxes."""
    config = IMAGE_CONFIG.read_text()
    start, end = config.index("  <KeyPointLabels"), config.index("</KeyPointLabels>") + len("</KeyPointLabels>\n")
    path = tmp_path / "config-without-keypoints.xml"
    path.write_text(config[:start] + config[end:])
    return path


def test_sample_upright_boxes_inside_the_image_equal_the_sdk(tmp_path):
    config = sample_config_without_keypoints(tmp_path)
    out = sdk_convert(tmp_path, config, IMAGE_EXPORT, "YOLO")
    result = run(tmp_path, IMAGE_EXPORT, ["YOLO"], config=config)["YOLO"]
    # The crossing (a Car box; its brush masks are not the SDK's YOLO's business either), the
    # prediction-only road and the unlabeled task.
    for stem in ("e5f6a7b8-crossing", "b7e8f901-road", "c2d3e4f5-empty"):
        assert_same_rows(named(rows(result, stem), class_names(result.path)),
                         named(sdk_rows(out)[stem], class_names(out)))
    assert len(rows(result, "e5f6a7b8-crossing")) == 1


def test_sample_pose_rows_equal_the_sdk_for_the_annotation_it_keeps(tmp_path):
    out = sdk_convert(tmp_path, IMAGE_CONFIG, IMAGE_EXPORT, "YOLO")  # keypoints in the config: pose rows
    # Task 102 has two annotations; the SDK keeps the oldest (1002, by annotator 1).
    result = run(tmp_path, IMAGE_EXPORT, ["YOLO_POSE"], policy="annotator:1")["YOLO_POSE"]
    (theirs,) = sdk_rows(out)["8c1d2e3f-person"]
    assert_same_rows(named(rows(result, "8c1d2e3f-person"), class_names(result.path)),
                     named([theirs], class_names(out)))


def test_where_the_sdk_is_wrong_the_sample_shows_why_lsflow_differs(tmp_path):
    config = sample_config_without_keypoints(tmp_path)
    out = sdk_convert(tmp_path, config, IMAGE_EXPORT, "YOLO")
    result = run(tmp_path, IMAGE_EXPORT, ["YOLO"], config=config)["YOLO"]
    theirs, ours = sdk_rows(out)["3f2a1b9c-street"], rows(result, "3f2a1b9c-street")
    # 1. The SDK puts the Road polygon's 4 vertices into the box file: a 9-column row among 5-column
    #    ones, which Ultralytics reads as a segment and turns every box of the image into one.
    assert sorted(len(row) for row in theirs) == [5, 5, 5, 9]
    assert [len(row) for row in ours] == [5, 5, 5, 5]
    # 2. The SDK ignores rotation: region r002 (96×48 px at (256, 288), turned 30°) keeps its upright
    #    size; lsflow writes the envelope of the turned corners (worked out in test_geometry.py).
    c30 = math.sqrt(3) / 2
    upright = [0, (256 + 48) / 640, (288 + 24) / 480, 96 / 640, 48 / 480]
    envelope = [0, (232 + 256 + 96 * c30) / 2 / 640, (288 + 288 + 48 + 48 * c30) / 2 / 480,
                (256 + 96 * c30 - 232) / 640, (48 + 48 * c30) / 480]
    assert any(row == pytest.approx(upright, abs=TOLERANCE) for row in theirs)
    assert any(row == pytest.approx(envelope, abs=TOLERANCE) for row in ours)
    # 3. The SDK does not clip: r003 runs from 576 to 696 px in a 640 px wide image.
    assert any(row[1] + row[3] / 2 > 1 for row in theirs if len(row) == 5)
    assert all(row[1] + row[3] / 2 <= 1 + TOLERANCE for row in ours)
    # 4. Tasks 107 and 108 both show a `frame_0001.jpg`: the SDK writes both to one label file, the
    #    second overwriting the first; lsflow gives the second its own name.
    assert [len(row) for row in sdk_rows(out)["frame_0001"]] == [9, 5]  # task 108's polygon and Car only
    assert [r[0] for r in rows(result, "frame_0001")] == [0, 1]  # task 107: Car, Person
    assert [r[0] for r in rows(result, "frame_0001__task108")] == [2, 0]  # task 108: Road, Car
