"""The consensus annotation: one annotation merged from a task's annotations.

The quorum q is how many annotations must agree: `consensus:<q>`, or by default more than half of
the task's non-cancelled annotations (n // 2 + 1). What agrees:

- **Boxes** (rectangles, rotated or not): clustered across annotations, one annotation after the
  other in the task's order; each annotation's boxes are matched one to one (`matching.match`,
  IoU >= 0.5 in pixels, same label and control) to the clusters' fused boxes so far, so a cluster
  holds at most one box per annotation, and an unmatched box starts a cluster. A cluster of >= q
  boxes becomes one box by weighted box fusion (Solovyev et al. 2021): each coordinate is the
  weighted mean of the members', weights their scores where present, else 1, in pixel space. Label
  Studio's box is its top-left corner, size and clockwise rotation about that corner, so those are
  averaged (the rotation as a circular mean); for unrotated boxes that is the mean of the corners,
  which is WBF. The fused box is stored back in percent of its image (`original_width/height` kept).
- **Choices and taxonomy**: per control, a majority vote over the annotations' values (a multiple
  choice as a set); the winner needs >= q votes and more than any other value (a tie has no quorum).
- **Text spans**: per control and label, a vote per token (Label Studio's tokenizer, as CONLL2003):
  a token is in the merged spans of label L if >= q annotations put it in a span labelled L (a span
  covers every token it shares a character with); runs of consecutive such tokens become spans.
- **Every other region** (polygons, masks, keypoints, text areas, ratings, …) is not merged.

What reaches no quorum, and what is not merged, is never silently lost: those regions are listed on
the merged annotation (`ConsensusAnnotation.unmerged`) with the reason, and every format reports
them as dropped regions of the task (`lsflow_dropped.jsonl`, counted in `lsflow_report.json`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lsflow.core.compare.matching import match
from lsflow.core.compare.regions import Comparable, comparable, comparables
from lsflow.core.geometry.text_spans import TokenizeError, text_of, tokenize
from lsflow.core.model.selection import (
    CANCELLED,
    MERGED,
    AnnotationPolicy,
    ConsensusAnnotation,
)
from lsflow.core.model.selection import (
    select_annotations as select_by_policy,
)
from lsflow.core.model.task import Annotation, ImageSize, Region, Task

IOU_THRESHOLD = 0.5
CONSENSUS = "consensus"  # the merged annotation's completed_by


def select_annotations(task: Task, policy: AnnotationPolicy, image: ImageSize | None = None
                       ) -> tuple[list[Annotation], list[tuple[Annotation, str]]]:
    """(annotations to export, [(annotation left out, why)]) for any policy; `consensus` gives one
    merged annotation and leaves the originals out as merged into it."""
    if policy.kind != "consensus":
        return select_by_policy(task, policy)
    skipped = [(a, CANCELLED) for a in task.annotations if a.was_cancelled]
    candidates = [a for a in task.annotations if not a.was_cancelled]
    if not candidates:
        return [], skipped
    quorum = policy.quorum if policy.quorum is not None else len(candidates) // 2 + 1
    merged = merge(task, candidates, quorum, image)
    return [merged], skipped + [(a, MERGED) for a in candidates]


def merge(task: Task, annotations: Sequence[Annotation], quorum: int, image: ImageSize | None = None) -> ConsensusAnnotation:
    """The consensus of `annotations` (non-cancelled) at `quorum`."""
    total = len(annotations)
    unmerged: list[tuple[Annotation, Region, str]] = []
    boxes: list[tuple[Annotation, Comparable]] = []
    choices: dict[tuple[str, str], list[tuple[Annotation, Comparable]]] = {}
    spans: dict[tuple[str, str], list[tuple[Annotation, Region]]] = {}
    for annotation in annotations:
        made, rejected = comparables(annotation, image)
        unmerged += [(annotation, region, f"not merged by the consensus: {why}") for region, why in rejected]
        for item in made:
            if item.kind == "box":
                boxes.append((annotation, item))
            elif item.kind == "choice":
                choices.setdefault((item.from_name, item.to_name), []).append((annotation, item))
            elif item.kind == "span" and item.region.type == "labels":
                spans.setdefault((item.from_name, item.to_name), []).append((annotation, item.region))
            else:
                unmerged.append((annotation, item.region, f"the consensus does not merge {item.kind} regions"))

    def no_quorum(agreeing: int) -> str:
        return f"no consensus quorum: {agreeing} of {total} annotations agree (quorum {quorum})"

    result: list[dict[str, Any]] = []
    for members in _box_clusters(annotations, boxes):
        if len(members) >= quorum:
            result.append(_fused_box([item for _, item in members], len(result)))
        else:
            unmerged += [(a, item.region, no_quorum(len(members))) for a, item in members]
    for voted in choices.values():
        votes = Counter(item.label for _, item in voted)
        (winner, count), *rest = votes.most_common()
        if count >= quorum and (not rest or rest[0][1] < count):
            first = next(item for _, item in voted if item.label == winner)
            result.append(_copy(first.region, len(result)))
        else:
            reason = no_quorum(count) if not rest or rest[0][1] < count else f"{no_quorum(count)}, a tie"
            unmerged += [(a, item.region, reason) for a, item in voted]
    for (from_name, to_name), labelled in spans.items():
        merged, left = _span_vote(task, from_name, to_name, labelled, quorum, total)
        for region in merged:
            result.append({**region, "id": f"consensus-{len(result)}"})
        unmerged += left

    sources = tuple(annotations)
    raw = {"id": None, "completed_by": CONSENSUS, "result": result,
           "lsflow_consensus": {"annotations": [a.id for a in sources], "quorum": quorum,
                                "regions_without_quorum": len(unmerged)}}
    updated = max((a.updated_at or "" for a in sources), default="") or None
    merged_annotation = Task.from_dict({"id": task.id, "data": {}, "annotations": [raw]}).annotations[0]
    return ConsensusAnnotation(None, False, False, False, CONSENSUS, None, updated,
                               merged_annotation.regions, raw, sources, tuple(unmerged))


def _box_clusters(annotations: Sequence[Annotation], boxes: list[tuple[Annotation, Comparable]]
                  ) -> list[list[tuple[Annotation, Comparable]]]:
    clusters: list[list[tuple[Annotation, Comparable]]] = []
    fused: list[Comparable] = []  # each cluster's fused box so far, to match the next annotation's boxes
    for annotation in annotations:
        mine = [item for owner, item in boxes if owner is annotation]
        if not mine:
            continue
        matching = match(fused, mine, IOU_THRESHOLD, same_label=True)
        for pair in matching.pairs:
            clusters[pair.a].append((annotation, mine[pair.b]))
            fused[pair.a] = comparable(_region_of(_fused_box([item for _, item in clusters[pair.a]], 0)))
        for index in matching.only_b:
            clusters.append([(annotation, mine[index])])
            fused.append(mine[index])
    return clusters


def _fused_box(members: list[Comparable], index: int) -> dict[str, Any]:
    """Weighted box fusion of the members, in pixels, stored in percent of the first member's image."""
    weights = [item.score if item.score is not None else 1.0 for item in members]
    total = sum(weights)
    params = [_pixel_box(item) for item in members]

    def mean(k: int) -> float:
        return sum(w * p[k] for w, p in zip(weights, params)) / total

    angle = math.degrees(math.atan2(sum(w * math.sin(math.radians(p[4])) for w, p in zip(weights, params)),
                                    sum(w * math.cos(math.radians(p[4])) for w, p in zip(weights, params)))) % 360
    first = members[0]
    assert first.image is not None  # boxes are made with their image size
    width, height = first.image
    raw = _copy(first.region, index)
    value = dict(raw["value"])
    value.update(x=mean(0) * 100 / width, y=mean(1) * 100 / height, width=mean(2) * 100 / width,
                 height=mean(3) * 100 / height, rotation=round(angle, 9) % 360)
    raw.update(value=value, original_width=width, original_height=height)
    return raw


def _pixel_box(item: Comparable) -> tuple[float, float, float, float, float]:
    """(x, y, width, height, rotation) in pixels, from the box's corners: top-left, top-right, bottom-left."""
    (x0, y0), (x1, y1), _, (x3, y3) = item.points
    return x0, y0, math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0), item.rotation


def _region_of(raw: dict[str, Any]) -> Region:
    return Task.from_dict({"id": 0, "data": {}, "annotations": [{"result": [raw]}]}).annotations[0].regions[0]


def _copy(region: Region, index: int) -> dict[str, Any]:
    """The region's JSON as the merged annotation's: a new id, no score, no parent."""
    raw = {key: value for key, value in region.raw.items() if key not in ("id", "score", "parentID")}
    raw["id"] = f"consensus-{index}"
    return raw


def _span_vote(task: Task, from_name: str, to_name: str, labelled: list[tuple[Annotation, Region]], quorum: int,
               total: int) -> tuple[list[dict[str, Any]], list[tuple[Annotation, Region, str]]]:
    """(merged span regions, [(span without quorum, why)]) of one control."""
    key = to_name if to_name in task.data else "text"
    text = text_of(task.data, key)
    if text is None:
        return [], [(a, r, f"not merged by the consensus: the task has no text under data['{key}']")
                    for a, r in labelled]
    try:
        tokens = tokenize(text)
    except TokenizeError as error:
        return [], [(a, r, f"not merged by the consensus: {error}") for a, r in labelled]
    # label → token index → the annotations that put the token in a span of that label
    votes: dict[str, dict[int, set[int]]] = {}
    covered: dict[int, list[int]] = {}  # region position in `labelled` → its tokens
    for position, (annotation, region) in enumerate(labelled):
        start, end = region.value["start"], region.value["end"]
        covered[position] = [k for k, (s, e) in enumerate(tokens) if s < end and e > start]
        for k in covered[position]:
            votes.setdefault(region.labels[0] if region.labels else "", {}).setdefault(k, set()).add(id(annotation))
    merged: list[dict[str, Any]] = []
    agreed: set[tuple[str, int]] = set()
    for label, by_token in votes.items():
        chosen = sorted(k for k, who in by_token.items() if len(who) >= quorum)
        agreed.update((label, k) for k in chosen)
        runs: list[list[int]] = []
        for k in chosen:
            if runs and runs[-1][-1] == k - 1:
                runs[-1].append(k)
            else:
                runs.append([k])
        template = next(r for _, r in labelled if (r.labels[0] if r.labels else "") == label)
        for run in runs:
            start, end = tokens[run[0]][0], tokens[run[-1]][1]
            raw = _copy(template, 0)
            raw["value"] = {**template.value, "start": start, "end": end, "text": text[start:end]}
            merged.append(raw)
    left = []
    for position, (annotation, region) in enumerate(labelled):
        label = region.labels[0] if region.labels else ""
        if not any((label, k) in agreed for k in covered[position]):
            best = max((len(votes[label][k]) for k in covered[position]), default=0)
            left.append((annotation, region, f"no consensus quorum: {best} of {total} annotations agree (quorum {quorum})"))
    merged.sort(key=lambda raw: (raw["value"]["start"], raw["value"]["end"]))
    return merged, left
