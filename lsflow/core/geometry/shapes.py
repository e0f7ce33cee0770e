"""Regions in pixel units: the one place percent coordinates become image coordinates."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from lsflow.core.geometry.plane import Envelope, Point, envelope, percent_to_pixels, rotated_corners
from lsflow.core.model.task import ImageSize, Region

ShapeKind = Literal["box", "polygon", "keypoint", "mask"]
ELLIPSE_VERTICES = 64

_BOX_TYPES = frozenset({"rectanglelabels", "rectangle"})
_POLYGON_TYPES = frozenset({"polygonlabels", "polygon"})
_KEYPOINT_TYPES = frozenset({"keypointlabels", "keypoint"})
_ELLIPSE_TYPES = frozenset({"ellipselabels", "ellipse"})
_MASK_TYPES = frozenset({"brushlabels", "brush"})
_IMAGE_TYPES = _BOX_TYPES | _POLYGON_TYPES | _KEYPOINT_TYPES | _ELLIPSE_TYPES | _MASK_TYPES
# `labels` regions on an image are rectangles drawn with a `<Rectangle>` + `<Labels>` pair.
_IMAGE_LABELS_KEYS = ("x", "y", "width", "height")


class RegionDrop(Exception):
    """A region that cannot become a shape; `reason` is what the report shows."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# A named tuple, not a frozen dataclass: both are immutable, and this is built for every region.
class Shape(NamedTuple):
    kind: ShapeKind
    region: Region
    image: ImageSize
    # box: its four corners after rotation; polygon: vertices; keypoint: the point; mask: empty.
    points: tuple[Point, ...]
    rotation: float = 0.0
    # The points' bounding box (None for a mask): every vision format asks for it.
    envelope: Envelope | None = None


def _with_points(kind: ShapeKind, region: Region, image: ImageSize, points: tuple[Point, ...],
                 rotation: float = 0.0) -> Shape:
    return Shape(kind, region, image, points, rotation, envelope(points))


def is_image_region(region: Region) -> bool:
    if region.type in _IMAGE_TYPES:
        return True
    return region.type == "labels" and all(k in region.value for k in _IMAGE_LABELS_KEYS)


_SIZES: dict[tuple, ImageSize] = {}  # a project has a few image sizes and many regions


def region_image_size(region: Region, fallback: ImageSize | None) -> ImageSize:
    width, height = region.original_width, region.original_height
    if width and height:
        try:
            size = _SIZES.get((width, height))
            if size is None:
                size = ImageSize(int(width), int(height))
                if size.width <= 0 or size.height <= 0:
                    raise ValueError
                if len(_SIZES) < 4096:
                    _SIZES[(width, height)] = size
        except (TypeError, ValueError, OverflowError):  # an import wrote "abc", -5, [640], 1e999 …
            raise RegionDrop(f"original_width/original_height {width!r}/{height!r} are not an image size") from None
        return size
    if fallback is not None:
        return fallback
    raise RegionDrop("missing original_width/original_height and the image is not reachable to read them")


def to_shape(region: Region, fallback_size: ImageSize | None = None) -> Shape:
    """The region in pixels, or RegionDrop saying why it has no image shape."""
    kind = region.type
    if kind not in _IMAGE_TYPES and not is_image_region(region):
        raise RegionDrop(f"'{kind or 'untyped'}' region has no image geometry")
    size = region_image_size(region, fallback_size)
    width, height = size
    value = region.value
    try:  # `v * size / 100.0` is percent_to_pixels, inlined: this runs for every region
        if kind in _BOX_TYPES or kind == "labels":
            x = float(value["x"]) * width / 100.0
            y = float(value["y"]) * height / 100.0
            w = float(value["width"]) * width / 100.0
            h = float(value["height"]) * height / 100.0
            rotation = float(value.get("rotation") or 0.0)
            if rotation % 360 == 0:
                right, bottom = x + w, y + h
                # A box drawn with a positive size (all but malformed ones) has its corners in order.
                box = (Envelope(x, y, right, bottom) if w > 0 and h > 0
                       else Envelope(min(x, right), min(y, bottom), max(x, right), max(y, bottom)))
                return Shape("box", region, size, ((x, y), (right, y), (right, bottom), (x, bottom)), rotation, box)
            return _with_points("box", region, size, rotated_corners(x, y, w, h, rotation), rotation)
        if kind in _POLYGON_TYPES:
            points = tuple([(float(px) * width / 100.0, float(py) * height / 100.0) for px, py in value["points"]])
            if len(points) < 3:
                raise RegionDrop(f"polygon has {len(points)} points, fewer than 3")
            return _with_points("polygon", region, size, points)
        if kind in _KEYPOINT_TYPES:
            return _with_points("keypoint", region, size,
                                ((float(value["x"]) * width / 100.0, float(value["y"]) * height / 100.0),))
        if kind in _ELLIPSE_TYPES:
            return _with_points("polygon", region, size, _ellipse_polygon(value, size))
        return Shape("mask", region, size, ())
    except (KeyError, TypeError, ValueError) as error:
        raise RegionDrop(f"'{kind}' region has malformed coordinates ({error!r})") from None


def _ellipse_polygon(value: dict, size: ImageSize) -> tuple[Point, ...]:
    """An ellipse (centre x, y; radii radiusX, radiusY; clockwise rotation) as a fine polygon."""
    cx = percent_to_pixels(float(value["x"]), size.width)
    cy = percent_to_pixels(float(value["y"]), size.height)
    rx = percent_to_pixels(float(value["radiusX"]), size.width)
    ry = percent_to_pixels(float(value["radiusY"]), size.height)
    theta = math.radians(float(value.get("rotation") or 0.0))
    cos, sin = math.cos(theta), math.sin(theta)
    points = []
    for step in range(ELLIPSE_VERTICES):
        t = 2 * math.pi * step / ELLIPSE_VERTICES
        dx, dy = rx * math.cos(t), ry * math.sin(t)
        points.append((cx + dx * cos - dy * sin, cy + dx * sin + dy * cos))
    return tuple(points)
