"""The annotation policy: which annotations of a task reach a dataset, and why the others do not."""

import pytest

from lsflow.core.model.selection import CANCELLED, NOT_SELECTED, AnnotationPolicy, select_annotations
from lsflow.core.model.task import Task
from lsflow_tests.core.formats.exporting import run
from lsflow_tests.paths import IMAGE_EXPORT


def _task(*annotations):
    return Task.from_dict({"id": 1, "data": {"image": "a.jpg"}, "annotations": list(annotations)})


def _annotation(annotation_id, updated_at, created_at="2025-01-01T00:00:00Z", completed_by=1, **extra):
    return {"id": annotation_id, "result": [], "updated_at": updated_at, "created_at": created_at,
            "completed_by": completed_by, **extra}


def _chosen(task, policy):
    chosen, skipped = select_annotations(task, AnnotationPolicy.parse(policy))
    return [a.id for a in chosen], sorted((a.id, reason) for a, reason in skipped)


def test_all_keeps_every_annotation_but_cancelled_ones():
    task = _task(_annotation(1, "2025-01-02T00:00:00Z"), _annotation(2, "2025-01-01T00:00:00Z", was_cancelled=True),
                 _annotation(3, "2025-01-03T00:00:00Z"))
    assert _chosen(task, "all") == ([1, 3], [(2, CANCELLED)])


def test_latest_is_the_most_recently_updated_whatever_the_list_order():
    task = _task(_annotation(1, "2025-03-01T00:00:00Z"), _annotation(2, "2025-05-01T00:00:00Z"),
                 _annotation(3, "2025-04-01T00:00:00Z"))
    assert _chosen(task, "latest") == ([2], [(1, NOT_SELECTED), (3, NOT_SELECTED)])
    # Equal update times: the later creation wins, then the higher id — never list order.
    tied = _task(_annotation(7, "2025-05-01T00:00:00Z", "2025-01-02T00:00:00Z"),
                 _annotation(5, "2025-05-01T00:00:00Z", "2025-01-02T00:00:00Z"),
                 _annotation(9, "2025-05-01T00:00:00Z", "2025-01-01T00:00:00Z"))
    assert _chosen(tied, "latest")[0] == [7]


def test_ground_truth_first_takes_the_latest_ground_truth_else_the_latest():
    task = _task(_annotation(1, "2025-01-01T00:00:00Z", ground_truth=True),
                 _annotation(2, "2025-06-01T00:00:00Z"),
                 _annotation(3, "2025-02-01T00:00:00Z", ground_truth=True))
    assert _chosen(task, "ground_truth_first")[0] == [3]
    no_truth = _task(_annotation(1, "2025-01-01T00:00:00Z"), _annotation(2, "2025-06-01T00:00:00Z"))
    assert _chosen(no_truth, "ground_truth_first")[0] == [2]


def test_one_annotator_by_id_or_email():
    task = _task(_annotation(1, "2025-01-01T00:00:00Z", completed_by=4),
                 _annotation(2, "2025-01-02T00:00:00Z", completed_by={"id": 5, "email": "kim@example.com"}),
                 _annotation(3, "2025-01-03T00:00:00Z", completed_by=5))
    assert _chosen(task, "annotator:4") == ([1], [(2, NOT_SELECTED), (3, NOT_SELECTED)])
    assert _chosen(task, "annotator:5")[0] == [2, 3]
    assert _chosen(task, "annotator:kim@example.com")[0] == [2]
    assert _chosen(task, "annotator:nobody") == ([], [(1, NOT_SELECTED), (2, NOT_SELECTED), (3, NOT_SELECTED)])


@pytest.mark.parametrize("text", ["oldest", "annotator:", "", "LATEST"])
def test_an_unknown_policy_is_refused_with_the_choices(text):
    with pytest.raises(ValueError, match="use one of all, latest, ground_truth_first, annotator:<id or email>"):
        AnnotationPolicy.parse(text)


@pytest.mark.parametrize("text", ["all", "latest", "ground_truth_first", "annotator:kim@example.com", "consensus",
                                  "consensus:3"])
def test_a_policy_reads_back_as_written(text):
    assert str(AnnotationPolicy.parse(text)) == text


def test_the_report_counts_what_the_policy_left_out(tmp_path):
    report = run(tmp_path, IMAGE_EXPORT, ["YOLO"], policy="ground_truth_first")["YOLO"].report
    # Task 102: the ground-truth annotation 1003 is kept over the other; task 103's cancelled one is counted.
    assert report["annotations_skipped"] == {CANCELLED: 1, NOT_SELECTED: 1}
    assert report["annotations_exported"] == 6


@pytest.mark.parametrize("text", ["consensus:0", "consensus:x", "consensus:", "consensus:-1"])
def test_a_consensus_quorum_must_be_a_whole_number_of_annotations(text):
    with pytest.raises(ValueError, match="is not a whole number of annotations >= 1"):
        AnnotationPolicy.parse(text)


def test_consensus_needs_the_compare_layer():
    # The merge needs region geometry: this layer refuses rather than silently exporting something else.
    task = _task(_annotation(1, "2025-01-01T00:00:00Z"))
    with pytest.raises(ValueError, match="lsflow.core.compare.consensus.select_annotations"):
        select_annotations(task, AnnotationPolicy.parse("consensus"))
