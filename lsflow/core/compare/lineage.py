"""Where an annotation came from: the prediction it was made from, and what the person did to each region.

What Label Studio records, read from its source (server 1.23.2 in `label_studio/`, editor in
`web/libs/editor/src/` of HumanSignal/label-studio):

- Loading a task, the editor stamps every result of every prediction `origin: "prediction"`
  (`stores/AppStore.js`, `initializeStore`). Regions a person draws are `"manual"`, the default of
  `origin` (`mixins/Regions.js`).
- Accepting a prediction (`addAnnotationFromPrediction`, `stores/Annotation/store.js`) copies its results
  with their ids (the editor appends `#<annotation>` inside, and `AreaMixin.cleanId` cuts it off again
  when `Result.serialize` writes the result) and sets the annotation's `parent_prediction` to the
  prediction's id. The server keeps both: `Annotation.parent_prediction` is a foreign key to the
  prediction (`tasks/models.py`; SET_NULL when the prediction is deleted), results are stored as sent.
- A region turns `"prediction-changed"` when its shape is edited: `updateOriginOnEdit` runs from
  `notifyDrawingFinished`, called when a draw, move, resize or transform ends (`mixins/Regions.js`).
  Changing a region's label goes through `AreaMixin.setValue` (`mixins/AreaMixin.js`), which leaves
  `origin` alone: a relabelled region may still say `"prediction"`.
- The Data Manager action "Create Annotations From Predictions"
  (`data_manager/actions/predictions_to_annotations.py`) copies a prediction's results as they are
  (ids kept, no `origin` added) and sets `parent_prediction`.

So an annotation's prediction is its `parent_prediction`, else the prediction of the task sharing the
most result ids with it. Within it, a region is the annotation's results sharing one id, and its
fate is decided by comparing values with the prediction's region of the same id: `origin` is what a
person's edit says happened, but it misses relabelling and says nothing for the Data Manager action,
while the values are always there. `origin` is reported beside the result (`RegionLineage.origin`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lsflow.core.compare.matching import similarity
from lsflow.core.compare.regions import Comparable, comparable
from lsflow.core.geometry.shapes import RegionDrop
from lsflow.core.model.task import Annotation, ImageSize, Region, Task

UNCHANGED, EDITED, DELETED, ADDED = "unchanged", "edited", "deleted", "added"
# What an edit did (a region can be edited in several ways at once).
MOVED, RESIZED, RESHAPED, RELABELLED, VALUE_CHANGED = "moved", "resized", "reshaped", "relabelled", "value_changed"
EDITS = (MOVED, RESIZED, RESHAPED, RELABELLED, VALUE_CHANGED)
LINKED_BY_PARENT, LINKED_BY_IDS = "parent_prediction", "result_ids"

# Where a shape sits / how big it is, in a result's `value`.
_POSITION_KEYS = ("x", "y")
_SIZE_KEYS = ("width", "height", "radiusX", "radiusY")
_RANGE_KEYS = (("start", "end"), ("startOffset", "endOffset"))
_SHAPE_KEYS = frozenset({*_POSITION_KEYS, *_SIZE_KEYS, "rotation", "points", "rle", "start", "end", "startOffset",
                         "endOffset", "globalOffsets", "closed"})
# Floats written back unchanged may differ in the last bits; 1e-6 % of an image is far below a pixel.
_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class RegionLineage:
    region_id: str | None
    status: str  # UNCHANGED, EDITED, DELETED (the prediction's, left out) or ADDED (the person's own)
    edits: tuple[str, ...] = ()  # for EDITED: what changed, in EDITS order
    # EDITED shapes (box, polygon, mask, keypoint, span): the similarity of the annotation's shape to the
    # prediction's (`lsflow.core.compare.matching.similarity`: IoU for boxes and polygons).
    iou: float | None = None
    label: str | None = None  # the annotation's label (the prediction's for DELETED)
    predicted_label: str | None = None
    origin: str | None = None  # `origin` on the annotation's result, as Label Studio recorded it


@dataclass(frozen=True, slots=True)
class AnnotationLineage:
    task_id: Any
    annotation_id: Any
    prediction_id: Any  # None: made without a prediction of the task
    model_version: str | None
    linked_by: str | None  # LINKED_BY_PARENT or LINKED_BY_IDS
    regions: tuple[RegionLineage, ...]

    def counts(self) -> Counter[str]:
        """Regions per status and per edit (an edited region counts once in EDITED and once per edit)."""
        counted: Counter[str] = Counter()
        for region in self.regions:
            counted[region.status] += 1
            counted.update(region.edits)
        return counted


def source_prediction(task: Task, annotation: Annotation) -> tuple[Annotation | None, str | None]:
    """The prediction `annotation` was made from, and how that is known (or None, None)."""
    parent = annotation.raw.get("parent_prediction")
    if isinstance(parent, dict):  # an expanded export may nest the object
        parent = parent.get("id")
    if parent is not None:
        for prediction in task.predictions:
            if prediction.id == parent:
                return prediction, LINKED_BY_PARENT
    ids = {region.id for region in annotation.regions if region.id}
    best, shared = None, 0
    for prediction in task.predictions:  # the most shared ids; a tie goes to the later prediction
        count = len(ids & {region.id for region in prediction.regions if region.id})
        if count and count >= shared:
            best, shared = prediction, count
    return (best, LINKED_BY_IDS) if best is not None else (None, None)


def annotation_lineage(task: Task, annotation: Annotation, image: ImageSize | None = None) -> AnnotationLineage:
    """What became of the regions of the prediction `annotation` came from (none: every region ADDED)."""
    prediction, linked_by = source_prediction(task, annotation)
    predicted = region_groups(prediction.regions) if prediction is not None else {}
    annotated = region_groups(annotation.regions)
    out = []
    for key, results in annotated.items():
        origin = next((r.raw.get("origin") for r in results if r.raw.get("origin") is not None), None)
        before = predicted.get(key) if key[0] is not None else None
        if before is None:
            out.append(RegionLineage(key[0], ADDED, label=_label(results), origin=origin))
            continue
        edits = _edits(before, results)
        out.append(RegionLineage(
            key[0], EDITED if edits else UNCHANGED, edits, _shape_similarity(before, results, image) if edits else None,
            _label(results), _label(before), origin))
    for key, results in predicted.items():
        if key[0] is None or key not in annotated:
            out.append(RegionLineage(key[0], DELETED, label=_label(results), predicted_label=_label(results)))
    return AnnotationLineage(task.id, annotation.id, prediction.id if prediction is not None else None,
                             _model_version(prediction), linked_by, tuple(out))


def _model_version(prediction: Annotation | None) -> str | None:
    if prediction is None:
        return None
    version = prediction.raw.get("model_version")
    return None if version is None else str(version)


def region_groups(results: Iterable[Region]) -> dict[tuple[str | None, int], list[Region]]:
    """Results grouped into regions by id (a box and its per-region choices share one); relations are
    not regions, and a result without an id is a region of its own that nothing can be linked to."""
    regions: dict[tuple[str | None, int], list[Region]] = {}
    for position, result in enumerate(results):
        if result.type == "relation":
            continue
        key = (str(result.id), 0) if result.id is not None else (None, position)
        regions.setdefault(key, []).append(result)
    return regions


def _label(results: list[Region]) -> str | None:
    for result in results:
        if result.labels:
            return result.labels[0]
    return None


def _edits(before: list[Region], after: list[Region]) -> tuple[str, ...]:
    found: set[str] = set()
    old = {r.from_name: r for r in before}
    new = {r.from_name: r for r in after}
    if old.keys() != new.keys():  # a per-region control's result added or removed
        found.add(VALUE_CHANGED)
    for name in old.keys() & new.keys():
        a, b = old[name], new[name]
        if a.type != b.type:
            found.add(RESHAPED)
            continue
        if sorted(a.labels) != sorted(b.labels):
            found.add(RELABELLED)
        found |= _shape_edits(a.value, b.value)
        if _rest(a) != _rest(b):
            found.add(VALUE_CHANGED)
    return tuple(edit for edit in EDITS if edit in found)


def _shape_edits(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    if not _same(a.get("points"), b.get("points")):
        found.add(MOVED if _translated(a.get("points"), b.get("points")) else RESHAPED)
    if a.get("rle") != b.get("rle") or not _same(a.get("rotation"), b.get("rotation")) or \
            not _same(a.get("globalOffsets"), b.get("globalOffsets")):
        found.add(RESHAPED)
    resized = not all(_same(a.get(k), b.get(k)) for k in _SIZE_KEYS)
    if resized:
        found.add(RESIZED)  # a corner drag moves x/y too: that is the resize, not a move
    elif not all(_same(a.get(k), b.get(k)) for k in _POSITION_KEYS):
        found.add(MOVED)
    for start, end in _RANGE_KEYS:
        if not (_same(a.get(start), b.get(start)) and _same(a.get(end), b.get(end))):
            if _length(a, start, end) is not None and _same(_length(a, start, end), _length(b, start, end)):
                found.add(MOVED)
            else:
                found.add(RESIZED)
    return found


def _rest(result: Region) -> dict[str, Any]:
    """A result's value without its shape and labels (a textarea's text, a number, a rating, ...); a
    span's `text` is its characters, which follow from its offsets."""
    value = result.value
    span_text = isinstance(value.get("text"), str) and ("start" in value or "startOffset" in value)
    return {key: item for key, item in value.items()
            if key not in _SHAPE_KEYS and not key.endswith("labels") and key not in ("choices", "taxonomy")
            and not (span_text and key == "text")}


def _length(value: dict[str, Any], start: str, end: str) -> float | None:
    a, b = value.get(start), value.get(end)
    if isinstance(a, int | float) and isinstance(b, int | float) and _is_number(a) and _is_number(b):
        return float(b) - float(a)
    return None


def _translated(a: Any, b: Any) -> bool:
    """Both lists of points, the same number, all shifted by one offset."""
    if not (isinstance(a, list) and isinstance(b, list) and a and len(a) == len(b)):
        return False
    try:
        dx, dy = float(b[0][0]) - float(a[0][0]), float(b[0][1]) - float(a[0][1])
        return all(_same(float(q[0]) - float(p[0]), dx) and _same(float(q[1]) - float(p[1]), dy) for p, q in zip(a, b))
    except (TypeError, ValueError, IndexError):
        return False


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return math.isclose(float(a), float(b), rel_tol=_TOLERANCE, abs_tol=_TOLERANCE)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_SHAPE_KINDS = frozenset({"box", "polygon", "mask", "keypoint", "span"})


def _shape_similarity(before: list[Region], after: list[Region], image: ImageSize | None) -> float | None:
    """The similarity of the region's shape before and after (its first result that has a shape)."""
    old, new = _shape_of(before, image), _shape_of(after, image)
    if old is None or new is None:
        return None
    return similarity(old, new)


def _shape_of(results: list[Region], image: ImageSize | None) -> Comparable | None:
    for result in results:
        try:
            made = comparable(result, image)
        except RegionDrop:
            continue
        if made.kind in _SHAPE_KINDS:
            return made
    return None
