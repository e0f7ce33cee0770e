"""BRUSH_TO_NUMPY and BRUSH_TO_PNG: Label Studio's per-region masks, byte for byte, plus merged masks."""

import numpy as np
import pytest
from label_studio_sdk.converter import Converter, brush
from PIL import Image

from lsflow.core.formats import writer_class
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.pipeline.context import export_context
from lsflow_tests.core.formats.exporting import annotation, dropped, files_mapping, rectangle, run, task
from lsflow_tests.core.formats.exporting import brush as brush_region
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT


def read(path):
    if path.suffix == ".npy":
        return np.load(path)
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.array(image)


@pytest.mark.parametrize("name", ["BRUSH_TO_NUMPY", "BRUSH_TO_PNG"])
def test_per_region_masks_are_the_files_label_studio_writes(tmp_path, name):
    reference = tmp_path / "label-studio"
    reference.mkdir()
    Converter(config=str(IMAGE_CONFIG), project_dir=None, download_resources=False).convert(
        str(IMAGE_EXPORT), str(reference), name, is_dir=False)
    expected = {p.name: read(p) for p in reference.iterdir()}
    assert len(expected) == 2  # the sample's two brush regions

    result = run(tmp_path, IMAGE_EXPORT, [name])[name]
    ours = {p.name: read(p) for p in result.path.iterdir() if p.suffix in (".npy", ".png")}
    assert sorted(ours) == sorted(expected)
    for file_name, mask in expected.items():
        assert ours[file_name].dtype == mask.dtype and np.array_equal(ours[file_name], mask)


@pytest.mark.parametrize("name", ["BRUSH_TO_NUMPY", "BRUSH_TO_PNG"])
def test_merged_mask_per_image_and_label_is_the_union_of_its_regions(tmp_path, name):
    result = run(tmp_path, IMAGE_EXPORT, [name])[name]
    ext = ".npy" if name == "BRUSH_TO_NUMPY" else ".png"
    merged = read(result.path / "merged" / "e5f6a7b8-crossing" / f"Road{ext}")
    first = read(result.path / f"task-106-annotation-1006-by-1-surface-Road-0{ext}")
    second = read(result.path / f"task-106-annotation-1006-by-1-surface-Road-1{ext}")
    assert merged.shape == (240, 320)
    assert np.array_equal(merged, np.maximum(first, second))
    assert (merged > 0).sum() > max((first > 0).sum(), (second > 0).sum())
    assert files_mapping(result)[106]["label_files"][-1] == f"merged/e5f6a7b8-crossing/Road{ext}"
    assert all(o.passed for o in writer_class(name).check(result.path, _context()))


def test_masks_of_two_annotations_are_numbered_per_annotation_and_merged_together(tmp_path):
    left, right = np.zeros((4, 6), dtype=np.uint8), np.zeros((4, 6), dtype=np.uint8)
    left[:, :2], right[:, 4:] = 255, 255
    size = (6, 4)
    tasks = [task(1, [annotation(10, [brush_region("a", brush.mask2rle(left), size=size)], completed_by=1),
                      annotation(11, [brush_region("b", brush.mask2rle(right), size=size)],
                                 completed_by={"id": 2, "email": "ann/o@example.com"})])]
    result = run(tmp_path, tasks, ["BRUSH_TO_PNG"])["BRUSH_TO_PNG"]
    names = sorted(p.name for p in result.path.glob("*.png"))
    assert names == ["task-1-annotation-10-by-1-surface-Road-0.png",
                     "task-1-annotation-11-by-anno@example.com-surface-Road-0.png"]
    assert np.array_equal(read(result.path / "merged" / "task-1" / "Road.png"), np.maximum(left, right))


def test_unreadable_masks_and_other_shapes_are_dropped_with_the_reason(tmp_path):
    mask = np.full((4, 6), 255, dtype=np.uint8)
    speckled = np.tile(np.array([0, 255], dtype=np.uint8), (4, 3))  # no runs: a long RLE to cut short
    tasks = [task(1, [annotation(10, [
        brush_region("wrong-size", brush.mask2rle(mask), size=(6, 5)),
        brush_region("cut", brush.mask2rle(speckled)[:20], size=(6, 4)),
        rectangle("box", 10, 10, 10, 10),
    ])])]
    result = run(tmp_path, tasks, ["BRUSH_TO_NUMPY"])["BRUSH_TO_NUMPY"]
    assert {d["region"]: d["reason"] for d in dropped(result)} == {
        "wrong-size": "brush mask cannot be read: RLE holds 96 values, but a 6x5 RGBA image has 120",
        "cut": "brush mask cannot be read: RLE ends before all 96 values are read",
        "box": "rectangles are exported by COCO, VOC and YOLO, not BRUSH_TO_NUMPY",
    }
    assert result.report["balanced"] and not list(result.path.glob("*.npy"))


def test_mask_check_catches_a_mask_that_is_not_its_image_size(tmp_path):
    result = run(tmp_path, IMAGE_EXPORT, ["BRUSH_TO_PNG"])["BRUSH_TO_PNG"]
    path = result.path / "task-106-annotation-1006-by-1-surface-Road-0.png"
    Image.new("L", (160, 120)).save(path)
    (outcome,) = writer_class("BRUSH_TO_PNG").check(result.path, _context())
    assert not outcome.passed and outcome.problems == [
        f"task 106: {path.name} is 160x120, the image is 320x240"]


def _context():
    return export_context(LabelConfig.from_file(IMAGE_CONFIG), lambda: [])
