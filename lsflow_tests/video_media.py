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
