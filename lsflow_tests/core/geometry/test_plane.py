import math

import pytest

from lsflow.core.geometry.plane import (
    Envelope,
    clip_envelope,
    clip_polygon,
    envelope,
    polygon_area,
    rotated_corners,
)


def test_quarter_turn_swings_the_rectangle_below_and_left_of_its_corner():
    # 80×40 px at (100, 120) turned 90° clockwise about the top-left corner: the top edge now
    # points down, the left edge points left.
    corners = rotated_corners(100, 120, 80, 40, 90)
    expected = [(100, 120), (100, 200), (60, 200), (60, 120)]
    assert _flat(corners) == pytest.approx(_flat(expected), abs=1e-9)


def test_thirty_degrees_in_pixels_not_percent():
    # 96×48 px at (256, 288) turned 30° clockwise: cos 30° = √3/2, sin 30° = 1/2.
    c, s = math.sqrt(3) / 2, 0.5
    corners = rotated_corners(256, 288, 96, 48, 30)
    expected = [
        (256, 288),
        (256 + 96 * c, 288 + 96 * s),
        (256 + 96 * c - 48 * s, 288 + 96 * s + 48 * c),
        (256 - 48 * s, 288 + 48 * c),
    ]
    assert _flat(corners) == pytest.approx(_flat(expected), abs=1e-9)
    box = envelope(corners)
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == pytest.approx((232, 288, 256 + 96 * c, 288 + 48 + 48 * c), abs=1e-9)


def test_clip_envelope_keeps_the_inside_and_rejects_the_outside():
    assert clip_envelope(Envelope(600, 10, 700, 50), 640, 480) == Envelope(600, 10, 640, 50)
    assert clip_envelope(Envelope(650, 10, 700, 50), 640, 480) is None
    assert clip_envelope(Envelope(-5, -5, 0, 10), 640, 480) is None


def test_clip_polygon_cuts_at_the_image_edge():
    square = [(-10.0, -10.0), (10.0, -10.0), (10.0, 10.0), (-10.0, 10.0)]
    clipped = clip_polygon(square, 100, 100)
    assert sorted(clipped) == sorted([(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)])
    assert polygon_area(clipped) == pytest.approx(100)
    assert clip_polygon([(200.0, 200.0), (210.0, 200.0), (210.0, 210.0)], 100, 100) == []


def test_shoelace_area_ignores_winding():
    triangle = [(0.0, 0.0), (4.0, 0.0), (0.0, 3.0)]
    assert polygon_area(triangle) == 6
    assert polygon_area(list(reversed(triangle))) == 6


def _flat(points):
    return [coordinate for point in points for coordinate in point]
