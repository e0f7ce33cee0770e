"""VOC: envelope boxes in whole pixels, polygons as their envelope, one XML per task, mapping."""

import xml.etree.ElementTree as ElementTree

from lsflow.core.pipeline.context import export_context
from lsflow.core.formats import writer_class
from lsflow.core.model.label_config import LabelConfig
from lsflow_tests.core.formats.exporting import annotation, dropped, files_mapping, polygon, rectangle, run, task
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT


def objects(path):
    root = ElementTree.parse(path).getroot()
    return [(o.findtext("name"), o.findtext("truncated"),
             [int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]) for o in root.iter("object")]


def test_polygons_become_their_envelope_and_boxes_cover_whole_pixels(tmp_path):
    # 640×480: the triangle spans x 10.5%..50% = 67.2..320 px, y 20%..80.1% = 96..384.48 px.
    tasks = [task(1, [annotation(10, [
        polygon("tri", [[10.5, 20], [50, 20], [30, 80.1]]),
        rectangle("box", 10.1, 10.1, 20, 20),  # 64.64..192.64 × 48.48..144.48 px
        rectangle("edge", 90, 90, 20, 20),  # 576..704 × 432..528 px, cut at 640 × 480
    ])])]
    result = run(tmp_path, tasks, ["VOC"])["VOC"]
    assert objects(result.path / "Annotations" / "task-1.xml") == [
        ("Road", "0", [67, 96, 320, 385]),
        ("Car", "0", [64, 48, 193, 145]),
        ("Car", "1", [576, 432, 640, 480]),
    ]
    assert files_mapping(result)[1]["label_files"] == ["Annotations/task-1.xml"]
    assert result.report["regions_clipped"] == 1 and not dropped(result)


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
