"""A VideoRectangle track (`value.sequence` of keyframes) as the box on every frame it is shown on.

The rules are those of Label Studio's labeling UI, which draws the track (docs/video.md cites the
source file of each):

- Frames are numbered from 1 to `framesCount` (Video.js `fullFrameRange`, VideoCanvas.tsx `length`).
- A box is shown on frame f when a keyframe lies at or before f and the last such keyframe is
  enabled, or lies on f itself: a keyframe with `enabled: false` is the track's last frame, and the
  track resumes at the next enabled keyframe (VideoRegion.js `isInLifespan`, VideoRegions.jsx `Shape`).
- On a keyframe the box is the keyframe's; between two keyframes each of x, y, width, height is
  interpolated linearly, towards the next keyframe even when that one is disabled; after the last
  keyframe the box stays as it is to the end of the video (VideoRectangleRegion.js `getShape`).
- Rotation is interpolated along the shorter way round and kept in (-180, 180] (utils/props.ts
  `interpolateProp`, `normalizeAngle`).

Coordinates stay in percent of the frame, as in the keyframes; pixel space is the writers' concern.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

PROPS = ("x", "y", "width", "height", "rotation")
_EPSILON = 1e-9  # positions computed from two rates: 24.999999999 is frame 25


class TrackError(ValueError):
    """A keyframe that cannot be read (the writer drops the region with this reason)."""


class Keyframe(NamedTuple):
    frame: int
    enabled: bool
    x: float
    y: float
    width: float
    height: float
    rotation: float


class FrameBox(NamedTuple):
    """The track's box on one frame, in percent of the frame; `keyframe`: set by the annotator."""

    frame: int
    x: float
    y: float
    width: float
    height: float
    rotation: float
    keyframe: bool


def normalize_angle(angle: float) -> float:
    """`angle` in (-180, 180], as the labeling UI's normalizeAngle gives it."""
    while angle > 0:
        angle -= 360
    return math.fmod(angle - 180, 360) + 180  # fmod keeps the dividend's sign, as JavaScript's % does


def keyframes(sequence: Any) -> list[Keyframe]:
    """The sequence's keyframes in frame order; of two on one frame the first counts (as in the UI)."""
    if not isinstance(sequence, list):
        raise TrackError("'sequence' is not a list of keyframes")
    found: dict[int, Keyframe] = {}
    for number, item in enumerate(sequence):
        if not isinstance(item, dict):
            raise TrackError(f"keyframe {number} is not an object")
        frame = item.get("frame")
        if isinstance(frame, bool) or not isinstance(frame, int | float) or frame != int(frame):
            raise TrackError(f"keyframe {number} has no whole 'frame' number")
        values = []
        for prop in PROPS:
            value = item.get(prop, 0 if prop == "rotation" else None)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise TrackError(f"keyframe {number} (frame {int(frame)}) has no number '{prop}'")
            values.append(float(value))
        found.setdefault(int(frame), Keyframe(int(frame), item.get("enabled", True) is not False, *values))
    return [found[frame] for frame in sorted(found)]


def expand_track(sequence: Any, frames_count: int | None) -> Iterator[FrameBox]:
    """The box on every frame the track is shown on, in frame order, frames 1..`frames_count` only.
    Without `frames_count` (unknown length) the track ends at its last keyframe."""
    points = keyframes(sequence)
    last_frame = frames_count if frames_count is not None else (points[-1].frame if points else 0)
    return _boxes(points, ((frame, frame) for frame in range(1, last_frame + 1)))


def boxes_at(sequence: Any, positions: Iterable[tuple[int, float]]) -> Iterator[FrameBox]:
    """The track's box on each of a video's frames given as (frame, position), positions increasing.
    The position is where the frame's time falls in Label Studio's frame numbering, fractional when the
    video's rate is not the one Label Studio numbered at: Label Studio's frame N lasts from position N
    to N + 1. The rules above hold at any position: shown when the last keyframe at or before the
    frame Label Studio shows (⌊position⌋) is enabled or is that frame; interpolated at the position."""
    return _boxes(keyframes(sequence), positions)


def _boxes(points: list[Keyframe], positions: Iterable[tuple[int, float]]) -> Iterator[FrameBox]:
    index = -1  # the last keyframe at or before the position
    for frame, position in positions:
        shown = math.floor(position + _EPSILON)  # the Label Studio frame on screen at that time
        while index + 1 < len(points) and points[index + 1].frame <= shown:
            index += 1
        if index < 0:
            continue  # before the first keyframe
        start = points[index]
        following = points[index + 1] if index + 1 < len(points) else None
        if abs(position - start.frame) < _EPSILON:
            yield FrameBox(frame, *start[2:], True)
        elif not start.enabled:
            if start.frame == shown:  # a disabled keyframe is shown for its own frame only
                yield FrameBox(frame, *start[2:], False)
        elif following is None:
            yield FrameBox(frame, *start[2:], False)  # held after the last keyframe
        else:
            ratio = (position - start.frame) / (following.frame - start.frame)
            x, y, width, height = (a + (b - a) * ratio for a, b in zip(start[2:6], following[2:6], strict=True))
            turn = normalize_angle(following.rotation - start.rotation)
            yield FrameBox(frame, x, y, width, height, normalize_angle(start.rotation + turn * ratio), False)
