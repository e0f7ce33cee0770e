"""Matching two sets of regions one to one, by a similarity in [0, 1] per kind of region.

How each similarity is computed (`similarity`):

- **box, polygon** (rectangles, rotated rectangles, polygons, ellipses as 64-gons): intersection over
  union of the areas in *pixel space*. The intersection is exact, not rasterized: a rasterized IoU
  depends on the grid (a 4-pixel box loses or gains a quarter of its area to one pixel row), and
  boxes are compared to sub-pixel precision. Two convex shapes (every box, rotated or not; ellipses;
  convex polygons) are clipped one against the other (Sutherland–Hodgman); the area of the clipped
  polygon is the intersection. A concave polygon is split into the signed triangles of a fan from
  its first vertex, whose signed sum is the polygon's indicator function (a winding number), so
  area(P ∩ Q) = Σᵢ Σⱼ sᵢ tⱼ area(Pᵢ ∩ Qⱼ) over pairs of triangles, each a convex clip. Axis-aligned
  boxes take the closed form. A self-intersecting polygon counts each point by its winding number.
- **mask** (brush): IoU of the decoded masks (`lsflow.core.geometry.rle.brush_alpha`, alpha > 0),
  pixel by pixel; masks of different image sizes have similarity 0.
- **keypoint**: exp(-d² / (2 s²)), d the distance in pixels, s = `KEYPOINT_SIGMA` (2 %) of the image
  diagonal: COCO's object keypoint similarity with the image instead of the object as the scale (a
  keypoint carries no object size). 1 at the same pixel, 0.5 at d ≈ 2.35 % of the diagonal (the
  default threshold), ≈ 0.04 at 5 %.
- **span** (text labels): IoU of the character ranges [start, end): shared characters over
  characters covered by either.
- **choice** (choices, taxonomy): 1 when the values are equal (multiple values as a set; a taxonomy
  value as its path), else 0.
- **textarea**: 1 - CER(x, y), floored at 0, with `x`'s text as the reference: character error rate
  = Levenshtein distance / reference length (`cer`); `wer` is the same over whitespace-separated words.

Regions of different kinds, or of different controls (`from_name`/`to_name`), are never similar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lsflow.core.compare.regions import Comparable
from lsflow.core.geometry.plane import Point, envelope, polygon_area

KEYPOINT_SIGMA = 0.02  # of the image diagonal
Points = tuple[Point, ...] | list[Point]


@dataclass(frozen=True, slots=True)
class Match:
    a: int  # index into the first list
    b: int  # index into the second list
    similarity: float


@dataclass(frozen=True, slots=True)
class Matching:
    pairs: tuple[Match, ...]  # in order of `a`
    only_a: tuple[int, ...]  # indexes of `a` left unmatched, ascending
    only_b: tuple[int, ...]


def similarity(x: Comparable, y: Comparable) -> float:
    """How alike two regions are, in [0, 1] (see the module docstring for each kind)."""
    if x.kind != y.kind or x.from_name != y.from_name or x.to_name != y.to_name:
        return 0.0
    kind = x.kind
    if kind in ("box", "polygon"):
        return shape_iou(x.points, y.points)
    if kind == "mask":
        return mask_iou(x.mask, y.mask)
    if kind == "keypoint":
        return keypoint_similarity(x, y)
    if kind == "span":
        assert x.span is not None and y.span is not None
        return span_iou(x.span, y.span)
    if kind == "choice":
        return 1.0 if x.label == y.label else 0.0
    if kind == "textarea":
        return max(0.0, 1.0 - cer(x.text or "", y.text or ""))
    raise ValueError(f"no similarity for regions of kind '{kind}'")


def match(a: Sequence[Comparable], b: Sequence[Comparable], threshold: float = 0.5,
          same_label: bool = False) -> Matching:
    """One-to-one assignment maximizing total similarity (`scipy.optimize.linear_sum_assignment`)
    among pairs of the same kind and control (`from_name`/`to_name`) with similarity >= threshold;
    `same_label` also requires equal labels."""
    groups: dict[tuple, tuple[list[int], list[int]]] = {}
    for index, item in enumerate(a):
        groups.setdefault(_group(item, same_label), ([], []))[0].append(index)
    for index, item in enumerate(b):
        groups.setdefault(_group(item, same_label), ([], []))[1].append(index)
    pairs: list[Match] = []
    for rows, cols in groups.values():
        if not rows or not cols:
            continue
        scores = np.zeros((len(rows), len(cols)))
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                value = similarity(a[row], b[col])
                # Pairs under the threshold weigh nothing: the assignment may still pair them to fill
                # its square, and they are left out below.
                scores[i, j] = value if value >= threshold and value > 0 else 0.0
        # Imported here: scipy costs every process that imports the formats ~45 MB, and only a
        # consensus or a comparison of annotations with more than one region each needs it.
        from scipy.optimize import linear_sum_assignment

        for i, j in zip(*linear_sum_assignment(scores, maximize=True)):
            if scores[i, j] > 0:
                pairs.append(Match(rows[i], cols[j], float(scores[i, j])))
    pairs.sort(key=lambda m: m.a)
    matched_a, matched_b = {m.a for m in pairs}, {m.b for m in pairs}
    return Matching(tuple(pairs), tuple(i for i in range(len(a)) if i not in matched_a),
                    tuple(j for j in range(len(b)) if j not in matched_b))


def _group(item: Comparable, same_label: bool) -> tuple:
    return (item.kind, item.from_name, item.to_name, item.label if same_label else None)


# Geometry


def shape_iou(p: Points, q: Points) -> float:
    """Exact IoU of two polygons (pixel coordinates), convex or not."""
    area_p, area_q = polygon_area(p), polygon_area(q)
    if area_p <= 0 or area_q <= 0:
        return 0.0
    ep, eq = envelope(p), envelope(q)
    if ep.xmax <= eq.xmin or eq.xmax <= ep.xmin or ep.ymax <= eq.ymin or eq.ymax <= ep.ymin:
        return 0.0
    if _is_axis_box(p) and _is_axis_box(q):
        inter = (min(ep.xmax, eq.xmax) - max(ep.xmin, eq.xmin)) * (min(ep.ymax, eq.ymax) - max(ep.ymin, eq.ymin))
    else:
        inter = intersection_area(p, q)
    union = area_p + area_q - inter
    return min(1.0, max(0.0, inter / union)) if union > 0 else 0.0


def intersection_area(p: Points, q: Points) -> float:
    if _is_convex(p) and _is_convex(q):
        return polygon_area(_clip_convex(list(p), _counter_clockwise(q)))
    total = 0.0
    for sign_p, tri_p in _fan(p):
        for sign_q, tri_q in _fan(q):
            total += sign_p * sign_q * polygon_area(_clip_convex(tri_p, tri_q))
    return abs(total)


def _signed_area(points: Sequence[Point]) -> float:
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, list(points[1:]) + [points[0]]):
        total += x1 * y2 - x2 * y1
    return total / 2.0


def _counter_clockwise(points: Sequence[Point]) -> list[Point]:
    ring = list(points)
    return ring if _signed_area(ring) >= 0 else ring[::-1]


def _fan(points: Sequence[Point]) -> list[tuple[float, list[Point]]]:
    """The signed triangles (sign, counter-clockwise vertices) of a fan from the first vertex,
    signs relative to the polygon's orientation: their signed sum is the polygon."""
    orientation = 1.0 if _signed_area(points) >= 0 else -1.0
    first = points[0]
    triangles = []
    for second, third in zip(points[1:-1], points[2:]):
        area = _signed_area((first, second, third))
        if area > 0:
            triangles.append((orientation, [first, second, third]))
        elif area < 0:
            triangles.append((-orientation, [first, third, second]))
    return triangles


def _is_convex(points: Sequence[Point]) -> bool:
    sign = 0.0
    n = len(points)
    for k in range(n):
        (x1, y1), (x2, y2), (x3, y3) = points[k], points[(k + 1) % n], points[(k + 2) % n]
        cross = (x2 - x1) * (y3 - y2) - (y2 - y1) * (x3 - x2)
        if cross != 0:
            if sign and (cross > 0) != (sign > 0):
                return False
            sign = cross
    return True


def _is_axis_box(points: Sequence[Point]) -> bool:
    if len(points) != 4:
        return False
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points
    return (y0 == y1 and x1 == x2 and y2 == y3 and x3 == x0) or (x0 == x1 and y1 == y2 and x2 == x3 and y3 == y0)


def _clip_convex(subject: list[Point], clip: list[Point]) -> list[Point]:
    """Sutherland–Hodgman: `subject` clipped to the convex counter-clockwise polygon `clip`."""
    output = subject
    for k in range(len(clip)):
        if not output:
            break
        (ax, ay), (bx, by) = clip[k], clip[(k + 1) % len(clip)]
        candidates, output = output, []
        # > 0: left of the edge a→b, inside a counter-clockwise polygon.
        sides = [(bx - ax) * (py - ay) - (by - ay) * (px - ax) for px, py in candidates]
        previous, side_previous = candidates[-1], sides[-1]
        for current, side_current in zip(candidates, sides):
            if side_current >= 0:
                if side_previous < 0:
                    output.append(_crossing(previous, current, side_previous, side_current))
                output.append(current)
            elif side_previous >= 0:
                output.append(_crossing(previous, current, side_previous, side_current))
            previous, side_previous = current, side_current
    return output if len(output) >= 3 else []


def _crossing(p: Point, q: Point, side_p: float, side_q: float) -> Point:
    t = side_p / (side_p - side_q)
    return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))


def mask_iou(x: np.ndarray | None, y: np.ndarray | None) -> float:
    if x is None or y is None or x.shape != y.shape:
        return 0.0
    union = int(np.count_nonzero(x | y))
    return int(np.count_nonzero(x & y)) / union if union else 0.0


def keypoint_similarity(x: Comparable, y: Comparable) -> float:
    image = x.image or y.image
    if image is None or not x.points or not y.points:
        return 0.0
    (x1, y1), (x2, y2) = x.points[0], y.points[0]
    sigma = KEYPOINT_SIGMA * math.hypot(image.width, image.height)
    return math.exp(-((x1 - x2) ** 2 + (y1 - y2) ** 2) / (2 * sigma * sigma))


def span_iou(x: tuple[int, int], y: tuple[int, int]) -> float:
    inter = min(x[1], y[1]) - max(x[0], y[0])
    union = max(x[1], y[1]) - min(x[0], y[0])
    if inter <= 0 or union <= 0:
        return 1.0 if x == y and union == 0 else 0.0
    return inter / union


# Text


def levenshtein(reference: Sequence, hypothesis: Sequence) -> int:
    """Edits (insertions, deletions, substitutions) turning `reference` into `hypothesis`."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: Levenshtein distance over the reference's length (0 for two empty
    texts, 1 when only the reference is empty); above 1 when the hypothesis adds more than it keeps."""
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return levenshtein(reference, hypothesis) / len(reference)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: `cer` over whitespace-separated words."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return 0.0 if not hyp else 1.0
    return levenshtein(ref, hyp) / len(ref)
