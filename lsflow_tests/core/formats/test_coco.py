"""COCO, COCO_WITH_IMAGES and BRUSH_TO_COCO: masks as RLE, keypoint order, images, checks."""

import contextlib
import io
import json
import random
from dataclasses import replace

import numpy as np
import pytest
from label_studio_sdk.converter import brush
from PIL import Image
from pycocotools.coco import COCO

from lsflow.core.formats import writer_class
from lsflow.core.formats.coco import _contains
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.pipeline.context import export_context
from lsflow_tests.core.formats.exporting import (
    annotation,
    dropped,
    files_mapping,
    keypoint,
    rectangle,
    run,
    task,
)
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT, SAMPLE_MEDIA


def load(result, file_name="result.json"):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(result.path / file_name))


def sample_masks():
    """Task 106's brush regions decoded by the SDK's own reader: {region id: painted pixels}."""
    (crossing,) = [t for t in json.loads(IMAGE_EXPORT.read_text()) if t["id"] == 106]
    masks = {}
    for region in crossing["annotations"][0]["result"]:
        if region["type"] == "brushlabels":
            flat = brush.decode_rle(region["value"]["rle"])
            masks[region["id"]] = flat.reshape(region["original_height"], region["original_width"], 4)[:, :, 3] > 0
    return masks


@pytest.mark.parametrize("name, file_name", [("COCO", "result.json"), ("BRUSH_TO_COCO", "result_coco.json")])
def test_brush_masks_are_rle_annotations_that_keep_their_holes(tmp_path, name, file_name):
    result = run(tmp_path, IMAGE_EXPORT, [name])[name]
    coco = load(result, file_name)
    expected = sample_masks()
    for region_id, painted in expected.items():
        (ann,) = [a for a in coco.dataset["annotations"] if a["label_studio"]["region"] == region_id]
        assert ann["segmentation"]["size"] == [240, 320] and ann["iscrowd"] == 0
        assert coco.cats[ann["category_id"]]["name"] == "Road"
        assert np.array_equal(coco.annToMask(ann).astype(bool), painted)
        assert ann["area"] == painted.sum()
        rows, columns = np.nonzero(painted)
        left, top = columns.min(), rows.min()
        assert ann["bbox"] == [left, top, columns.max() + 1 - left, rows.max() + 1 - top]
    # The traffic island (an ellipse around (165, 170)) is a hole in the road mask, not filled in.
    road = coco.annToMask(next(a for a in coco.dataset["annotations"] if a["label_studio"]["region"] == "r017xbrsh"))
    assert road[170, 165] == 0 and road[170, 100] == 1
    assert result.report["balanced"] and result.report["regions_dropped"] == 2  # the two choices


def test_keypoint_order_without_model_index_is_the_label_config_order_and_never_a_failure(tmp_path):
    config = """<View><Image name="image" value="$image"/>
      <RectangleLabels name="label" toName="image"><Label value="Person"/></RectangleLabels>
      <KeyPointLabels name="joints" toName="image"><Label value="tail"/><Label value="nose"/></KeyPointLabels>
    </View>"""
    tasks = [task(1, [annotation(10, [rectangle("p", 0, 0, 50, 50, label="Person"),
                                      keypoint("n", 10, 20, "nose", parent="p"),
                                      keypoint("t", 30, 40, "tail")])])]
    coco = load(run(tmp_path, tasks, ["COCO"], config=config)["COCO"])
    person, loose = coco.dataset["annotations"]
    assert coco.dataset["categories"][0]["keypoints"] == ["tail", "nose"]
    assert person["keypoints"] == pytest.approx([0, 0, 0, 64, 96, 2]) and person["num_keypoints"] == 1
    # The keypoint without a parent forms its own object in the extra `keypoints` category.
    assert coco.cats[loose["category_id"]]["name"] == "keypoints"
    assert loose["keypoints"] == pytest.approx([192, 192, 2, 0, 0, 0]) and loose["bbox"] == [192, 192, 0, 0]


def test_a_second_keypoint_of_the_same_name_is_dropped_not_written_over(tmp_path):
    tasks = [task(1, [annotation(10, [rectangle("p", 0, 0, 50, 50, label="Person"),
                                      keypoint("h1", 10, 10, "head", parent="p"),
                                      keypoint("h2", 20, 20, "head", parent="p")])])]
    result = run(tmp_path, tasks, ["COCO"])["COCO"]
    (person,) = load(result).dataset["annotations"]
    assert person["keypoints"][:3] == pytest.approx([64, 48, 2])
    assert [(d["region"], d["reason"]) for d in dropped(result)] == [
        ("h2", "a second 'head' keypoint for the same object")]


def test_coco_with_images_copies_each_image_where_file_name_points(tmp_path):
    result = run(tmp_path, IMAGE_EXPORT, ["COCO_WITH_IMAGES"], media_root=SAMPLE_MEDIA)["COCO_WITH_IMAGES"]
    coco = load(result)
    assert len(coco.imgs) == 8
    names = {image["file_name"] for image in coco.imgs.values()}
    assert {"images/frame_0001.jpg", "images/frame_0001__task108.jpg"} <= names
    for image in coco.imgs.values():
        with Image.open(result.path / image["file_name"]) as copied:
            copied.load()
            assert copied.size == (image["width"], image["height"])
    assert all(o.passed for o in writer_class("COCO_WITH_IMAGES").check(result.path, _context()))
    assert files_mapping(result)[108]["image_file"] == "images/frame_0001__task108.jpg"


def test_coco_with_images_leaves_out_a_task_whose_image_is_missing(tmp_path):
    tasks = [task(1, [annotation(10, [rectangle("r", 10, 10, 20, 20)])], image="/data/upload/1/gone.jpg")]
    result = run(tmp_path, tasks, ["COCO_WITH_IMAGES"], media_root=SAMPLE_MEDIA)["COCO_WITH_IMAGES"]
    coco = load(result)
    assert not coco.imgs and not coco.anns
    assert result.report["images_skipped"] == {"image file not available to copy into the dataset": 1}
    assert result.report["regions_dropped"] == 1 and result.report["balanced"]


def test_coco_check_catches_masks_of_the_wrong_size_and_boxes_outside_the_image(tmp_path):
    result = run(tmp_path, IMAGE_EXPORT, ["COCO"])["COCO"]
    assert all(o.passed for o in writer_class("COCO").check(result.path, _context()))
    path = result.path / "result.json"
    document = json.loads(path.read_text())
    mask = next(a for a in document["annotations"] if isinstance(a["segmentation"], dict))
    mask["segmentation"]["size"] = [120, 160]
    box = next(a for a in document["annotations"] if a["label_studio"]["region"] == "r001xbbbb")
    box["bbox"][0] = 630.0
    path.write_text(json.dumps(document))
    outcome, categories = writer_class("COCO").check(result.path, _context())
    assert categories.passed  # a wrong box or mask size is not the category check's business
    assert not outcome.passed
    assert any("mask size [120, 160] is not the image's [240, 320]" in p for p in outcome.problems)
    assert any("is not inside the 640x480 image" in p for p in outcome.problems)


def _context():
    return export_context(LabelConfig.from_file(IMAGE_CONFIG), lambda: [])


def test_whether_keypoints_added_their_category_is_read_right_across_chunks(tmp_path):
    """`result.json` lists the keypoint category only when a record uses it; the records are scanned a
    chunk at a time, so the marker may straddle two chunks."""
    rng = random.Random(3)
    for _ in range(400):
        data = bytes(rng.choice(b'ab,:"') for _ in range(rng.randint(0, 60)))
        marker = bytes(rng.choice(b'ab,:"') for _ in range(rng.randint(1, 6)))
        (tmp_path / "records").write_bytes(data)
        for chunk_size in (1, 2, 5, 1 << 20):
            assert _contains(tmp_path / "records", marker, chunk_size) == (marker in data)


CATEGORY_CONFIG = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car"/><Label value="Person"/><Label value="Bus" category="3"/>
  </RectangleLabels>
  <KeyPointLabels name="joints" toName="image"><Label value="nose"/></KeyPointLabels>
</View>"""
# Class ids from the config: Car 0, Person 1, Bus 3 (its `category`); id 2 is free.
CLASS_IDS = {"Car": 0, "Person": 1, "Bus": 3}


def category_tasks():
    return [task(1, [annotation(10, [rectangle("c", 0, 0, 10, 10, label="Car"),
                                      rectangle("p", 20, 20, 10, 10, label="Person"),
                                      rectangle("b", 40, 40, 10, 10, label="Bus"),
                                      keypoint("n", 70, 70, "nose")])])]


@pytest.mark.parametrize("name, file_name", [("COCO", "result.json"), ("BRUSH_TO_COCO", "result_coco.json")])
@pytest.mark.parametrize("first, options", [(1, {}), (1, {"coco_first_category_id": "1"}),
                                            (0, {"coco_first_category_id": "0"})])
def test_category_ids_start_at_1_unless_label_studios_0_is_asked_for(tmp_path, name, file_name, first, options):
    result = run(tmp_path, category_tasks(), [name], config=CATEGORY_CONFIG, options=options)[name]
    document = json.loads((result.path / file_name).read_text())
    keypoints_id = max(CLASS_IDS.values()) + 1 + first
    assert {c["id"]: c["name"] for c in document["categories"]} == {
        **{class_id + first: label for label, class_id in CLASS_IDS.items()}, keypoints_id: "keypoints"}
    by_region = {a["label_studio"]["region"]: a["category_id"] for a in document["annotations"] if a["bbox"][2]}
    assert by_region == {"c": CLASS_IDS["Car"] + first, "p": CLASS_IDS["Person"] + first,
                         "b": CLASS_IDS["Bus"] + first}
    (loose,) = [a for a in document["annotations"] if a["label_studio"]["region"] is None]
    assert loose["category_id"] == keypoints_id
    context = replace(export_context(LabelConfig.parse(CATEGORY_CONFIG), list), options=options)
    loads, categories = writer_class(name).check(result.path, context)
    assert loads.passed and categories.passed, categories.problems
    assert categories.metadata["first_category_id"] == first


def test_coco_with_images_numbers_its_categories_from_1_too(tmp_path):
    result = run(tmp_path, IMAGE_EXPORT, ["COCO_WITH_IMAGES"], media_root=SAMPLE_MEDIA)["COCO_WITH_IMAGES"]
    coco = load(result)
    names = LabelConfig.from_file(IMAGE_CONFIG).classes().names_by_id
    assert [(c["id"], c["name"]) for c in coco.dataset["categories"]][:len(names)] == [
        (class_id + 1, label) for class_id, label in names]
    outcomes = writer_class("COCO_WITH_IMAGES").check(result.path, _context())
    assert [o.name for o in outcomes] == ["coco_loads", "coco_category_ids", "images_readable"]
    assert all(o.passed for o in outcomes)


def test_the_category_check_refuses_ids_that_are_not_the_convention_asked_for(tmp_path):
    result = run(tmp_path, category_tasks(), ["COCO"], config=CATEGORY_CONFIG,
                 options={"coco_first_category_id": "0"})["COCO"]
    config = LabelConfig.parse(CATEGORY_CONFIG)
    _, categories = writer_class("COCO").check(result.path, export_context(config, list))  # 1 expected
    assert not categories.passed
    assert categories.problems[0] == ("category 0 ('Car') is below coco_first_category_id=1: Datumaro, "
                                      "torchvision and CVAT read category 0 as no class")
    assert "category 1 is 'Person'; with coco_first_category_id=1 it is 'Car'" in categories.problems
    # An annotation pointing at a category the file does not list is caught as well.
    path = result.path / "result.json"
    document = json.loads(path.read_text())
    document["annotations"][0]["category_id"] = 9
    path.write_text(json.dumps(document))
    zero = replace(export_context(config, list), options={"coco_first_category_id": "0"})
    _, categories = writer_class("COCO").check(result.path, zero)
    assert categories.problems == ["1 annotations have category 9, which is not listed"]


def test_an_unknown_first_category_id_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"option coco_first_category_id='2': expected 1 or 0"):
        run(tmp_path, category_tasks(), ["COCO"], config=CATEGORY_CONFIG, options={"coco_first_category_id": "2"})
