"""Properties of lsflow's geometry, RLE codecs and task parser, checked on generated inputs.

Deterministic and CI-sized (see lsflow_tests/hypothesis_settings.py; `LSFLOW_FUZZ_SCALE` for a long run).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from label_studio_sdk.converter import brush
from pycocotools import mask as coco_mask

from lsflow.core.geometry.plane import (
    Envelope,
    clip_envelope,
    clip_polygon,
    envelope,
    is_inside,
    percent_to_pixels,
    polygon_area,
    rotated_corners,
)
from lsflow.core.geometry.rle import RleError, brush_alpha, coco_rle, decode_brush_rle
from lsflow.core.geometry.shapes import RegionDrop, to_shape
from lsflow.core.model.task import ExportFormatError, ImageSize, Task
from lsflow_tests.hypothesis_settings import bounded

coordinates = st.floats(-5000, 5000, allow_nan=False)
lengths = st.floats(0.01, 5000, allow_nan=False)
rotations = st.one_of(st.floats(-1080, 1080, allow_nan=False), st.integers(-8, 8).map(lambda k: 90.0 * k))
image_sides = st.integers(1, 8000)
percents = st.floats(0, 100, allow_nan=False)


def close(a: float, b: float, scale: float = 1.0) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, scale))


def distance(p, q) -> float:
    return math.hypot(p[0] - q[0], p[1] - q[1])


# --- plane.py: rotation, envelopes, clipping, areas --------------------------------------------------

@bounded(300)
@given(coordinates, coordinates, lengths, lengths, rotations)
@example(0.0, 0.0, 4.0, 2.0, 90.0)
def test_a_rotation_is_rigid_keeps_the_anchor_and_the_area(x, y, w, h, rotation):
    corners = rotated_corners(x, y, w, h, rotation)
    scale = abs(x) + abs(y) + w + h
    assert corners[0] == pytest.approx((x, y), abs=1e-9 * scale)  # turned about the top-left corner
    sides = [distance(corners[i], corners[(i + 1) % 4]) for i in range(4)]
    for side, expected in zip(sides, (w, h, w, h)):
        assert close(side, expected, scale)
    assert close(distance(corners[0], corners[2]), math.hypot(w, h), scale)
    assert math.isclose(polygon_area(corners), w * h, rel_tol=1e-7, abs_tol=1e-9 * scale * scale)


@bounded(200)
@given(coordinates, coordinates, lengths, lengths, rotations, st.integers(-3, 3))
def test_whole_turns_change_nothing_and_the_turn_is_clockwise_on_screen(x, y, w, h, rotation, turns):
    turned = rotated_corners(x, y, w, h, rotation + 360 * turns)
    scale = abs(x) + abs(y) + w + h
    for p, q in zip(turned, rotated_corners(x, y, w, h, rotation)):
        assert distance(p, q) <= 1e-9 * scale * (1 + abs(turns))
    assert rotated_corners(x, y, w, h, 360 * turns) == ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
    # 90° clockwise with y pointing down: the top edge (towards +x) now points down (+y).
    quarter = rotated_corners(x, y, w, h, 90)
    assert quarter[1] == pytest.approx((x, y + w), abs=1e-9 * scale)


@bounded(200)
@given(st.lists(st.tuples(coordinates, coordinates), min_size=1, max_size=12))
def test_the_envelope_is_the_tightest_box_around_the_points(points):
    box = envelope(points)
    assert all(box.xmin <= px <= box.xmax and box.ymin <= py <= box.ymax for px, py in points)
    xs, ys = {p[0] for p in points}, {p[1] for p in points}
    assert {box.xmin, box.xmax} <= xs and {box.ymin, box.ymax} <= ys
    assert box.area == box.width * box.height >= 0


@bounded(300)
@given(coordinates, coordinates, lengths, lengths, image_sides, image_sides)
def test_clipping_a_box_keeps_exactly_its_part_inside_the_image(x, y, w, h, width, height):
    box = Envelope(x, y, x + w, y + h)
    clipped = clip_envelope(box, width, height)
    overlap_w = min(box.xmax, width) - max(box.xmin, 0)
    overlap_h = min(box.ymax, height) - max(box.ymin, 0)
    if overlap_w <= 0 or overlap_h <= 0:
        assert clipped is None
        return
    assert clipped is not None
    assert 0 <= clipped.xmin < clipped.xmax <= width and 0 <= clipped.ymin < clipped.ymax <= height
    assert box.xmin <= clipped.xmin and clipped.xmax <= box.xmax and box.ymin <= clipped.ymin and clipped.ymax <= box.ymax
    assert clipped.area <= box.area
    assert clip_envelope(clipped, width, height) == clipped  # inside already: unchanged
    if box.xmin >= 0 and box.ymin >= 0 and box.xmax <= width and box.ymax <= height:
        assert clipped == box
    # The same rectangle clipped as a polygon has the same area.
    corners = rotated_corners(x, y, w, h, 0)
    assert math.isclose(polygon_area(clip_polygon(corners, width, height)), clipped.area, rel_tol=1e-9, abs_tol=1e-6)


convex_polygons = st.one_of(
    st.builds(lambda x, y, w, h, r: rotated_corners(x, y, w, h, r), coordinates, coordinates, lengths, lengths, rotations),
    st.lists(st.tuples(coordinates, coordinates), min_size=3, max_size=3),  # triangles are convex
)


@bounded(400)
@given(convex_polygons, image_sides, image_sides)
@example(rotated_corners(-10.0, 50.0, 80.0, 40.0, 30.0), 100, 100)
def test_a_clipped_convex_polygon_lies_in_the_image_and_is_never_larger(points, width, height):
    clipped = clip_polygon(points, width, height)
    scale = max(width, height) + max(abs(c) for p in points for c in p)
    tolerance = 1e-9 * scale
    assert all(-tolerance <= px <= width + tolerance and -tolerance <= py <= height + tolerance for px, py in clipped)
    area, clipped_area = polygon_area(points), polygon_area(clipped)
    assert clipped_area <= area + 1e-7 * scale * scale
    assert clipped_area <= width * height + 1e-7 * scale * scale
    if is_inside(points, width, height):
        assert clipped == list(points)  # nothing to clip: the polygon itself, vertex for vertex
    if envelope(points).xmax <= 0 or envelope(points).xmin >= width:
        assert clipped_area <= 1e-7 * scale * scale  # wholly left or right of the image: nothing (or an edge)


@bounded(200)
@given(coordinates, coordinates, lengths, lengths, st.integers(0, 3), st.booleans())
def test_the_area_of_a_rectangle_is_w_times_h_whatever_the_first_vertex_and_winding(x, y, w, h, shift, reverse):
    ring = list(rotated_corners(x, y, w, h, 0))
    ring = ring[shift:] + ring[:shift]
    if reverse:
        ring.reverse()
    assert math.isclose(polygon_area(ring), w * h, rel_tol=1e-9, abs_tol=1e-9 * (abs(x) + abs(y) + w + h) ** 2)


@bounded(300)
@given(percents, image_sides)
def test_percent_to_pixels_and_back_is_the_same_percent(value, size):
    pixels = percent_to_pixels(value, size)
    assert 0 <= pixels <= size
    assert math.isclose(pixels * 100.0 / size, value, rel_tol=1e-12, abs_tol=1e-12)


# --- shapes.py: regions to pixel shapes -------------------------------------------------------------

def _image_task(result: list[dict]) -> Task:
    return Task.from_dict({"id": 1, "data": {"image": "/data/upload/1/a.jpg"}, "annotations": [{"id": 2, "result": result}]})


def _region(kind: str, value: dict, width: int, height: int) -> dict:
    return {"id": "r", "type": kind, "from_name": "label", "to_name": "image", "original_width": width,
            "original_height": height, "value": value}


@bounded(300)
@given(percents, percents, st.floats(0.01, 100), st.floats(0.01, 100), rotations, image_sides, image_sides)
def test_a_rectangle_region_keeps_its_pixel_size_and_area_at_any_rotation(x, y, w, h, rotation, width, height):
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": ["car"]}
    region = _image_task([_region("rectanglelabels", value, width, height)]).annotations[0].regions[0]
    shape = to_shape(region)
    assert shape.kind == "box" and shape.image == ImageSize(width, height) and shape.rotation == rotation
    pixel_w, pixel_h = w * width / 100, h * height / 100
    scale = width + height
    assert shape.points[0] == pytest.approx((x * width / 100, y * height / 100), abs=1e-9 * scale)
    assert close(distance(shape.points[0], shape.points[1]), pixel_w, scale)
    assert close(distance(shape.points[1], shape.points[2]), pixel_h, scale)
    assert math.isclose(polygon_area(shape.points), pixel_w * pixel_h, rel_tol=1e-7, abs_tol=1e-9 * scale * scale)
    assert shape.envelope == envelope(shape.points)
    assert region.labels == ["car"]


@bounded(200)
@given(st.lists(st.tuples(percents, percents), min_size=3, max_size=20), image_sides, image_sides)
def test_a_polygon_region_keeps_its_vertices_in_order_and_they_round_trip_to_percent(points, width, height):
    value = {"points": [list(p) for p in points], "polygonlabels": ["road"]}
    shape = to_shape(_image_task([_region("polygonlabels", value, width, height)]).annotations[0].regions[0])
    assert shape.kind == "polygon" and len(shape.points) == len(points)
    for (px, py), (sx, sy) in zip(points, shape.points):
        assert math.isclose(sx * 100 / width, px, abs_tol=1e-9) and math.isclose(sy * 100 / height, py, abs_tol=1e-9)
    assert is_inside(shape.points, width, height)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)
region_kinds = st.sampled_from(["rectanglelabels", "rectangle", "polygonlabels", "keypointlabels", "ellipselabels",
                                "brushlabels", "labels", "choices", "textarea", "relation", "Rectangle"])
value_keys = st.sampled_from(["x", "y", "width", "height", "rotation", "points", "radiusX", "radiusY", "labels",
                              "rectanglelabels", "format", "rle"])


@bounded(400)
@given(region_kinds, st.dictionaries(value_keys, json_values, max_size=8),
       st.one_of(json_scalars, image_sides), st.one_of(json_scalars, image_sides))
# Found by this test: sizes that are not whole numbers raised ValueError/TypeError out of the export.
@example("rectanglelabels", {}, True, ":")
@example("rectanglelabels", {"x": 1, "y": 1, "width": 5, "height": 5}, "abc", 480)
@example("polygonlabels", {"points": [[1, 1], [2, 2], [1, 3]]}, [640], 480)
@example("rectanglelabels", {"x": 1, "y": 1, "width": 5, "height": 5}, -640, 480)
@example("keypointlabels", {"x": 1, "y": 1}, 1e308 * 10, 480)
def test_any_region_becomes_a_shape_or_a_stated_drop_never_a_crash(kind, value, width, height):
    """Whatever an annotator's tool or an import wrote into a region, it is written or dropped with a reason."""
    region = _image_task([_region(kind, value, width, height)]).annotations[0].regions[0]
    assert isinstance(region.labels, list)
    try:
        shape = to_shape(region, ImageSize(640, 480))
    except RegionDrop as drop:
        assert drop.reason
        return
    assert shape.image.width > 0 and shape.image.height > 0
    if shape.kind != "mask":
        assert all(math.isfinite(c) for p in shape.points for c in p)


# --- rle.py: Label Studio brush RLE (read) and COCO RLE (write) ---------------------------------------

@st.composite
def masks(draw, max_side: int = 40, levels: tuple[int, ...] = (0, 255)) -> np.ndarray:
    height, width = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    runs = draw(st.lists(st.tuples(st.sampled_from(levels), st.integers(1, width * height)), min_size=1, max_size=12))
    flat = np.concatenate([np.full(n, v, dtype=np.uint8) for v, n in runs])
    flat = np.resize(flat, width * height)  # runs of every length, wrapping
    return flat.reshape(height, width)


@bounded(150)
@given(masks(levels=(0, 1, 7, 128, 255)))
def test_brush_masks_the_sdk_encodes_decode_exactly(mask):
    rle = brush.mask2rle(mask)
    assert np.array_equal(brush_alpha(rle, mask.shape[1], mask.shape[0]), mask)
    assert np.array_equal(decode_brush_rle(rle), np.repeat(mask.ravel(), 4))


@bounded(100)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(1, 70_000)), min_size=1, max_size=6))
@example([(0, 65_536), (255, 1)])  # a run exactly as long as the widest length field holds, then one more
@example([(3, 65_537), (4, 131_073)])  # runs the SDK splits in several records
def test_any_byte_array_the_sdk_encodes_decodes_to_itself(runs):
    values = np.concatenate([np.full(n, v, dtype=np.uint8) for v, n in runs])
    decoded = decode_brush_rle(brush.encode_rle(values))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, values)


@bounded(300)
@given(st.binary(max_size=96))
@example(b"\x00\x00\x00\x01" + b"\x00" * 3)
def test_arbitrary_bytes_decode_to_their_stated_count_or_raise_rle_error(data):
    try:
        decoded = decode_brush_rle(data)
    except RleError as error:
        assert str(error)
        return
    count = int.from_bytes(data[:4], "big")
    assert decoded.dtype == np.uint8 and decoded.size == count


@bounded(150)
@given(masks(max_side=60, levels=(0, 1)))
def test_coco_rle_decodes_back_to_the_same_mask_with_pycocotools(mask):
    encoded = coco_rle(mask.astype(bool))
    assert encoded["size"] == [mask.shape[0], mask.shape[1]] and isinstance(encoded["counts"], str)
    rle = {"size": encoded["size"], "counts": encoded["counts"].encode("ascii")}
    assert np.array_equal(coco_mask.decode(rle), mask)
    assert int(coco_mask.area(rle)) == int(mask.sum())


# --- task.py: the task parser ---------------------------------------------------------------------------

ids = st.integers(1, 2**31)
regions = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=8), "type": region_kinds, "from_name": st.text(max_size=5),
     "to_name": st.text(max_size=5), "value": st.dictionaries(value_keys, json_values, max_size=4)},
    optional={"original_width": image_sides, "original_height": image_sides, "parentID": st.text(max_size=4)})
annotations = st.fixed_dictionaries(
    {"id": ids, "result": st.lists(regions, max_size=4)},
    optional={"was_cancelled": st.booleans(), "ground_truth": st.booleans(), "completed_by": json_values})
tasks = st.fixed_dictionaries(
    {"id": ids, "data": st.dictionaries(st.text(max_size=6), json_values, max_size=4)},
    optional={"annotations": st.lists(annotations, max_size=3),
              "predictions": st.lists(st.one_of(annotations, ids), max_size=2),
              "updated_at": st.text(max_size=10)})


@bounded(300)
@given(tasks)
def test_a_valid_task_parses_keeping_its_ids_regions_and_raw_dict(raw):
    task = Task.from_dict(raw)
    assert task.id == raw["id"] and task.data is raw["data"] and task.raw is raw
    assert task.updated_at == raw.get("updated_at")
    assert [a.id for a in task.annotations] == [a["id"] for a in raw.get("annotations", [])]
    for annotation, source in zip(task.annotations, raw.get("annotations", [])):
        assert not annotation.is_prediction
        assert annotation.was_cancelled == bool(source.get("was_cancelled"))
        assert [(r.id, r.type, r.value) for r in annotation.regions] == [
            (r["id"], r["type"].lower(), r["value"]) for r in source["result"]]
    # Predictions listed by id only (a snapshot without full predictions) are kept raw, not parsed.
    full = [p for p in raw.get("predictions", []) if isinstance(p, dict)]
    assert [p.id for p in task.predictions] == [p["id"] for p in full]
    assert all(p.is_prediction for p in task.predictions)


@st.composite
def broken_tasks(draw):
    """A valid task with one value somewhere replaced by arbitrary JSON."""
    raw = draw(tasks)
    paths = [("id",), ("data",), ("annotations",), ("predictions",)]
    for i, annotation in enumerate(raw.get("annotations", [])):
        paths += [("annotations", i), ("annotations", i, "result")]
        paths += [("annotations", i, "result", j) for j in range(len(annotation["result"]))]
        paths += [("annotations", i, "result", j, "value") for j in range(len(annotation["result"]))]
    path = draw(st.sampled_from(paths))
    container = raw
    for key in path[:-1]:
        container = container[key]
    container[path[-1]] = draw(json_values)
    return raw


@bounded(400)
@given(st.one_of(broken_tasks(), json_values))
@example({"id": 7, "data": {}, "annotations": [{"id": 1, "result": [{"type": "rectanglelabels", "value": 3}]}]})
@example({"id": 7, "data": None})
@example({"data": {}})
def test_an_invalid_task_raises_export_format_error_naming_it(raw):
    try:
        task = Task.from_dict(raw, 4)
    except ExportFormatError as error:
        task_id = raw.get("id") if isinstance(raw, dict) else None
        if task_id is not None:
            assert error.task_id == task_id and str(error).startswith(f"task {task_id}")
        else:
            assert "item 4" in str(error) or "position 4" in str(error)
        return
    # Accepted: then it really is task-shaped.
    assert isinstance(raw, dict) and raw["id"] is not None and isinstance(task.data, dict)
