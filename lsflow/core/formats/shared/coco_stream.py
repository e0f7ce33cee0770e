"""A COCO file checked without loading it whole: for annotation files too large for pycocotools.

pycocotools holds the parsed document and its indexes: about 5 bytes of memory per byte of file (a
million-task project's `result.json` of 1.3 GB would take ~7 GB). Here the file is read three times
with ijson's C parser — the images into three integer arrays (24 bytes an image), the categories, then
the annotations one at a time — and the same properties are checked: every annotation's image is
listed, its bbox lies inside that image, a mask has the image's size; plus what `check_category_ids`
needs, the categories and how many annotations name each category id.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ijson
import numpy

# Above this size a COCO file is checked streamed; below it pycocotools loads it (its own checks too).
# 32 MiB (~25 000 tasks) keeps pycocotools' ~5 bytes a byte near 160 MB: the checks stay within a
# step's 300 MB at every size, not only at a million tasks (256 MiB would have taken ~1.3 GB).
STREAM_ABOVE_BYTES = 32 * 2**20


@dataclass
class StreamedCoco:
    images: int = 0
    annotations: int = 0
    masks: int = 0
    categories: list[dict[str, Any]] = field(default_factory=list)
    annotation_categories: Counter = field(default_factory=Counter)  # category id → annotations naming it
    problems: list[str] = field(default_factory=list)


def check_streamed(path: Path, problems_kept: int = 20) -> StreamedCoco:
    """The file's images, categories and annotations checked one at a time; raises ValueError (or ijson's
    error) when the file is not a COCO document."""
    result = StreamedCoco()

    def problem(text: str) -> None:
        if len(result.problems) < problems_kept:
            result.problems.append(text)

    ids, widths, heights = array("q"), array("q"), array("q")
    with open(path, "rb") as stream:
        for image in ijson.items(stream, "images.item", use_float=True):
            ids.append(image["id"])
            widths.append(image["width"])
            heights.append(image["height"])
    result.images = len(ids)
    # Sorted by id (numpy's argsort: a Python list of indexes would cost ~36 bytes an image), then
    # looked up by bisection in the arrays.
    order = numpy.argsort(numpy.frombuffer(ids, dtype=numpy.int64), kind="stable")
    sorted_ids, widths, heights = (_reordered(values, order) for values in (ids, widths, heights))

    def image_size(image_id: Any) -> tuple[int, int] | None:
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            return None
        at = bisect_left(sorted_ids, image_id)
        if at == len(sorted_ids) or sorted_ids[at] != image_id:
            return None
        return widths[at], heights[at]

    with open(path, "rb") as stream:
        result.categories = list(ijson.items(stream, "categories.item", use_float=True))
    with open(path, "rb") as stream:
        for annotation in ijson.items(stream, "annotations.item", use_float=True):
            result.annotations += 1
            result.annotation_categories[annotation.get("category_id")] += 1
            size = image_size(annotation["image_id"])
            result.masks += size is not None and isinstance(annotation.get("segmentation"), dict)
            for text in annotation_problems(annotation, size):
                problem(text)
    return result


def annotation_problems(annotation: dict[str, Any], size: tuple[int, int] | None) -> list[str]:
    """Why a COCO annotation does not fit its image (`size`: its width and height; None: not listed)."""
    if size is None:
        return [f"annotation {annotation['id']}: image {annotation['image_id']} is not listed"]
    width, height = size
    problems = []
    x, y, w, h = annotation["bbox"]
    needs_size = not annotation.get("num_keypoints")  # a one-point keypoint group has no extent, rightly
    if x < 0 or y < 0 or x + w > width + 1e-6 or y + h > height + 1e-6 or (needs_size and (w <= 0 or h <= 0)):
        problems.append(f"annotation {annotation['id']} (task {annotation['image_id']}): bbox {annotation['bbox']} "
                        f"is not inside the {width}x{height} image")
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict) and segmentation.get("size") != [height, width]:
        problems.append(f"annotation {annotation['id']} (task {annotation['image_id']}): mask size "
                        f"{segmentation.get('size')} is not the image's [{height}, {width}]")
    return problems


def _reordered(values: array, order: numpy.ndarray) -> array:
    reordered = array("q")
    reordered.frombytes(numpy.frombuffer(values, dtype=numpy.int64)[order].tobytes())
    return reordered
