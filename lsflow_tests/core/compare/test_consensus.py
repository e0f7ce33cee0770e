"""The consensus policy in the core: what is merged, what reaches no quorum, and how it is marked."""

import pytest

from lsflow.core.compare.consensus import select_annotations
from lsflow.core.model.selection import CANCELLED, MERGED, AnnotationPolicy, contributing
from lsflow.core.model.task import Task

TEXT = "Alice met Bob in Paris today."  # tokens: Alice met Bob in Paris today .


def _span(start, end, label):
    return {"type": "labels", "from_name": "ner", "to_name": "text",
            "value": {"start": start, "end": end, "text": TEXT[start:end], "labels": [label]}}


def _annotation(annotation_id, *results, **extra):
    return {"id": annotation_id, "completed_by": annotation_id,
            "result": [dict(r, id=f"r{annotation_id}-{k}") for k, r in enumerate(results)], **extra}


def _select(task, policy="consensus"):
    chosen, skipped = select_annotations(Task.from_dict(task), AnnotationPolicy.parse(policy))
    return chosen, sorted((a.id, why) for a, why in skipped)


def test_spans_merge_by_token_vote():
    # PER: alice "Alice", bob "Alice met" → token Alice 2 votes, met 1: "Alice". LOC: alice "Paris",
    # carol "Paris today" → "Paris". carol's PER "Bob" has one vote of three: no quorum.
    task = {"id": 1, "data": {"text": TEXT}, "annotations": [
        _annotation(1, _span(0, 5, "PER"), _span(17, 22, "LOC")),
        _annotation(2, _span(0, 9, "PER")),
        _annotation(3, _span(17, 28, "LOC"), _span(10, 13, "PER")),
    ]}
    (merged,), skipped = _select(task)
    assert skipped == [(1, MERGED), (2, MERGED), (3, MERGED)]
    assert [(r.value["start"], r.value["end"], r.value["text"], r.labels) for r in merged.regions] == [
        (0, 5, "Alice", ["PER"]), (17, 22, "Paris", ["LOC"])]
    assert [(a.id, r.id, why) for a, r, why in merged.unmerged] == [
        (3, "r3-1", "no consensus quorum: 1 of 3 annotations agree (quorum 2)")]
    # Marked as the consensus, and standing for all three in the lineage.
    assert (merged.id, merged.completed_by) == (None, "consensus")
    assert merged.raw["lsflow_consensus"] == {"annotations": [1, 2, 3], "quorum": 2, "regions_without_quorum": 1}
    assert [a.id for a in contributing([merged])] == [1, 2, 3]


def _box(x, label="cat", kind="rectanglelabels"):
    value = {"x": x, "y": 10, "width": 20, "height": 20, kind: [label]}
    if kind == "polygonlabels":
        value = {"points": [[x, 10], [x + 20, 10], [x, 30]], kind: [label]}
    return {"type": kind, "from_name": "label", "to_name": "image", "original_width": 100, "original_height": 100,
            "value": value}


def test_quorum_explicit_labels_kept_apart_and_other_kinds_reported():
    task = {"id": 1, "data": {"image": "a.jpg"}, "annotations": [
        _annotation(1, _box(10), _box(50, "dog"), _box(0, kind="polygonlabels")),
        _annotation(2, _box(11), _box(50, "cat")),
        _annotation(3, _box(12), was_cancelled=True),
    ]}
    # Two annotations count: majority quorum 2. The cats at 10 and 11 fuse to x 10.5; at 50 a dog
    # and a cat never cluster (same label required).
    (merged,), skipped = _select(task)
    assert skipped == [(1, MERGED), (2, MERGED), (3, CANCELLED)]
    assert [(r.labels, r.value["x"]) for r in merged.regions] == [(["cat"], pytest.approx(10.5))]
    assert sorted((a.id, r.id, why) for a, r, why in merged.unmerged) == [
        (1, "r1-1", "no consensus quorum: 1 of 2 annotations agree (quorum 2)"),
        (1, "r1-2", "the consensus does not merge polygon regions"),
        (2, "r2-1", "no consensus quorum: 1 of 2 annotations agree (quorum 2)")]
    # consensus:1: every cluster counts.
    (merged,), _ = _select(task, "consensus:1")
    assert sorted((r.labels[0], r.value["x"]) for r in merged.regions) == [
        ("cat", pytest.approx(10.5)), ("cat", pytest.approx(50)), ("dog", pytest.approx(50))]


def test_choices_majority_and_ties():
    def choice(value):
        return {"type": "choices", "from_name": "c", "to_name": "image", "value": {"choices": [value]}}
    task = {"id": 1, "data": {"image": "a.jpg"}, "annotations": [
        _annotation(1, choice("a")), _annotation(2, choice("b")), _annotation(3, choice("a")), _annotation(4, choice("b"))]}
    (merged,), _ = _select(task)  # 2 to 2 of 4, quorum 3: none
    assert merged.regions == ()
    assert {why for _, _, why in merged.unmerged} == {"no consensus quorum: 2 of 4 annotations agree (quorum 3), a tie"}
    (merged,), _ = _select(task, "consensus:2")  # a tie is no majority whatever the quorum
    assert merged.regions == ()
    task["annotations"][1] = _annotation(2, choice("a"))
    (merged,), _ = _select(task)
    assert [r.value["choices"] for r in merged.regions] == [["a"]] and merged.unmerged == ()

