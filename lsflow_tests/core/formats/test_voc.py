"""VOC: envelope boxes in whole pixels (1-based by default, 0-based on request), polygons as their
envelope, one XML per task, mapping."""

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import replace

import pytest

from lsflow.core.formats import writer_class
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.pipeline.context import export_context
from lsflow_tests.core.formats.exporting import annotation, dropped, files_mapping, polygon, rectangle, run, task
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT


def objects(path):
    root = ElementTree.parse(path).getroot()
    return [(o.findtext("name"), o.findtext("truncated"),
             [int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]) for o in root.iter("object")]


def covering_pixels(xmin, ymin, xmax, ymax, origin):
    """The whole pixels a box in pixel edges touches: the first numbered from `origin`, the last as its
    1-based number (= its far edge counted from 0)."""
    return [math.floor(xmin) + origin, math.floor(ymin) + origin, math.ceil(xmax), math.ceil(ymax)]


@pytest.mark.parametrize("origin, options", [(1, {}), (1, {"voc_pixel_origin": "1"}), (0, {"voc_pixel_origin": "0"})])
def test_polygons_become_their_envelope_and_boxes_cover_whole_pixels(tmp_path, origin, options):
    # 640×480: the triangle spans x 10.5%..50% = 67.2..320 px, y 20%..80.1% = 96..384.48 px.
    tasks = [task(1, [annotation(10, [
        polygon("tri", [[10.5, 20], [50, 20], [30, 80.1]]),
        rectangle("box", 10.1, 10.1, 20, 20),  # 64.64..192.64 × 48.48..144.48 px
        rectangle("edge", 90, 90, 20, 20),  # 576..704 × 432..528 px, cut at 640 × 480
    ])])]
    result = run(tmp_path, tasks, ["VOC"], options=options)["VOC"]
    assert objects(result.path / "Annotations" / "task-1.xml") == [
        ("Road", "0", covering_pixels(67.2, 96, 320, 384.48, origin)),
        ("Car", "0", covering_pixels(64.64, 48.48, 192.64, 144.48, origin)),
        ("Car", "1", covering_pixels(576, 432, 640, 480, origin)),
    ]
    # The devkit's numbers, spelled out once: the clipped box's first pixel is 577 of 640, its last 640.
    assert objects(result.path / "Annotations" / "task-1.xml")[2][2] == (
        [577, 433, 640, 480] if origin == 1 else [576, 432, 640, 480])
    assert files_mapping(result)[1]["label_files"] == ["Annotations/task-1.xml"]
    assert result.report["regions_clipped"] == 1 and not dropped(result)
    context = replace(export_context(LabelConfig.from_file(IMAGE_CONFIG), list), options=options)
    (outcome,) = writer_class("VOC").check(result.path, context)
    assert outcome.passed and outcome.metadata["pixel_origin"] == origin


def test_a_box_inside_one_pixel_is_that_pixel_in_either_numbering(tmp_path):
    # 640 px wide: x 10.03%..10.1% = 64.192..64.64 px, all inside pixel 64 (0-based), 65 (1-based).
    tasks = [task(1, [annotation(10, [rectangle("thin", 10.03, 10.03, 0.07, 0.07)])])]
    one = objects(run(tmp_path / "1", tasks, ["VOC"])["VOC"].path / "Annotations" / "task-1.xml")
    zero = objects(run(tmp_path / "0", tasks, ["VOC"], options={"voc_pixel_origin": "0"})["VOC"].path
                   / "Annotations" / "task-1.xml")
    assert one[0][2][0] == one[0][2][2] == 65  # first pixel = last pixel, inclusive
    assert zero[0][2][0] == 64 and zero[0][2][2] == 65  # edges: 64 to 65


def test_the_check_reads_the_boxes_in_the_convention_they_were_written_in(tmp_path):
    tasks = [task(1, [annotation(10, [rectangle("corner", 0, 0, 10, 10)])])]  # starts at pixel 0 / 1
    result = run(tmp_path, tasks, ["VOC"], options={"voc_pixel_origin": "0"})["VOC"]
    config = LabelConfig.from_file(IMAGE_CONFIG)
    zero = replace(export_context(config, list), options={"voc_pixel_origin": "0"})
    assert writer_class("VOC").check(result.path, zero)[0].passed
    (outcome,) = writer_class("VOC").check(result.path, export_context(config, list))  # 1-based expected
    assert not outcome.passed
    assert outcome.problems == ["task-1.xml: box 0,0,64,48 is not a box inside 640x480 with pixels numbered "
                                "from 1 (voc_pixel_origin=1)"]


def test_an_unknown_pixel_origin_is_refused(tmp_path):
    tasks = [task(1, [annotation(10, [rectangle("r", 0, 0, 10, 10)])])]
    with pytest.raises(ValueError, match=r"option voc_pixel_origin='one': expected 1 or 0"):
        run(tmp_path, tasks, ["VOC"], options={"voc_pixel_origin": "one"})


def test_sample_voc_parses_and_drops_what_voc_cannot_hold(tmp_path):
    result = run(tmp_path, IMAGE_EXPORT, ["VOC"])["VOC"]
    assert {p.name for p in (result.path / "Annotations").iterdir()} >= {"frame_0001.xml", "frame_0001__task108.xml"}
    reasons = result.report["dropped_by_reason"]
    assert reasons["VOC has no keypoints"] == 4 and reasons["VOC has no masks"] == 2
    (outcome,) = writer_class("VOC").check(result.path, export_context(LabelConfig.from_file(IMAGE_CONFIG), list))
    # Task 105 has no regions and, without its image, no size: VOC cannot describe it.
    assert outcome.passed and outcome.metadata["files"] == 7
    assert result.report["images_skipped"] == {
        "image size unknown: no region carries it and the image is not reachable": 1}
