"""Matching regions: each similarity against values worked out by hand, and the one-to-one assignment."""

import math

import numpy as np
import pytest
from label_studio_sdk.converter import brush

from lsflow.core.compare.matching import cer, match, similarity, wer
from lsflow.core.compare.regions import comparable, comparables
from lsflow.core.model.task import ImageSize, Task


def _region(kind, value, width=100, height=100, from_name="label", to_name="image", **extra):
    return {"id": extra.pop("id", None), "type": kind, "from_name": from_name, "to_name": to_name,
            "original_width": width, "original_height": height, "value": value, **extra}


def _box(x, y, w, h, label="cat", width=100, height=100, rotation=0.0, **extra):
    """A box given in pixels, stored in percent as Label Studio does."""
    return _region("rectanglelabels", {"x": 100 * x / width, "y": 100 * y / height, "width": 100 * w / width,
                                       "height": 100 * h / height, "rotation": rotation, "rectanglelabels": [label]},
                   width, height, **extra)


def _annotation(*results, prediction=False, score=None):
    raw = {"id": 1, "result": list(results)}
    if score is not None:
        raw["score"] = score
    key = "predictions" if prediction else "annotations"
    task = Task.from_dict({"id": 1, "data": {"image": "a.jpg"}, key: [raw]})
    return (task.predictions if prediction else task.annotations)[0]


def _one(result, image=None):
    made, rejected = comparables(_annotation(result), image)
    assert not rejected, rejected
    return made[0]


def _sim(x, y):
    return similarity(_one(x), _one(y))


def test_axis_aligned_boxes_iou_in_pixels():
    # [0,10]x[0,10] and [5,15]x[0,10]: 50 shared of 150 covered.
    assert _sim(_box(0, 0, 10, 10), _box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert _sim(_box(0, 0, 10, 10), _box(0, 0, 10, 10)) == pytest.approx(1.0)
    assert _sim(_box(0, 0, 10, 10), _box(10, 0, 10, 10)) == 0.0  # touching only


def test_iou_is_taken_in_pixel_space_not_percent():
    # A 200x100 image: the same percent box is 100x100 px; a second box 50x100 px at x=50 px.
    first = _box(0, 0, 100, 100, width=200, height=100)
    second = _box(50, 0, 50, 100, width=200, height=100)
    assert first["value"]["width"] == 50.0  # percent of the width
    assert _sim(first, second) == pytest.approx(5000 / 10000)


def test_rotated_boxes_rotate_clockwise_about_the_top_left_corner():
    # 10x10 at (0,0) turned 90° clockwise covers x in [-10,0], y in [0,10]; against [-5,5]x[0,10]: 50 of 150.
    turned = _box(0, 0, 10, 10, rotation=90)
    shifted = _box(-5, 0, 10, 10)
    assert _sim(turned, shifted) == pytest.approx(1 / 3)
    # Turned 45°: a diamond with corners (0,0), (7.07,7.07), (0,14.14), (-7.07,7.07). The axis box
    # [0,10]² holds its right half (50) less the corner above y = 10, a right isosceles triangle of
    # legs s = 10·√2 − 10.
    s = 10 * math.sqrt(2) - 10
    inter = 50 - s * s / 2
    assert _sim(_box(0, 0, 10, 10, rotation=45), _box(0, 0, 10, 10)) == pytest.approx(inter / (200 - inter))


def _polygon(points, label="cat", width=100, height=100):
    return _region("polygonlabels", {"points": [[100 * x / width, 100 * y / height] for x, y in points],
                                     "polygonlabels": [label]}, width, height)


L_SHAPE = [(0, 0), (10, 0), (10, 5), (5, 5), (5, 10), (0, 10)]  # the square [0,10]² less [5,10]²: area 75


def test_concave_polygon_iou_is_exact():
    square = _polygon([(0, 0), (10, 0), (10, 10), (0, 10)])
    assert _sim(_polygon(L_SHAPE), square) == pytest.approx(75 / 100)
    # [2,8]² (36) loses the 3x3 corner [5,8]² to the L's notch: 27 shared, 75 + 36 − 27 covered.
    inner = _polygon([(2, 2), (8, 2), (8, 8), (2, 8)])
    assert _sim(_polygon(L_SHAPE), inner) == pytest.approx(27 / 84)
    assert _sim(inner, _polygon(L_SHAPE)) == pytest.approx(27 / 84)
    # Inside the notch: nothing shared although the bounding boxes overlap.
    notch = _polygon([(6, 6), (9, 6), (9, 9), (6, 9)])
    assert _sim(_polygon(L_SHAPE), notch) == 0.0
    # Clockwise vertex order gives the same.
    assert _sim(_polygon(L_SHAPE[::-1]), _polygon([(8, 2), (2, 2), (2, 8), (8, 8)][::-1])) == pytest.approx(27 / 84)
    # A box and a polygon covering the same pixels are different kinds: never similar.
    assert _sim(_box(0, 0, 10, 10), square) == 0.0


def test_masks_iou_pixel_by_pixel():
    width, height = 8, 6
    first = np.zeros((height, width), dtype=np.uint8)
    first[0:4, 0:4] = 255  # 16 pixels
    second = np.zeros((height, width), dtype=np.uint8)
    second[2:6, 2:6] = 255  # 16 pixels, 4 shared
    regions = [_region("brushlabels", {"format": "rle", "rle": brush.mask2rle(mask), "brushlabels": ["cat"]},
                       width, height) for mask in (first, second)]
    assert _sim(*regions) == pytest.approx(4 / 28)


def test_keypoints_closeness_scales_with_the_image_diagonal():
    # 300x400 image: diagonal 500 px, s = 2 % = 10 px; 10 px apart: exp(−100 / 200).
    def point(x, y):
        return _region("keypointlabels", {"x": 100 * x / 300, "y": 100 * y / 400, "width": 1,
                                          "keypointlabels": ["nose"]}, 300, 400)
    assert _sim(point(100, 100), point(106, 108)) == pytest.approx(math.exp(-0.5))
    assert _sim(point(100, 100), point(100, 100)) == pytest.approx(1.0)


def _span(start, end, label="PER"):
    return {"id": None, "type": "labels", "from_name": "ner", "to_name": "text",
            "value": {"start": start, "end": end, "labels": [label]}}


def test_spans_character_iou():
    assert _sim(_span(0, 10), _span(5, 15)) == pytest.approx(5 / 15)
    assert _sim(_span(0, 10), _span(10, 15)) == 0.0


def test_choices_and_taxonomy_by_equality():
    def choice(*values, kind="choices"):
        return {"type": kind, "from_name": "c", "to_name": "image", "value": {kind: list(values)}}
    assert _sim(choice("a", "b"), choice("b", "a")) == 1.0  # multiple choice as a set
    assert _sim(choice("a"), choice("b")) == 0.0
    assert _one(choice(["Animal", "Cat"], kind="taxonomy")).label == "Animal/Cat"
    assert _sim(choice(["Animal", "Cat"], kind="taxonomy"), choice(["Animal", "Dog"], kind="taxonomy")) == 0.0


def test_text_error_rates():
    # kitten → sitting: k→s, e→i, +g: 3 edits over 6 characters.
    assert cer("kitten", "sitting") == pytest.approx(3 / 6)
    assert wer("the cat sat", "the cat sat down") == pytest.approx(1 / 3)
    assert wer("the cat sat", "a cat") == pytest.approx(2 / 3)
    assert cer("", "") == 0.0 and cer("", "x") == 1.0

    def area(text):
        return {"type": "textarea", "from_name": "t", "to_name": "audio", "value": {"text": [text]}}
    assert _sim(area("kitten"), area("sitting")) == pytest.approx(0.5)
    assert _sim(area("ab"), area("xyzw")) == 0.0  # CER 2: floored


def test_scores_come_from_the_region_else_the_prediction():
    prediction = _annotation(_box(0, 0, 5, 5, score=0.9), _box(5, 5, 5, 5), prediction=True, score=0.4)
    made, _ = comparables(prediction)
    assert [c.score for c in made] == [0.9, 0.4]
    assert comparables(_annotation(_box(0, 0, 5, 5, score=0.9)))[0][0].score is None


def test_regions_that_cannot_be_compared_are_returned_with_the_reason():
    annotation = _annotation(_box(0, 0, 5, 5), {"id": "r", "type": "rating", "from_name": "q", "to_name": "image",
                                                "value": {"rating": 3}},
                             {"id": "s", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                              "value": {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": ["cat"]}})
    made, rejected = comparables(annotation)
    assert len(made) == 1
    assert [(r.id, why) for r, why in rejected] == [
        ("r", "'rating' regions are not compared"),
        ("s", "missing original_width/original_height and the image is not reachable to read them")]
    # With the task's image size the box without one is comparable.
    made, rejected = comparables(annotation, ImageSize(100, 100))
    assert len(made) == 2 and len(rejected) == 1


def _spans(*ranges, label="PER"):
    return [comparable(_annotation(_span(s, e, label)).regions[0]) for s, e in ranges]


def test_assignment_maximizes_total_similarity_not_greedily():
    # a0–b0 0.9 and a0–b1 0.8; a1–b0 0.7, a1–b1 0.43 (under the threshold). Greedy takes a0–b0 and
    # leaves a1 alone; the best assignment pairs a0–b1 and a1–b0 (1.5 in all).
    a = _spans((0, 100), (0, 63))
    b = _spans((0, 90), (20, 100))
    result = match(a, b)
    assert [(m.a, m.b, round(m.similarity, 4)) for m in result.pairs] == [(0, 1, 0.8), (1, 0, 0.7)]
    assert result.only_a == () and result.only_b == ()
    # A higher threshold leaves a1 and b0 unmatched and a0 takes its best partner left.
    result = match(a, b, threshold=0.75)
    assert [(m.a, m.b) for m in result.pairs] == [(0, 0)]
    assert result.only_a == (1,) and result.only_b == (1,)


def test_same_label_keeps_classes_apart():
    a = _spans((0, 10), label="PER")
    b = _spans((0, 10), label="ORG")
    assert [(m.a, m.b, m.similarity) for m in match(a, b).pairs] == [(0, 0, 1.0)]
    unmatched = match(a, b, same_label=True)
    assert unmatched.pairs == () and unmatched.only_a == (0,) and unmatched.only_b == (0,)


def test_kinds_and_controls_are_never_matched_across():
    box = _one(_box(0, 0, 10, 10))
    other_control = _one(_box(0, 0, 10, 10, from_name="label2"))
    assert match([box], [other_control]).pairs == ()
    assert match([box], [box, other_control]).only_b == (1,)
