"""A short video with a known moving rectangle, written with PyAV, and the tasks that label it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS, FRAMES = 64, 48, 10, 30
VIDEO_CONFIG = f"""<View>
  <Video name="video" value="$video" frameRate="{FPS}"/>
  <VideoRectangle name="box" toName="video"/>
  <Labels name="videoLabels" toName="video">
    <Label value="Ball"/>
    <Label value="Player"/>
  </Labels>
</View>"""


def square_at(frame: int) -> tuple[int, int, int, int]:
    """The drawn rectangle on Label Studio frame `frame` (1-based): x, y, width, height in pixels.
    It moves 2 px to the right per frame."""
    return 4 + 2 * (frame - 1), 10, 12, 10


def write_video(path: Path, frames: int = FRAMES, fps: int = FPS) -> Path:
    import av  # noqa: PLC0415 - the video extra

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for frame in range(1, frames + 1):
            pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            x, y, width, height = square_at(frame)
            pixels[y:y + height, x:x + width] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def keyframe(frame: int, enabled: bool = True, x: float | None = None) -> dict:
    """A keyframe on the drawn rectangle at `frame`, in percent of the frame (x overridable)."""
    px, py, pw, ph = square_at(frame)
    return {"frame": frame, "enabled": enabled, "rotation": 0, "time": frame / FPS,
            "x": (px if x is None else x) * 100 / WIDTH, "y": py * 100 / HEIGHT,
            "width": pw * 100 / WIDTH, "height": ph * 100 / HEIGHT}


def track_result(region_id: str, sequence: list[dict], label: str = "Ball") -> dict:
    return {"id": region_id, "from_name": "box", "to_name": "video", "type": "videorectangle", "origin": "manual",
            "value": {"sequence": sequence, "framesCount": FRAMES, "duration": FRAMES / FPS, "labels": [label]}}


def ball_sequence() -> list[dict]:
    """On the drawn rectangle at frames 1 and 10 (disabled: the track's last frame), resumed at 16, last
    keyframe at 20 (held to the end of the video)."""
    return [keyframe(1), keyframe(10, enabled=False), keyframe(16), keyframe(20)]


# The frames that track is shown on, and its box's left edge there (px), worked out from the UI's rules:
# linear between keyframes (the rectangle moves 2 px a frame, so the interpolation is exact), nothing
# from 11 to 15, and the box of frame 20 from 21 to the end.
BALL_FRAMES = [*range(1, 11), *range(16, FRAMES + 1)]


def ball_x(frame: int) -> float:
    return 4 + 2 * (min(frame, 20) - 1)


def mota(truth, expected: dict[int, tuple[float, float, float, float]]) -> float:
    """MOTA of one hypothesis track at `expected` (frame → x, y, width, height) against the ground truth
    py-motmetrics loaded (`truth`), matched at IoU ≥ 0.5. The IoU is computed here: motmetrics 1.4's
    iou_matrix calls np.asfarray, which NumPy 2 removed."""
    import motmetrics  # noqa: PLC0415 - the video extra

    accumulator = motmetrics.MOTAccumulator(auto_id=False)
    for frame in sorted(set(truth.index.get_level_values("FrameId")) | set(expected)):
        objects = truth.xs(frame, level="FrameId") if frame in truth.index.get_level_values("FrameId") else None
        ids = [] if objects is None else list(objects.index)
        hypotheses = [1] if frame in expected else []
        distances = []
        for object_id in ids:
            gx, gy, gw, gh = objects.loc[object_id, ["X", "Y", "Width", "Height"]]
            row = []
            if hypotheses:
                hx, hy, hw, hh = expected[frame]
                inter = max(0, min(gx + gw, hx + hw) - max(gx, hx)) * max(0, min(gy + gh, hy + hh) - max(gy, hy))
                distance = 1 - inter / (gw * gh + hw * hh - inter)
                row.append(distance if distance <= 0.5 else float("nan"))
            distances.append(row)
        accumulator.update(ids, hypotheses, distances, frameid=frame)
    return float(motmetrics.metrics.create().compute(accumulator, metrics=["mota"])["mota"].iloc[0])
