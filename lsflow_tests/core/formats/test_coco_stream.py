"""A COCO file checked streamed finds what loading it finds: unlisted images, boxes outside their image,
masks of the wrong size — and counts images, annotations, masks and category uses — in bounded memory."""

import json
import subprocess
import sys

import pytest

from lsflow.core.formats.shared.coco_stream import check_streamed


def annotation(number, image_id, bbox, **extra):
    return {"id": number, "image_id": image_id, "category_id": 1, "bbox": bbox, "area": bbox[2] * bbox[3],
            "iscrowd": 0, "segmentation": [], **extra}


def test_the_same_problems_as_a_loaded_check(tmp_path):
    document = {
        "images": [{"id": 30, "width": 100, "height": 50, "file_name": "b.jpg"},
                   {"id": 7, "width": 640, "height": 480, "file_name": "a.jpg"}],  # not in id order
        "categories": [{"id": 1, "name": "Car"}, {"id": 2, "name": "Person"}],
        "annotations": [
            annotation(1, 7, [10, 10, 20, 20]),
            annotation(2, 30, [90, 0, 10.000001, 50]),  # to the edge: inside (within 1e-6)
            annotation(3, 30, [95, 0, 10, 10]),  # past the right edge
            annotation(4, 99, [0, 0, 1, 1]),  # no such image
            annotation(5, 7, [1, 1, 5, 5], segmentation={"size": [480, 640], "counts": "abc"}),
            annotation(6, 7, [1, 1, 5, 5], segmentation={"size": [640, 480], "counts": "abc"}, category_id=2),
            annotation(7, 7, [3, 4, 0, 0], num_keypoints=1),  # one keypoint: no extent, and right so
            annotation(8, 7, [3, 4, 0, 0]),  # a box without extent
        ],
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(document))
    checked = check_streamed(path)
    assert (checked.images, checked.annotations, checked.masks) == (2, 8, 2)
    assert checked.categories == document["categories"]
    assert checked.annotation_categories == {1: 7, 2: 1}
    assert checked.problems == [
        "annotation 3 (task 30): bbox [95, 0, 10, 10] is not inside the 100x50 image",
        "annotation 4: image 99 is not listed",
        "annotation 6 (task 7): mask size [640, 480] is not the image's [480, 640]",
        "annotation 8 (task 7): bbox [3, 4, 0, 0] is not inside the 640x480 image",
    ]


def test_a_file_that_is_not_coco_is_an_error(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"images": [{"id": 1, "width": 3, "height": 2}], "annotations": [')
    with pytest.raises(Exception):  # noqa: B017 - ijson's IncompleteJSONError, whatever its backend
        check_streamed(path)


def test_memory_does_not_follow_the_file(tmp_path):
    # 300 000 annotations (~60 MB of JSON): the check's process grows by far less than the file.
    path = tmp_path / "result.json"
    with open(path, "w") as out:
        out.write('{"images":[')
        out.write(",".join(json.dumps({"id": n, "width": 640, "height": 480, "file_name": f"{n}.jpg"})
                           for n in range(100_000)))
        out.write('],"categories":[{"id":1,"name":"Car"}],"annotations":[')
        out.write(",".join(json.dumps(annotation(n, n % 100_000, [1, 2, 3, 4],
                                                 segmentation=[[1, 2, 4, 2, 4, 6, 1, 6]]))
                           for n in range(300_000)))
        out.write("]}")
    code = ("import resource, sys; from pathlib import Path; import lsflow.core.formats.shared.coco_stream as s; "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            f"c = s.check_streamed(Path({str(path)!r})); assert (c.images, c.annotations, c.problems) == (100000, 300000, []); "
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    grown_mb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown_mb < path.stat().st_size / 2**20 / 4, grown_mb


def test_the_coco_check_of_a_large_file_streams_and_agrees_with_pycocotools(tmp_path, monkeypatch):
    from lsflow.core.formats import coco, writer_class
    from lsflow.core.model.label_config import LabelConfig
    from lsflow.core.pipeline.context import export_context
    from lsflow_tests.core.formats.exporting import run
    from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT

    result = run(tmp_path, IMAGE_EXPORT, ["COCO"])["COCO"]
    context = export_context(LabelConfig.from_file(IMAGE_CONFIG), lambda: [])
    loaded = writer_class("COCO").check(result.path, context)
    monkeypatch.setattr(coco, "STREAM_ABOVE_BYTES", 0)  # every file is "large"
    streamed = writer_class("COCO").check(result.path, context)
    assert [(o.name, o.passed, o.problems) for o in streamed] == [(o.name, o.passed, o.problems) for o in loaded]
    assert streamed[0].metadata == {**loaded[0].metadata, "checked": "streamed"}
    assert all(outcome.passed for outcome in streamed)

    # A box moved out of its image and an unlisted category: both checks say so, in the same words.
    document = json.loads((result.path / "result.json").read_text())
    document["annotations"][0]["bbox"][0] = 10_000
    document["annotations"][1]["category_id"] = 77
    (result.path / "result.json").write_text(json.dumps(document))
    monkeypatch.setattr(coco, "STREAM_ABOVE_BYTES", 1 << 40)
    loaded = writer_class("COCO").check(result.path, context)
    monkeypatch.setattr(coco, "STREAM_ABOVE_BYTES", 0)
    streamed = writer_class("COCO").check(result.path, context)
    assert [(o.passed, o.problems) for o in streamed] == [(o.passed, o.problems) for o in loaded]
    assert not streamed[0].passed and "is not inside" in streamed[0].problems[0]
    assert streamed[1].problems == ["1 annotations have category 77, which is not listed"]
