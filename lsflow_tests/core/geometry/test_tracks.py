"""Keyframe expansion against values worked out by hand from the labeling UI's rules (docs/video.md)."""

from __future__ import annotations

import pytest

from lsflow.core.geometry.tracks import TrackError, boxes_at, expand_track, normalize_angle


def key(frame, x, y=10.0, width=20.0, height=30.0, rotation=0.0, enabled=True):
    return {"frame": frame, "x": x, "y": y, "width": width, "height": height, "rotation": rotation,
            "enabled": enabled, "time": frame / 10}


def boxes(sequence, frames_count):
    return {box.frame: box for box in expand_track(sequence, frames_count)}


def test_linear_between_keyframes_and_held_to_the_end():
    got = boxes([key(2, 10.0, width=20.0), key(6, 30.0, width=40.0)], frames_count=8)
    assert sorted(got) == [2, 3, 4, 5, 6, 7, 8]  # nothing before the first keyframe
    # x goes 10 → 30 over 4 frames: +5 a frame; width 20 → 40: +5 a frame.
    assert [got[f].x for f in range(2, 9)] == [10.0, 15.0, 20.0, 25.0, 30.0, 30.0, 30.0]
    assert [got[f].width for f in range(2, 7)] == [20.0, 25.0, 30.0, 35.0, 40.0]
    assert [got[f].keyframe for f in (2, 3, 6, 7)] == [True, False, True, False]


def test_disabled_keyframe_ends_the_track_on_its_own_frame_and_the_next_enabled_resumes_it():
    sequence = [key(1, 0.0), key(5, 40.0, enabled=False), key(9, 80.0), key(10, 90.0)]
    got = boxes(sequence, frames_count=12)
    assert sorted(got) == [1, 2, 3, 4, 5, 9, 10, 11, 12]  # gap 6..8
    # Frames 2..4 move towards the disabled keyframe: 0 → 40 over 4 frames, +10 a frame.
    assert [got[f].x for f in range(1, 6)] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert [got[f].x for f in (9, 10, 11, 12)] == [80.0, 90.0, 90.0, 90.0]


def test_a_track_ending_in_a_disabled_keyframe_stops_there():
    got = boxes([key(3, 0.0), key(4, 10.0, enabled=False)], frames_count=100)
    assert sorted(got) == [3, 4]


def test_unsorted_keyframes_are_taken_in_frame_order_and_frames_past_the_video_are_cut():
    got = boxes([key(8, 70.0), key(4, 30.0)], frames_count=6)
    assert sorted(got) == [4, 5, 6]
    assert got[5].x == 40.0  # 30 → 70 over 4 frames


def test_rotation_takes_the_shorter_way_round():
    # 170 → -170 is 20 degrees through 180, not 340 back through 0 (utils/props.ts's own example).
    got = boxes([key(0, 0.0, rotation=-170.0), key(20, 0.0, rotation=170.0)], frames_count=20)
    assert got[5].rotation == pytest.approx(-175.0)
    got = boxes([key(1, 0.0, rotation=170.0), key(3, 0.0, rotation=-170.0)], frames_count=3)
    assert got[2].rotation == pytest.approx(180.0)


@pytest.mark.parametrize(("angle", "expected"), [(0, 0), (180, 180), (-180, 180), (190, -170), (-190, 170),
                                                 (540, 180), (360, 0)])
def test_normalize_angle(angle, expected):
    assert normalize_angle(angle) == pytest.approx(expected)


def test_without_a_length_the_track_ends_at_its_last_keyframe():
    assert sorted(boxes([key(2, 0.0), key(4, 2.0)], frames_count=None)) == [2, 3, 4]


def test_a_single_disabled_keyframe_shows_one_frame():
    assert sorted(boxes([key(7, 0.0, enabled=False)], frames_count=20)) == [7]


@pytest.mark.parametrize(("sequence", "reason"), [
    ("nope", "not a list"),
    ([{"frame": 1.5, "x": 0, "y": 0, "width": 1, "height": 1}], "whole 'frame'"),
    ([{"frame": 1, "x": 0, "y": 0, "width": 1}], "'height'"),
    ([{"frame": 1, "x": "0", "y": 0, "width": 1, "height": 1}], "'x'"),
])
def test_unreadable_keyframes_name_the_problem(sequence, reason):
    with pytest.raises(TrackError, match=reason):
        list(expand_track(sequence, 10))


def test_fractional_positions_interpolate_and_a_disabled_keyframe_lasts_its_own_frame():
    # Label Studio frame N lasts from position N to N + 1: the disabled keyframe 5 shows at 5.0 and 5.9,
    # not at 6.0; between 1 and 5, x at position 2.5 is 0 + 40 * 1.5 / 4.
    sequence = [key(1, 0.0), key(5, 40.0, enabled=False), key(9, 80.0)]
    got = {box.frame: box for box in boxes_at(sequence, [(1, 0.5), (2, 2.5), (3, 5.0), (4, 5.9), (5, 6.0),
                                                         (6, 8.99), (7, 9.5)])}
    assert sorted(got) == [2, 3, 4, 7]
    assert (got[2].x, got[2].keyframe) == (15.0, False)
    assert (got[3].x, got[3].keyframe, got[4].x) == (40.0, True, 40.0)
    assert got[7].x == 80.0
