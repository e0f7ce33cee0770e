"""Plane geometry in image pixels: rotated rectangles, envelopes, clipping, areas.

Label Studio stores `x, y, width, height` in percent of the image and `rotation` in clockwise
degrees about the rectangle's top-left corner. A rotation is only a rigid motion in pixel space
(percent space is stretched when the image is not square), so everything here is in pixels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

Point = tuple[float, float]


class Envelope(NamedTuple):
    """Axis-aligned bounding box, in pixels. A named tuple: immutable, and built several times per
    region per format, where a frozen dataclass cost three times as much."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    @property
    def area(self) -> float:
        return self.width * self.height


def percent_to_pixels(value: float, size: int) -> float:
    return value * size / 100.0


def rotated_corners(x: float, y: float, width: float, height: float, rotation: float) -> tuple[Point, ...]:
    """The four corners (top-left, top-right, bottom-right, bottom-left before rotation) of a
    rectangle turned `rotation` degrees clockwise about its top-left corner (x, y); pixel units.

    Image y grows downwards, so the ordinary rotation matrix turns clockwise on screen.
    """
    if rotation % 360 == 0:
        return ((x, y), (x + width, y), (x + width, y + height), (x, y + height))
    theta = math.radians(rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    return tuple(
        (x + dx * cos - dy * sin, y + dx * sin + dy * cos)
        for dx, dy in ((0.0, 0.0), (width, 0.0), (width, height), (0.0, height))
    )


def envelope(points: tuple[Point, ...] | list[Point]) -> Envelope:
    xs, ys = zip(*points)
    return Envelope(min(xs), min(ys), max(xs), max(ys))


def clip_envelope(box: Envelope, image_width: float, image_height: float) -> Envelope | None:
    """The part of `box` inside the image, or None when nothing of it (no area) is inside."""
    xmin, ymin, xmax, ymax = box  # unpacked: per region and format
    if xmin >= 0 and ymin >= 0 and xmax <= image_width and ymax <= image_height:
        return box if xmax > xmin and ymax > ymin else None  # inside: the box itself
    clipped = Envelope(max(xmin, 0.0), max(ymin, 0.0), min(xmax, image_width), min(ymax, image_height))
    if clipped.xmax - clipped.xmin <= 0 or clipped.ymax - clipped.ymin <= 0:
        return None
    return clipped


def clip_polygon(points: list[Point] | tuple[Point, ...], image_width: float, image_height: float) -> list[Point]:
    """Sutherland–Hodgman clipping of a polygon to the image rectangle; [] when nothing is inside."""
    edges = (
        (lambda p: p[0] >= 0, lambda p, q: _cross_x(p, q, 0.0)),
        (lambda p: p[0] <= image_width, lambda p, q: _cross_x(p, q, image_width)),
        (lambda p: p[1] >= 0, lambda p, q: _cross_y(p, q, 0.0)),
        (lambda p: p[1] <= image_height, lambda p, q: _cross_y(p, q, image_height)),
    )
    output = list(points)
    for inside, crossing in edges:
        if not output:
            break
        candidates, output = output, []
        previous = candidates[-1]
        for current in candidates:
            if inside(current):
                if not inside(previous):
                    output.append(crossing(previous, current))
                output.append(current)
            elif inside(previous):
                output.append(crossing(previous, current))
            previous = current
    return output


def is_inside(points: list[Point] | tuple[Point, ...], image_width: float, image_height: float) -> bool:
    return all(0 <= x <= image_width and 0 <= y <= image_height for x, y in points)


def polygon_area(points: list[Point] | tuple[Point, ...]) -> float:
    """Shoelace formula; the absolute area whatever the winding."""
    ring = list(points)
    total = 0.0
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2.0


def _cross_x(p: Point, q: Point, x: float) -> Point:
    t = (x - p[0]) / (q[0] - p[0])
    return (x, p[1] + t * (q[1] - p[1]))


def _cross_y(p: Point, q: Point, y: float) -> Point:
    t = (y - p[1]) / (q[1] - p[1])
    return (p[0] + t * (q[0] - p[0]), y)
