"""Lineage: which prediction an annotation came from, and what the person did to each region."""

from __future__ import annotations

import pytest

from lsflow.core.compare.lineage import (
    ADDED,
    DELETED,
    EDITED,
    LINKED_BY_IDS,
    LINKED_BY_PARENT,
    MOVED,
    RELABELLED,
    RESHAPED,
    RESIZED,
    UNCHANGED,
    VALUE_CHANGED,
    annotation_lineage,
    source_prediction,
)
from lsflow.core.model.task import ImageSize, Task

SIZE = (200, 100)


def box(region_id, label, x, y, w, h, origin=None, score=None):
    result = {"id": region_id, "from_name": "label", "to_name": "image", "type": "rectanglelabels",
              "original_width": SIZE[0], "original_height": SIZE[1],
              "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}
    if origin:
        result["origin"] = origin
    if score is not None:
        result["score"] = score
    return result


def task(annotations, predictions):
    return Task.from_dict({"id": 7, "data": {"image": "a.png"}, "annotations": annotations,
                           "predictions": predictions})


PREDICTION = {"id": 11, "model_version": "v1", "score": 0.8, "result": [
    box("keep", "Car", 10, 10, 20, 20), box("move", "Car", 50, 10, 20, 20), box("grow", "Person", 10, 50, 20, 20),
    box("rename", "Car", 50, 50, 20, 20), box("drop", "Car", 80, 80, 10, 10),
]}


def test_a_prediction_accepted_the_way_the_labeling_ui_does_it():
    annotation = {"id": 21, "parent_prediction": 11, "result": [
        box("keep", "Car", 10, 10, 20, 20, origin="prediction"),
        box("move", "Car", 60, 10, 20, 20, origin="prediction-changed"),  # 10 % of 200 px to the right
        box("grow", "Person", 10, 50, 20, 30, origin="prediction-changed"),
        box("rename", "Person", 50, 50, 20, 20, origin="prediction"),  # a relabel leaves origin alone
        box("mine", "Car", 0, 0, 5, 5, origin="manual"),
    ]}
    made = task([annotation], [PREDICTION])
    lineage = annotation_lineage(made, made.annotations[0], ImageSize(*SIZE))
    assert (lineage.prediction_id, lineage.model_version, lineage.linked_by) == (11, "v1", LINKED_BY_PARENT)
    by_id = {r.region_id: r for r in lineage.regions}
    assert {k: (r.status, r.edits) for k, r in by_id.items()} == {
        "keep": (UNCHANGED, ()), "move": (EDITED, (MOVED,)), "grow": (EDITED, (RESIZED,)),
        "rename": (EDITED, (RELABELLED,)), "drop": (DELETED, ()), "mine": (ADDED, ()),
    }
    # The moved box: 40 x 20 px shifted by 20 px: overlap 20 x 20 over union 60 x 20.
    assert by_id["move"].iou == pytest.approx(400 / 1200)
    # Resized from 40 x 20 px to 40 x 30 px in place: 800 / 1200.
    assert by_id["grow"].iou == pytest.approx(800 / 1200)
    assert by_id["rename"].iou == pytest.approx(1.0)
    assert (by_id["rename"].label, by_id["rename"].predicted_label) == ("Person", "Car")
    assert by_id["mine"].origin == "manual" and by_id["keep"].origin == "prediction"
    assert lineage.counts() == {UNCHANGED: 1, EDITED: 3, MOVED: 1, RESIZED: 1, RELABELLED: 1, DELETED: 1, ADDED: 1}


def test_without_parent_prediction_the_prediction_sharing_most_result_ids_is_the_source():
    other = {"id": 12, "model_version": "v2", "result": [box("keep", "Car", 10, 10, 20, 20)]}
    annotation = {"id": 22, "result": [box("keep", "Car", 10, 10, 20, 20), box("move", "Car", 50, 10, 20, 20)]}
    made = task([annotation], [PREDICTION, other])
    prediction, how = source_prediction(made, made.annotations[0])
    assert (prediction.id, how) == (11, LINKED_BY_IDS)


def test_a_parent_prediction_no_longer_in_the_task_falls_back_to_ids_and_none_found_means_from_scratch():
    annotation = {"id": 23, "parent_prediction": 999, "result": [box("new1", "Car", 1, 1, 5, 5)]}
    made = task([annotation], [PREDICTION])
    lineage = annotation_lineage(made, made.annotations[0])
    assert (lineage.prediction_id, lineage.linked_by) == (None, None)
    assert [(r.region_id, r.status) for r in lineage.regions] == [("new1", ADDED)]


def test_a_corner_drag_is_a_resize_and_a_polygon_shift_a_move():
    polygon = {"id": "poly", "from_name": "outline", "to_name": "image", "type": "polygonlabels",
               "original_width": 200, "original_height": 100,
               "value": {"points": [[10, 10], [30, 10], [30, 30]], "polygonlabels": ["Road"]}}
    shifted = {**polygon, "value": {"points": [[15, 10], [35, 10], [35, 30]], "polygonlabels": ["Road"]}}
    bent = {**polygon, "id": "poly2", "value": {"points": [[10, 10], [30, 12], [30, 30]], "polygonlabels": ["Road"]}}
    prediction = {"id": 13, "model_version": "v1", "result": [
        box("corner", "Car", 10, 10, 20, 20), polygon, {**polygon, "id": "poly2"}]}
    annotation = {"id": 24, "parent_prediction": 13, "result": [box("corner", "Car", 5, 5, 25, 25), shifted, bent]}
    made = task([annotation], [prediction])
    regions = {r.region_id: r for r in annotation_lineage(made, made.annotations[0]).regions}
    assert regions["corner"].edits == (RESIZED,)
    assert regions["poly"].edits == (MOVED,)
    assert regions["poly2"].edits == (RESHAPED,)


def test_per_region_text_and_classification_edits():
    def text(region_id, words, origin=None):
        result = {"id": region_id, "from_name": "note", "to_name": "image", "type": "textarea",
                  "value": {"text": [words]}}
        return {**result, "origin": origin} if origin else result

    def choice(region_id, value):
        return {"id": region_id, "from_name": "weather", "to_name": "image", "type": "choices",
                "value": {"choices": [value]}}

    prediction = {"id": 14, "model_version": "v1", "result": [text("t", "a red car"), choice("c", "sunny")]}
    annotation = {"id": 25, "parent_prediction": 14, "result": [text("t", "a blue car", "prediction-changed"),
                                                                 choice("c", "rainy")]}
    made = task([annotation], [prediction])
    regions = {r.region_id: r for r in annotation_lineage(made, made.annotations[0]).regions}
    assert (regions["t"].status, regions["t"].edits) == (EDITED, (VALUE_CHANGED,))
    assert (regions["c"].status, regions["c"].edits) == (EDITED, (RELABELLED,))


def test_float_noise_is_not_an_edit_and_relations_are_not_regions():
    relation = {"type": "relation", "from_id": "keep", "to_id": "move", "direction": "right"}
    prediction = {"id": 15, "model_version": "v1", "result": [box("keep", "Car", 10, 10, 20, 20), relation]}
    annotation = {"id": 26, "parent_prediction": 15, "result": [box("keep", "Car", 10.0000000001, 10, 20, 20)]}
    made = task([annotation], [prediction])
    assert [(r.region_id, r.status) for r in annotation_lineage(made, made.annotations[0]).regions] == [
        ("keep", UNCHANGED)]
