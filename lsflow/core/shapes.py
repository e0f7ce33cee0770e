"""Regions in pixel units: the one place percent coordinates become image coordinates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from lsflow.core.geometry import Envelope, Point, envelope, percent_to_pixels, rotated_corners
from lsflow.core.model import Region

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


@dataclass(frozen=True, slots=True)
class ImageSize:
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Shape:
    kind: ShapeKind
    region: Region
    image: ImageSize
    # box: its four corners after rotation; polygon: vertices; keypoint: the point; mask: empty.
    points: tuple[Point, ...]
    rotation: float = 0.0

    @property
    def envelope(self) -> Envelope:
        return envelope(self.points)


def is_image_region(region: Region) -> bool:
    if region.type in _IMAGE_TYPES:
        return True
    return region.type == "labels" and all(k in region.value for k in _IMAGE_LABELS_KEYS)


def region_image_size(region: Region, fallback: ImageSize | None) -> ImageSize:
    width, height = region.original_width, region.original_height
    if width and height:
        return ImageSize(int(width), int(height))
    if fallback is not None:
        return fallback
    raise RegionDrop("missing original_width/original_height and the image is not reachable to read them")


def to_shape(region: Region, fallback_size: ImageSize | None = None) -> Shape:
    """The region in pixels, or RegionDrop saying why it has no image shape."""
    if not is_image_region(region):
        raise RegionDrop(f"'{region.type or 'untyped'}' region has no image geometry")
    size = region_image_size(region, fallback_size)
    value = region.value
    try:
        if region.type in _BOX_TYPES or region.type == "labels":
            x = percent_to_pixels(float(value["x"]), size.width)
            y = percent_to_pixels(float(value["y"]), size.height)
            w = percent_to_pixels(float(value["width"]), size.width)
            h = percent_to_pixels(float(value["height"]), size.height)
            rotation = float(value.get("rotation") or 0.0)
            return Shape("box", region, size, rotated_corners(x, y, w, h, rotation), rotation)
        if region.type in _POLYGON_TYPES:
            points = tuple(
                (percent_to_pixels(float(px), size.width), percent_to_pixels(float(py), size.height))
                for px, py in value["points"]
            )
            if len(points) < 3:
                raise RegionDrop(f"polygon has {len(points)} points, fewer than 3")
            return Shape("polygon", region, size, points)
        if region.type in _KEYPOINT_TYPES:
            point = (percent_to_pixels(float(value["x"]), size.width),
                     percent_to_pixels(float(value["y"]), size.height))
            return Shape("keypoint", region, size, (point,))
        if region.type in _ELLIPSE_TYPES:
            return Shape("polygon", region, size, _ellipse_polygon(value, size))
        return Shape("mask", region, size, ())
    except (KeyError, TypeError, ValueError) as error:
        raise RegionDrop(f"'{region.type}' region has malformed coordinates ({error!r})") from None


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
