"""The task / annotation / region model of a Label Studio export.

A `Task` keeps the raw dict it came from (JSON exports must be byte-faithful), plus typed views of
its annotations and predictions. Parsing validates the shape and names the task and region it
could not read, so a malformed export fails with an actionable message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Region types that carry no `value` by design.
VALUELESS_TYPES = frozenset({"relation"})


class ExportFormatError(ValueError):
    """The export does not have the shape of a Label Studio export."""

    def __init__(self, reason: str, task_id: Any = None, region_id: Any = None):
        where = []
        if task_id is not None:
            where.append(f"task {task_id}")
        if region_id is not None:
            where.append(f"region {region_id}")
        self.task_id, self.region_id, self.reason = task_id, region_id, reason
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


# A named tuple, not a frozen dataclass: both are immutable, and one is built for every region.
class ImageSize(NamedTuple):
    """An image's size in pixels, as a region's `original_width` / `original_height` give it."""

    width: int
    height: int


# The model classes are read-only by convention, not `frozen`: a frozen dataclass sets each field
# through object.__setattr__, 3x the cost of a plain one: ~0.4 s per 20 000 tasks of the export.
@dataclass(slots=True)
class Region:
    id: str | None
    type: str
    from_name: str
    to_name: str
    value: dict[str, Any]
    original_width: int | None
    original_height: int | None
    parent_id: str | None
    raw: dict[str, Any]
    # Filled on first use: every format asks for the same labels.
    _labels: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def labels(self) -> list[str]:
        """The class names on this region: the list under its type's key (`rectanglelabels`, …).
        The list is shared by every caller: read it, do not change it."""
        if self._labels is None:
            self._labels = self._read_labels()
        return self._labels

    def _read_labels(self) -> list[str]:
        labels = self.value.get(self.type)
        if isinstance(labels, list):
            return [str(label) for label in labels]
        for key in ("labels", "rectanglelabels", "polygonlabels", "keypointlabels", "brushlabels",
                    "ellipselabels"):
            if isinstance(self.value.get(key), list):
                return [str(label) for label in self.value[key]]
        return []


@dataclass(slots=True)
class Annotation:
    id: int | None
    is_prediction: bool
    was_cancelled: bool
    ground_truth: bool
    completed_by: Any
    created_at: str | None
    updated_at: str | None
    regions: tuple[Region, ...]
    raw: dict[str, Any]


@dataclass(slots=True)
class Task:
    id: int
    data: dict[str, Any]
    annotations: tuple[Annotation, ...]
    predictions: tuple[Annotation, ...]
    updated_at: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, raw: Any, position: int | None = None) -> Task:
        if not isinstance(raw, dict):
            where = f"item {position}" if position is not None else "an item"
            raise ExportFormatError(f"{where} of the export is {type(raw).__name__}, not a task object")
        task_id = raw.get("id")
        if task_id is None:
            raise ExportFormatError(f"task at position {position} has no 'id'")
        data = raw.get("data")
        if not isinstance(data, dict):
            raise ExportFormatError("'data' is missing or not an object", task_id)
        annotations = raw.get("annotations", raw.get("completions", []))
        predictions = raw.get("predictions", [])
        if not isinstance(annotations, list) or not isinstance(predictions, list):
            raise ExportFormatError("'annotations' and 'predictions' must be lists", task_id)
        return cls(
            id=task_id,
            data=data,
            annotations=tuple([_annotation(a, task_id, False) for a in annotations]),
            # A snapshot taken without full predictions lists them as bare ids: nothing to read, and
            # the raw task (JSON formats) keeps them as they were.
            predictions=tuple([_annotation(p, task_id, True) for p in predictions if not isinstance(p, int)]),
            updated_at=raw.get("updated_at"),
            raw=raw,
        )


def _annotation(raw: Any, task_id: Any, is_prediction: bool) -> Annotation:
    if not isinstance(raw, dict):
        raise ExportFormatError("an annotation is not an object", task_id)
    result = raw.get("result") or []
    if not isinstance(result, list):
        raise ExportFormatError(f"annotation {raw.get('id')}: 'result' is not a list", task_id)
    get = raw.get
    return Annotation(get("id"), is_prediction, bool(get("was_cancelled") or get("skipped")), bool(get("ground_truth")),
                      get("completed_by"), get("created_at"), get("updated_at"),
                      tuple([_region(r, task_id) for r in result]), raw)


def _region(raw: Any, task_id: Any) -> Region:
    if not isinstance(raw, dict):
        raise ExportFormatError("a result item is not an object", task_id)
    region_id = raw.get("id")
    region_type = str(raw.get("type", "")).lower()
    value = raw.get("value")
    if region_type in VALUELESS_TYPES:
        value = value or {}
    elif not isinstance(value, dict):
        raise ExportFormatError("region has no 'value' object", task_id, region_id)
    # Positional: a region is made for every result of every task, and keywords cost a third more.
    get = raw.get
    return Region(region_id, region_type, get("from_name", ""), get("to_name", ""), value, get("original_width"),
                  get("original_height"), get("parentID"), raw)
