"""Annotator agreement: the statistics against textbook and hand-computed values, and region F1 on
a crafted three-annotator task."""

import pytest

from lsflow.core.compare.agreement import agreement, cohen_kappa, fleiss_kappa, krippendorff_alpha
from lsflow.core.model.task import Task

# Two raters, ten items.
FIRST = ["y", "y", "n", "y", "n", "n", "y", "y", "n", "y"]
SECOND = ["y", "n", "n", "y", "n", "y", "y", "y", "n", "n"]


def test_cohen_kappa_ten_items_by_hand():
    # Agreement on 7 of 10 items; the first says y 6 times, the second 5: p_e = .6·.5 + .4·.5 = .5.
    assert cohen_kappa(list(zip(FIRST, SECOND))) == pytest.approx((0.7 - 0.5) / (1 - 0.5))


def test_cohen_kappa_wikipedia_table():
    # Wikipedia's "Cohen's kappa" example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: κ = 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("y", "y"), ("y", "y")]) is None  # one category throughout: undefined


def test_fleiss_kappa_wikipedia_table():
    # Wikipedia's "Fleiss' kappa" example: 10 subjects, 14 raters, 5 categories: P̄ = 0.378,
    # P̄_e = 0.213, κ = 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    items = [[str(category) for category, count in enumerate(row) for _ in range(count)] for row in table]
    assert fleiss_kappa(items) == pytest.approx(0.210, abs=5e-4)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([["a", "b"], ["a", "b", "c"]])


def test_krippendorff_alpha_nominal_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", 4 observers, 12 units with
    # missing values (None): nominal α = 0.743.
    none = None
    observers = [[1, 2, 3, 3, 2, 1, 4, 1, 2, none, none, none],
                 [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, none, 3],
                 [none, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, none],
                 [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, none]]
    items = [[str(v) for v in unit if v is not None] for unit in zip(*observers)]
    assert krippendorff_alpha(items) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_two_raters_by_hand():
    # 20 ratings: y 11, n 9. Three disagreeing items, each two ordered pairs of weight 1/(2−1):
    # Σ_{c≠k} o_ck = 6; Σ_{c≠k} n_c n_k = 20² − 11² − 9² = 198; α = 1 − (20 − 1)·6 / 198.
    assert krippendorff_alpha([list(pair) for pair in zip(FIRST, SECOND)]) == pytest.approx(1 - 19 * 6 / 198)


def _box(x, y, w, h, label):
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 100,
            "original_height": 100, "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]}}


def _choice(value):
    return {"type": "choices", "from_name": "quality", "to_name": "image", "value": {"choices": [value]}}


def _annotation(annotation_id, who, *results, **extra):
    return {"id": annotation_id, "completed_by": {"id": annotation_id, "email": who}, "result": list(results), **extra}


def test_region_f1_per_pair_class_and_task_on_three_annotators():
    # 100x100 px image. Alice: cat [0,10]², dog [50,70]². Bob: cat [1,11]x[0,10] (IoU 90/110 with
    # alice's), dog [80,90]² (matches nothing). Carol: cat [0,10]². Every pair matches its cats:
    # alice/bob 1 of 2+2 → F1 2/4; alice/carol 1 of 2+1 → 2/3; bob/carol 1 of 2+1 → 2/3.
    # Per class: cat 3 matched of 6 (F1 1), dog 0 of 2+1+1 (F1 0); overall 2·3/10.
    task = {"id": 1, "data": {"image": "a.jpg"}, "annotations": [
        _annotation(1, "alice", _box(0, 0, 10, 10, "cat"), _box(50, 50, 20, 20, "dog"), _choice("good")),
        _annotation(2, "bob", _box(1, 0, 10, 10, "cat"), _box(80, 80, 10, 10, "dog"), _choice("good")),
        _annotation(3, "carol", _box(0, 0, 10, 10, "cat"), _choice("bad")),
        _annotation(4, "dave", _box(0, 0, 10, 10, "cat"), was_cancelled=True),  # not a rating
    ]}
    # One label apart: the same box is no match. A single annotator: not compared.
    other = {"id": 2, "data": {"image": "b.jpg"}, "annotations": [
        _annotation(1, "alice", _box(0, 0, 10, 10, "cat"), _choice("good")),
        _annotation(2, "bob", _box(0, 0, 10, 10, "dog"), _choice("good"))]}
    single = {"id": 3, "data": {"image": "c.jpg"}, "annotations": [_annotation(1, "alice", _box(0, 0, 5, 5, "cat"))]}
    report = agreement((Task.from_dict(raw), None) for raw in (task, other, single)).as_dict()
    assert (report["tasks"], report["tasks_compared"]) == (3, 2)
    regions = report["regions"]
    by_pair = {pair: (c["f1"], c["matched"]) for pair, c in regions["by_pair"].items()}
    # alice/bob over both tasks: 1 matched of (2+2) + (1+1).
    assert by_pair == {"alice / bob": (pytest.approx(2 / 6), 1), "alice / carol": (pytest.approx(2 / 3), 1),
                       "bob / carol": (pytest.approx(2 / 3), 1)}
    by_class = {label: (c["f1"], c["matched"], c["regions_first"] + c["regions_second"])
                for label, c in regions["by_class"].items()}
    # cat: task 1's 6 + alice's cat in task 2 (bob's box there is a dog); dog: task 1's 4 + bob's in task 2.
    assert by_class == {"cat": (pytest.approx(6 / 7), 3, 7), "dog": (0.0, 0, 5)}
    assert regions["by_task"]["1"]["f1"] == pytest.approx(6 / 10)
    assert regions["by_task"]["2"]["f1"] == 0.0
    assert regions["overall"]["f1"] == pytest.approx(6 / 12)
    # The choice: task 1 rated good, good, bad; task 2 good, good.
    quality = report["classifications"]["quality→image"]
    assert quality["items"] == 2
    assert quality["fleiss_kappa"] is None  # 3 ratings on one item, 2 on the other
    # Ratings: good 4, bad 1; task 1 adds 2·2 ordered unlike pairs of weight 1/2 → 2; task 2 none.
    # α = 1 − (5 − 1)·2 / (25 − 16 − 1) = 1 − 8/8 = 0.
    assert quality["krippendorff_alpha"] == pytest.approx(0.0)
    assert quality["pairs"]["alice / bob"] == {"items": 2, "cohen_kappa": None}  # all "good": undefined
    assert quality["pairs"]["alice / carol"]["items"] == 1
