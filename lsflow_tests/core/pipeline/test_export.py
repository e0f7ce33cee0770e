"""The export pipeline on the embedded sample: one pass, correct geometry, nothing lost silently."""

import json
import math
import xml.etree.ElementTree as ElementTree

import pytest
from pycocotools.coco import COCO

from lsflow.core.model.label_config import LabelConfig
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import ExportFormatError
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.core.pipeline.naming import TaskFileNames
from lsflow.sources.export_file import iter_export_tasks
from lsflow.sources.media import MediaResolver
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT, SAMPLE_MEDIA

COS30 = math.sqrt(3) / 2
# Region r002xcccc of task 101: 15% × 10% of a 640×480 image at (40%, 60%), turned 30° clockwise,
# is 96×48 px at (256, 288); its corners are worked out in test_geometry.py.
ROTATED_ENVELOPE = (232.0, 288.0, 256 + 96 * COS30, 288 + 48 + 48 * COS30)


def export(tmp_path, formats, policy="all", export_file=IMAGE_EXPORT, media=None):
    context = export_context(LabelConfig.from_file(IMAGE_CONFIG), lambda: iter_export_tasks(export_file), "1", media)
    return export_datasets(iter_export_tasks(export_file), formats, tmp_path, context, AnnotationPolicy.parse(policy))


def coco_annotations(results):
    return json.loads((results["COCO"].path / "result.json").read_text())["annotations"]


def by_region(annotations, region_id):
    (found,) = [a for a in annotations if a["label_studio"]["region"] == region_id]
    return found


def yolo_rows(results, stem):
    (label_file,) = results["YOLO"].path.rglob(f"labels/**/{stem}.txt")
    return [[float(v) for v in line.split()] for line in label_file.read_text().splitlines()]


def voc_boxes(results, stem):
    (xml_file,) = results["VOC"].path.rglob(f"{stem}.xml")
    root = ElementTree.parse(xml_file).getroot()
    return [(o.findtext("name"), [int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")])
            for o in root.iter("object")]


def test_rotated_rectangle_is_the_envelope_of_its_pixel_corners_in_every_format(tmp_path):
    results = export(tmp_path, ["COCO", "YOLO", "VOC"])
    xmin, ymin, xmax, ymax = ROTATED_ENVELOPE
    coco = by_region(coco_annotations(results), "r002xcccc")
    assert coco["bbox"] == pytest.approx([xmin, ymin, xmax - xmin, ymax - ymin])
    assert len(coco["segmentation"][0]) == 8  # the rotated rectangle's four corners
    assert coco["area"] == pytest.approx(96 * 48)

    expected_row = [0, (xmin + xmax) / 2 / 640, (ymin + ymax) / 2 / 480, (xmax - xmin) / 640, (ymax - ymin) / 480]
    assert any(row == pytest.approx(expected_row, abs=1e-6) for row in yolo_rows(results, "3f2a1b9c-street"))

    # VOC numbers pixels from 1 (the devkit's): the envelope's first pixel, 0-based 232, is 233.
    assert ("Car", [232 + 1, 288 + 1, math.ceil(xmax), math.ceil(ymax)]) in voc_boxes(results, "3f2a1b9c-street")


def test_box_crossing_the_image_edge_is_clipped_and_counted(tmp_path):
    results = export(tmp_path, ["COCO", "YOLO", "VOC"])
    # r003: x 90% + 18.75% of 640 px = 576..696 px, clipped at 640; y 264..364 px.
    coco = by_region(coco_annotations(results), "r003xdddd")
    assert coco["bbox"] == pytest.approx([576, 264, 64, 100])
    assert [1, 608 / 640, 314 / 480, 64 / 640, 100 / 480] in [
        pytest.approx(row, abs=1e-6) for row in yolo_rows(results, "3f2a1b9c-street")
    ]
    assert ("Person", [576 + 1, 264 + 1, 640, 364]) in voc_boxes(results, "3f2a1b9c-street")  # 1-based pixels
    for name in ("COCO", "YOLO", "VOC"):
        assert results[name].report["regions_clipped"] >= 1


def test_coco_loads_in_pycocotools_with_task_ids_as_image_ids(tmp_path):
    results = export(tmp_path, ["COCO"], media=MediaResolver(SAMPLE_MEDIA, cache_dir=tmp_path / "media-cache"))
    coco = COCO(str(results["COCO"].path / "result.json"))
    # Task 105 has no regions: its size comes from the image header.
    assert coco.imgs[105]["width"] == 256 and coco.imgs[105]["height"] == 192
    assert {101, 102, 103, 104, 105} <= set(coco.imgs)
    assert coco.imgs[101]["width"] == 640 and coco.imgs[101]["file_name"] == "images/3f2a1b9c-street.jpg"
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())][:3] == ["Car", "Person", "Road"]


def test_an_image_whose_size_cannot_be_known_is_reported_not_silently_left_out(tmp_path):
    results = export(tmp_path, ["COCO"])
    coco = json.loads((results["COCO"].path / "result.json").read_text())
    assert 105 not in {image["id"] for image in coco["images"]}
    assert list(results["COCO"].report["images_skipped"].values()) == [1]


def test_every_annotation_of_a_task_is_exported_and_cancelled_ones_are_counted(tmp_path):
    results = export(tmp_path, ["COCO"])
    annotations = coco_annotations(results)
    assert {a["label_studio"]["annotation"] for a in annotations if a["image_id"] == 102} == {1002, 1003}
    assert 1004 not in {a["label_studio"]["annotation"] for a in annotations}
    assert results["COCO"].report["annotations_skipped"] == {"cancelled by the annotator": 1}
    # The prediction-only and the unlabeled task are images without objects.
    assert not [a for a in annotations if a["image_id"] in (104, 105)]


def test_keypoints_attach_to_their_parent_box_in_model_index_order(tmp_path):
    results = export(tmp_path, ["COCO"])
    person = by_region(coco_annotations(results), "r006xgggg")
    # head (42.5%, 15%), left_hand (32%, 50%), right_hand (53%, 48%) of 320×240, all visible.
    assert person["keypoints"] == pytest.approx([136, 36, 2, 102.4, 120, 2, 169.6, 115.2, 2])
    assert person["num_keypoints"] == 3


def test_latest_policy_keeps_only_the_newest_annotation(tmp_path):
    results = export(tmp_path, ["COCO"], policy="latest")
    assert {a["label_studio"]["annotation"] for a in coco_annotations(results) if a["image_id"] == 102} == {1003}


def test_every_region_is_written_or_dropped_with_a_reason(tmp_path):
    results = export(tmp_path, ["COCO", "YOLO", "VOC"])
    for result in results.values():
        report = result.report
        assert report["balanced"] and report["regions_in"] == report["regions_written"] + report["regions_dropped"]
        dropped_lines = (result.path / "lsflow_dropped.jsonl").read_text().splitlines()
        assert len(dropped_lines) == report["regions_dropped"]
    assert results["YOLO"].report["dropped_by_reason"]["keypoints are exported by YOLO_POSE, not YOLO"] == 4
    choices = [json.loads(line) for line in (results["YOLO"].path / "lsflow_dropped.jsonl").read_text().splitlines()
               if "choices" in line]
    assert {(d["task"], d["region"]) for d in choices} == {(101, "r005xffff"), (103, "r015xhhhh")}


def test_a_failure_midway_leaves_the_previous_datasets_untouched(tmp_path):
    export(tmp_path, ["COCO", "YOLO"])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    broken = tmp_path.parent / "broken.json"
    tasks = json.loads(IMAGE_EXPORT.read_text())
    tasks.append({"id": 999, "data": {"image": "x.jpg"},
                  "annotations": [{"id": 5, "result": [{"id": "bad", "type": "rectanglelabels"}]}]})
    broken.write_text(json.dumps(tasks))
    with pytest.raises(ExportFormatError, match="task 999, region bad: region has no 'value' object"):
        export(tmp_path, ["COCO", "YOLO"], export_file=broken)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["COCO", "YOLO"]


def test_file_names_are_the_media_names_made_unique_per_stem():
    """The first task keeps the media's own name, a later one with the same stem gets `__task<id>`
    (YOLO and VOC name label files by the stem); a reference that names no file gives `task-<id>`."""
    from lsflow.core.pipeline.naming import TaskFileNames

    names = TaskFileNames()
    expected = [
        (1, "/data/upload/1/3f2a-frame.jpg", "3f2a-frame.jpg"),
        (2, "/data/upload/1/3f2a-frame.png", "3f2a-frame__task2.png"),
        (3, "/data/local-files/?x=1&d=dir/b.jpg", "b.jpg"),
        (4, "/data/local-files/?d=dir/a.jpg&x=1", "a.jpg"),
        (5, "/data/local-files/?d=other%2Fa%20b.jpg", "a b.jpg"),
        (6, "s3://bucket/deep/a.jpg", "a__task6.jpg"),
        (7, "https://cdn.example.com/img/c.jpg?X-Amz-Signature=abc", "c.jpg"),
        (8, None, "task-8"),
        (9, "", "task-9"),
        (10, "data:image/png;base64,iVBORw0KGgo=", "task-10.png"),
    ]
    assert [names.name_for(task_id, ref) for task_id, ref, _ in expected] == [name for _, _, name in expected]


def test_file_stems_stay_unique_over_many_tasks():
    names = TaskFileNames()
    refs = [f"/data/upload/1/frame_{i % 7000:05d}.{'png' if i % 3 else 'jpg'}" for i in range(20000)]
    given = [names.name_for(task_id, ref) for task_id, ref in enumerate(refs, 1)]
    stems = [name.rsplit(".", 1)[0] for name in given]
    assert len(set(stems)) == len(stems)
    assert given[:3] == ["frame_00000.jpg", "frame_00001.png", "frame_00002.png"]
    assert given[7000] == "frame_00000__task7001.png"
