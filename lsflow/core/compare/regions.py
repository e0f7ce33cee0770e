"""An annotation's regions made comparable: each with its kind, class and geometry in pixel space.

Percent coordinates are turned into pixels by `lsflow.core.geometry.shapes.to_shape` (rotation about
the top-left corner, clockwise, in pixel space), so two boxes on a non-square image compare as the
image shows them. A region that cannot be compared is returned with the reason, never skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsflow.core.geometry.plane import Point
from lsflow.core.geometry.rle import RleError, brush_alpha
from lsflow.core.geometry.shapes import RegionDrop, is_image_region, to_shape
from lsflow.core.model.task import Annotation, ImageSize, Region

KINDS = ("box", "polygon", "mask", "keypoint", "span", "choice", "textarea")
_SPAN_TYPES = frozenset({"labels", "hypertextlabels"})
_CHOICE_TYPES = frozenset({"choices", "taxonomy"})


@dataclass(frozen=True, slots=True, eq=False)
class Comparable:
    kind: str  # one of KINDS
    label: str | None  # the class (first label), or the choice/taxonomy values joined; None if none
    region: Region  # the source region
    score: float | None  # prediction score (the region's, else the prediction's); None for annotations
    from_name: str = ""
    to_name: str = ""
    image: ImageSize | None = None  # box, polygon, mask, keypoint
    # box: its four corners after rotation; polygon: its vertices; keypoint: the point.
    points: tuple[Point, ...] = ()
    rotation: float = 0.0  # box: clockwise degrees about its top-left corner
    mask: np.ndarray | None = None  # mask: (height, width) booleans
    span: tuple[int, int] | None = None  # span: character offsets [start, end)
    text: str | None = None  # textarea: its lines joined by "\n"


def comparables(annotation: Annotation, image: ImageSize | None = None) -> tuple[list[Comparable], list[tuple[Region, str]]]:
    """(the annotation's regions made comparable in pixel space, [(region not comparable, why)]).

    `image` is the task's image size, for regions that do not carry `original_width/height`."""
    made: list[Comparable] = []
    rejected: list[tuple[Region, str]] = []
    default_score = _score(annotation.raw.get("score")) if annotation.is_prediction else None
    for region in annotation.regions:
        score = _score(region.raw.get("score")) if annotation.is_prediction else None
        try:
            made.append(comparable(region, image, default_score if score is None else score))
        except RegionDrop as drop:
            rejected.append((region, drop.reason))
    return made, rejected


def comparable(region: Region, image: ImageSize | None = None, score: float | None = None) -> Comparable:
    """One region made comparable, or RegionDrop saying why it cannot be."""
    label = region.labels[0] if region.labels else None
    names = (region.from_name, region.to_name)
    value = region.value
    if region.type in _CHOICE_TYPES:
        values = value.get(region.type)
        if not isinstance(values, list) or not values:
            raise RegionDrop(f"'{region.type}' region has no values")
        # A taxonomy value is a path of names; several values (multiple choice) compare as a set.
        joined = sorted("/".join(map(str, v)) if isinstance(v, list) else str(v) for v in values)
        return Comparable("choice", "|".join(joined), region, score, *names)
    if region.type == "textarea":
        lines = value.get("text")
        if isinstance(lines, str):
            lines = [lines]
        if not isinstance(lines, list):
            raise RegionDrop("'textarea' region has no text")
        return Comparable("textarea", label, region, score, *names, text="\n".join(map(str, lines)))
    if region.type in _SPAN_TYPES and not is_image_region(region):
        offsets = value.get("globalOffsets") if region.type == "hypertextlabels" else value
        start, end = (offsets or {}).get("start"), (offsets or {}).get("end")
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or end < start:
            raise RegionDrop("span has no character offsets start/end")
        return Comparable("span", label, region, score, *names, span=(start, end))
    if not is_image_region(region):
        raise RegionDrop(f"'{region.type or 'untyped'}' regions are not compared")
    shape = to_shape(region, image)
    if shape.kind == "mask":
        rle = value.get("rle")
        if rle is None:
            raise RegionDrop("brush region has no RLE")
        try:
            mask = brush_alpha(rle, shape.image.width, shape.image.height) > 0
        except RleError as error:
            raise RegionDrop(f"brush RLE cannot be read: {error}") from None
        return Comparable("mask", label, region, score, *names, image=shape.image, mask=mask)
    return Comparable(shape.kind, label, region, score, *names, image=shape.image, points=shape.points,
                      rotation=shape.rotation)


def _score(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
