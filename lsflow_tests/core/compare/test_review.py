"""Prediction review: COCO mAP, P/R/F1, confusion matrix, span scores, WER and the newest-vs-previous
comparison, each against numbers worked out by hand here."""

from __future__ import annotations

import pytest

from lsflow.core.compare.review import review
from lsflow.core.model.task import ImageSize, Task

SQUARE = ImageSize(100, 100)  # percent = pixels


def box(region_id, label, x, y, w, h, score=None):
    result = {"id": region_id, "from_name": "label", "to_name": "image", "type": "rectanglelabels",
              "original_width": 100, "original_height": 100,
              "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}
    return result if score is None else {**result, "score": score}


def task(task_id, annotations, predictions, data=None):
    return Task.from_dict({"id": task_id, "data": data or {"image": "a.png"},
                           "annotations": [{"id": task_id * 10 + i, "result": r} for i, r in enumerate(annotations)],
                           "predictions": predictions})


def prediction(prediction_id, version, result, created_at="2024-01-01T00:00:00Z", score=None):
    return {"id": prediction_id, "model_version": version, "created_at": created_at, "score": score, "result": result}


def test_coco_map_and_per_class_scores_match_a_case_worked_by_hand():
    truth = [box("g1", "Car", 0, 0, 20, 20), box("g2", "Car", 30, 0, 20, 20), box("g3", "Person", 0, 40, 50, 50)]
    detected = [box("d1", "Car", 0, 0, 20, 20, score=0.9),     # exactly g1
                box("d2", "Car", 70, 70, 10, 10, score=0.8),   # nothing there: a false positive
                box("d3", "Car", 30, 0, 20, 20, score=0.7),    # exactly g2
                box("d4", "Person", 0, 40, 50, 31, score=0.5)]  # IoU with g3: 31/50 = 0.62
    result = review([(task(1, [truth], [prediction(5, "v1", detected)]), SQUARE)])
    (version,) = result["model_versions"]
    coco = version["quality"]["coco"]
    # Car, by score: d1 TP (P 1, R .5), d2 FP (P .5, R .5), d3 TP (P 2/3, R 1). COCO makes precision
    # non-increasing from the right ([1, 2/3, 2/3]) and reads it at recall 0, .01, …, 1: the 51 points
    # up to .5 give 1, the 50 above give 2/3. Both matches are exact: the same AP at every IoU threshold.
    car = (51 * 1 + 50 * 2 / 3) / 101
    # Person: one match at IoU .62: AP 1 at thresholds .5, .55, .6 and 0 at the seven from .65 to .95.
    person_ap50, person_ap = 1.0, 3 / 10
    classes = {row["class"]: row for row in coco["classes"]}
    assert classes["Car"]["AP50"] == pytest.approx(car) and classes["Car"]["AP"] == pytest.approx(car)
    assert classes["Person"]["AP50"] == pytest.approx(person_ap50)
    assert classes["Person"]["AP"] == pytest.approx(person_ap)
    assert coco["AP50"] == pytest.approx((car + person_ap50) / 2)
    assert coco["mAP"] == pytest.approx((car + person_ap) / 2)
    assert (coco["images"], coco["true_boxes"], coco["detected_boxes"]) == (1, 3, 4)
    assert classes["Car"]["pr_curve_50"][:51] == pytest.approx([1.0] * 51)  # COCO divides by tp + fp + eps
    assert classes["Car"]["pr_curve_50"][51:] == pytest.approx([2 / 3] * 50)
    # At IoU 0.5 with equal classes: Car 2 TP, 1 FP; Person 1 TP.
    rows = {row["class"]: row for row in version["quality"]["detection"]["classes"]}
    assert (rows["Car"]["tp"], rows["Car"]["fp"], rows["Car"]["fn"]) == (2, 1, 0)
    assert rows["Car"]["precision"] == pytest.approx(2 / 3) and rows["Car"]["recall"] == 1.0
    assert rows["Car"]["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert (rows["Person"]["precision"], rows["Person"]["recall"], rows["Person"]["f1"]) == (1.0, 1.0, 1.0)
    assert version["quality"]["detection"]["micro"]["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert (version["predictions"], version["tasks_predicted"], version["regions_predicted"],
            version["tasks_annotated"]) == (1, 1, 4, 1)


def test_the_prediction_score_stands_in_for_regions_without_one():
    truth = [box("g1", "Car", 0, 0, 20, 20)]
    # Scored by the prediction: the false positive ranks first, so precision is 1/2 at recall 1.
    detected = [box("d1", "Car", 0, 0, 20, 20, score=0.4), box("d2", "Car", 60, 60, 20, 20)]
    result = review([(task(1, [truth], [prediction(5, "v1", detected, score=0.6)]), SQUARE)])
    assert result["model_versions"][0]["quality"]["coco"]["AP50"] == pytest.approx(0.5)


def choice(value):
    return {"id": "c", "from_name": "weather", "to_name": "image", "type": "choices", "value": {"choices": [value]}}


def test_choices_confusion_matrix():
    tasks = [task(1, [[choice("sunny")]], [prediction(1, "v1", [choice("sunny")])]),
             task(2, [[choice("rainy")]], [prediction(2, "v1", [choice("sunny")])]),
             task(3, [[choice("sunny")]], [prediction(3, "v1", [])])]
    matrix = review((t, None) for t in tasks)["model_versions"][0]["quality"]["choices"]["weather"]
    assert matrix["labels"] == ["rainy", "sunny", "(none)"]
    # rows: what the annotation says; columns: what the prediction said
    assert matrix["matrix"] == [[0, 1, 0], [0, 1, 1], [0, 0, 0]]
    assert matrix["accuracy"] == pytest.approx(1 / 3) and matrix["compared"] == 3


TEXT = "Alice met Bob in Paris"


def span(region_id, start, end, label):
    return {"id": region_id, "from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": TEXT[start:end], "labels": [label]}}


def test_span_scores_are_strict():
    truth = [span("a", 0, 5, "PER"), span("b", 10, 13, "PER"), span("c", 17, 22, "LOC")]
    predicted = [span("p", 0, 5, "PER"),   # exact: TP
                 span("q", 10, 12, "PER"),  # one character short: FP, and "Bob" is missed (FN)
                 span("r", 17, 22, "ORG")]  # right place, wrong class: FP ORG, FN LOC
    result = review([(task(1, [truth], [prediction(1, "ner", predicted)], {"text": TEXT}), None)])
    spans = result["model_versions"][0]["quality"]["spans"]
    rows = {row["class"]: (row["tp"], row["fp"], row["fn"]) for row in spans["classes"]}
    assert rows == {"PER": (1, 1, 1), "LOC": (0, 0, 1), "ORG": (0, 1, 0)}
    assert (spans["micro"]["precision"], spans["micro"]["recall"], spans["micro"]["f1"]) == \
        pytest.approx((1 / 3, 1 / 3, 1 / 3))


def said(text):
    return {"id": "t", "from_name": "transcription", "to_name": "audio", "type": "textarea", "value": {"text": [text]}}


def test_word_error_rate_over_all_words():
    tasks = [task(1, [[said("the cat sat on the mat")]], [prediction(1, "asr", [said("the cat sit on mat")])],
                  {"audio": "a.wav"}),
             task(2, [[said("hello world")]], [prediction(2, "asr", [said("hello world")])], {"audio": "b.wav"})]
    words = review((t, None) for t in tasks)["model_versions"][0]["quality"]["transcription"]["transcription"]
    # "sat" → "sit" is one substitution, the second "the" one deletion: 2 errors in 6 + 2 words.
    assert (words["word_errors"], words["reference_words"]) == (2, 8)
    assert words["wer"] == pytest.approx(0.25)


def two_versions(v1_at, v2_at):
    good = [box("g", "Car", 10, 10, 30, 30)]
    off = [box("o", "Car", 60, 60, 30, 30, score=0.9)]
    tasks = [task(t, [[box("g", "Car", 10, 10, 30, 30)]],
                  [prediction(t * 10 + 1, "v1", good, v1_at, 0.9), prediction(t * 10 + 2, "v2", off, v2_at, 0.9)])
             for t in (1, 2)]
    # A task only v2 predicted, annotated: not one both predicted, so not compared.
    tasks.append(task(3, [[box("g", "Car", 10, 10, 30, 30)]],
                      [prediction(31, "v2", [box("g", "Car", 10, 10, 30, 30)], v2_at, 0.9)]))
    return review((t, SQUARE) for t in tasks)


def test_newest_version_worse_than_the_previous_on_the_same_tasks_is_flagged():
    result = two_versions("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z")
    assert [v["model_version"] for v in result["model_versions"]] == ["v1", "v2"]
    comparison = result["comparison"]
    assert (comparison["previous"], comparison["newest"], comparison["tasks"], comparison["worse"]) == \
        ("v1", "v2", 2, True)
    metrics = {m["metric"]: m for m in comparison["metrics"]}
    assert (metrics["box AP@0.5"]["previous"], metrics["box AP@0.5"]["newest"]) == (1.0, 0.0)
    assert metrics["box AP@0.5"]["worse"] and metrics["detection F1@0.5"]["worse"]
    # Over all its tasks v2 looks half right; on the shared ones it is all wrong.
    v2 = result["model_versions"][1]["quality"]["detection"]["micro"]
    assert (v2["tp"], v2["fp"], v2["fn"]) == (1, 2, 2)


def test_newest_version_better_than_the_previous_passes():
    result = two_versions("2024-02-01T00:00:00Z", "2024-01-01T00:00:00Z")  # v1 is now the newer
    comparison = result["comparison"]
    assert (comparison["previous"], comparison["newest"], comparison["worse"]) == ("v2", "v1", False)
    assert {m["metric"] for m in comparison["metrics"]} >= {"box AP@0.5", "detection F1@0.5", "box mAP@[.5:.95]"}
    assert not any(m["worse"] for m in comparison["metrics"])


def test_one_version_has_no_comparison_and_cancelled_annotations_are_no_reference():
    cancelled = Task.from_dict({"id": 1, "data": {"image": "a.png"},
                                "annotations": [{"id": 1, "was_cancelled": True, "result": []}],
                                "predictions": [prediction(1, "v1", [box("p", "Car", 0, 0, 10, 10)])]})
    result = review([(cancelled, SQUARE)])
    (version,) = result["model_versions"]
    assert result["comparison"] is None
    assert (version["tasks_predicted"], version["tasks_annotated"], version["quality"]["annotations_compared"]) == \
        (1, 0, 0)
