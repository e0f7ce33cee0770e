"""What the video formats share: the task's video, its real frame rate and size (PyAV), its frames
decoded one at a time, and its VideoRectangle tracks as per-frame pixel boxes.

Label Studio numbers frames from 1 at the `<Video frameRate>` of the label config (24 when not
given), not at the video's own rate: its frame N starts at time (N − 1)/frameRate. The video's own
frame j (1-based) starts at (j − 1)/fps, so it gets the track's box at Label Studio position
1 + (j − 1)·frameRate/fps — frame j itself when the rates agree, between two Label Studio frames
when they do not (docs/video.md).

PyAV (`pip install lsflow[video]`) is imported when a video is first opened, so the other formats
do not need it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from lsflow.core.formats.base import ExportContext, TaskItem, file_stem
from lsflow.core.formats.shared.vision import VisionWriter
from lsflow.core.geometry.plane import Envelope, clip_envelope, envelope, percent_to_pixels, rotated_corners
from lsflow.core.geometry.tracks import FrameBox, TrackError, boxes_at
from lsflow.core.model.media_ref import media_file_name
from lsflow.core.model.task import Annotation, Region

if TYPE_CHECKING:
    import av.video.frame

TRACK_TYPES = frozenset({"videorectangle"})
DEFAULT_LABEL_STUDIO_FPS = 24.0  # Video.js: `framerate` defaults to "24"
VIDEO_NOT_AVAILABLE = "video file not available"
VIDEO_NOT_READABLE = "video file cannot be decoded by PyAV"
NO_FRAMES = "track has no frame inside the video"
FRAME_STEP = "frame_step"
FRAME_STEP_HELP = "export every k-th frame of each video (1, 1 + k, …); default 1, every frame"
JPEG_QUALITY = 95
_RATE_TOLERANCE = 1e-3  # relative: 29.97 in a label config is the video's 30000/1001


class VideoError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction  # the stream's average frame rate
    frames: int  # frames in the stream, counted from its header or its duration

    @property
    def duration(self) -> float:
        return float(self.frames / self.fps)


def probe(path: Path) -> VideoInfo:
    """Size, rate and frame count from the container and stream headers (no frame decoded)."""
    import av  # noqa: PLC0415 - the optional `video` extra, needed only once a video is opened

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate or not stream.width or not stream.height:
                raise VideoError("no frame rate or size in the stream header")
            frames = stream.frames
            if not frames:
                if stream.duration is not None and stream.time_base is not None:
                    seconds = float(stream.duration * stream.time_base)
                elif container.duration is not None:
                    seconds = container.duration / 1_000_000
                else:
                    raise VideoError("neither a frame count nor a duration in the headers")
                frames = math.ceil(seconds * rate - 1e-6)
            return VideoInfo(stream.width, stream.height, Fraction(rate), int(frames))
    except (OSError, av.FFmpegError) as error:
        raise VideoError(str(error)) from error


def decode_frames(path: Path, step: int, last: int) -> Iterator[tuple[int, av.video.frame.VideoFrame]]:
    """Frames 1, 1 + step, 1 + 2·step, … up to `last` (the video's own numbers, 1-based), decoded one at a time:
    only the current frame is ever in memory."""
    import av  # noqa: PLC0415 - see probe

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for number, frame in enumerate(container.decode(stream), 1):
            if number > last:
                return
            if (number - 1) % step == 0:
                yield number, frame


def frame_step(context: ExportContext) -> int:
    raw = context.options.get(FRAME_STEP, "1")
    try:
        step = int(raw)
    except ValueError:
        step = 0
    if step < 1:
        raise ValueError(f"option {FRAME_STEP}={raw!r}: expected a whole number of frames, 1 or more")
    return step


def label_studio_fps(context: ExportContext, item: TaskItem, video_object: str | None) -> float | None:
    """The frame rate Label Studio numbers this task's frames at; None when `$key` names no number."""
    config = context.label_config
    tag = None
    if config is not None:
        tag = config.object(video_object) if video_object else None
        tag = tag or next((o for o in config.objects if o.tag == "video"), None)
    raw: Any = tag.frame_rate if tag is not None else None
    if raw is None:
        return DEFAULT_LABEL_STUDIO_FPS
    if raw.startswith("$"):
        raw = item.task.data.get(raw[1:])
    try:
        rate = float(raw)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(rate) or rate <= 0:
        return None
    return 1 / rate if rate < 1 else rate  # Video.js reads a rate below 1 as seconds per frame


def frame_positions(info: VideoInfo, rate: float, step: int) -> Iterator[tuple[int, float]]:
    """(frame, Label Studio position) of the video's frames 1, 1 + step, …: the frame's start time
    (j − 1)/fps in Label Studio's frames at `rate`. Rates within 0.1 % are one rate (29.97 in a label
    config is the video's 30000/1001): the frame is its own position."""
    fps = float(info.fps)
    same = abs(rate - fps) <= _RATE_TOLERANCE * fps
    for frame in range(1, info.frames + 1, step):
        yield frame, float(frame) if same else 1 + (frame - 1) * rate / fps


def video_key(context: ExportContext) -> str:
    config = context.label_config
    return (config.data_key("video") if config is not None else None) or "video"


def sequence_name(task_id: Any, reference: str) -> str:
    """The video's folder/file stem in a dataset: its own name plus the task id, unique per task."""
    stem = file_stem(media_file_name(reference) or "video")
    return f"{stem}__task{task_id}"


class TrackBox(NamedTuple):
    frame: int  # the video's frame number, 1-based (Label Studio's when the rates agree)
    box: Envelope  # axis-aligned pixel envelope, clipped to the frame
    corners: tuple[tuple[float, float], ...]  # the rectangle's four pixel corners, unclipped
    keyframe: bool
    rotated: bool  # the corners are not the envelope's


class SavedFrame(NamedTuple):
    number: int  # the frame's number in the video, 1-based
    position: int  # its place among the frames extracted, 0-based
    file: str  # relative to the dataset
    width: int
    height: int


class Track(NamedTuple):
    annotation: Annotation
    region: Region
    class_id: int
    label: str
    boxes: list[TrackBox]


@dataclass(slots=True)
class TaskVideo:
    reference: str
    path: Path
    info: VideoInfo
    name: str


class VideoTrackWriter(VisionWriter):
    """Base of the formats that turn VideoRectangle tracks into per-frame boxes of a video."""

    object_tags = frozenset({"video"})
    control_tags = frozenset({"videorectangle"})
    reads_media = True
    per_task = False  # the boxes' pixels and frames come from the video file, which can change alone:
    media_keyed = True  # reused only while the task and its video file are unchanged
    option_help: ClassVar[dict[str, str]] = {}

    @classmethod
    def media_references(cls, data: dict[str, Any], context: ExportContext) -> tuple[str, ...]:
        reference = data.get(video_key(context))
        return (reference,) if isinstance(reference, str) else ()  # else no file is read: the task is skipped

    def task_video(self, item: TaskItem) -> TaskVideo | None:
        """The task's video, probed; None after dropping the task's regions with the reason."""
        references = self.media_references(item.task.data, self.context)  # the files its reuse key names
        reference = references[0] if references else None
        media = self.context.media
        path = media.local_path(reference) if reference is not None and media is not None else None
        if path is None or reference is None:
            self.skip_task(item, VIDEO_NOT_AVAILABLE)
            return None
        try:
            info = probe(path)
        except VideoError as error:
            self.skip_task(item, f"{VIDEO_NOT_READABLE}: {error}")
            return None
        return TaskVideo(reference, path, info, sequence_name(item.task.id, reference))

    def tracks(self, item: TaskItem, video: TaskVideo, step: int = 1) -> list[Track]:
        """The chosen annotations' tracks as clipped pixel boxes on frames 1, 1 + step, …; every other
        region, and every track that cannot be placed on those frames, dropped with the reason."""
        found = []
        info = video.info
        for annotation in item.annotations:
            for region in annotation.regions:
                if region.type not in TRACK_TYPES:
                    self.drop(item, annotation, region, f"'{region.type}' regions are not tracks: "
                                                        f"{self.name} holds VideoRectangle tracks only")
                    continue
                rate = label_studio_fps(self.context, item, region.to_name)
                if rate is None:
                    self.drop(item, annotation, region, "the <Video> frameRate of the label config is not a number")
                    continue
                labels = self.class_id(item, annotation, region)
                if labels is None:
                    continue
                try:
                    frames = boxes_at(region.value.get("sequence"), frame_positions(info, rate, step))
                    boxes, clipped = self._pixel_boxes(frames, info)
                except TrackError as error:
                    self.drop(item, annotation, region, f"track cannot be read: {error}")
                    continue
                if not boxes:
                    self.drop(item, annotation, region, NO_FRAMES if step == 1 else
                              f"{NO_FRAMES} among those exported ({FRAME_STEP}={step})")
                    continue
                self.report.wrote(labels[1], clipped=clipped)
                found.append(Track(annotation, region, labels[0], labels[1], boxes))
        return found

    def save_frames(self, video: TaskVideo, step: int, file_of: Callable[[int], str]) -> Iterator[SavedFrame]:
        """Frames 1, 1 + step, … decoded one at a time and saved as JPEG at `file_of(number)`."""
        for position, (number, frame) in enumerate(decode_frames(video.path, step, video.info.frames)):
            image = frame.to_image()
            data = io.BytesIO()
            image.save(data, "JPEG", quality=JPEG_QUALITY)
            relative = file_of(number)
            self.task_file(relative, data.getvalue())
            yield SavedFrame(number, position, relative, image.width, image.height)

    def frames_missing(self, last: int, info: VideoInfo, left: int) -> None:
        """The header promised frames the stream does not have: the `left` frames' labels are left out."""
        if left:
            self.report.skip_image(f"the video decodes to {last} frames, its header says {info.frames}: "
                                   f"labels of {left} later frames left out")

    @staticmethod
    def _pixel_boxes(frames: Iterator[FrameBox], info: VideoInfo) -> tuple[list[TrackBox], bool]:
        """Frames whose box has area inside the image; whether any box was cut or left out."""
        boxes, clipped = [], False
        width, height = info.width, info.height
        for frame in frames:
            corners = rotated_corners(percent_to_pixels(frame.x, width), percent_to_pixels(frame.y, height),
                                      percent_to_pixels(frame.width, width), percent_to_pixels(frame.height, height),
                                      frame.rotation)
            whole = envelope(corners)
            box = clip_envelope(whole, width, height)
            if box is None:
                clipped = True
                continue
            clipped = clipped or box != whole
            boxes.append(TrackBox(frame.frame, box, corners, frame.keyframe, frame.rotation % 360 != 0))
        return boxes, clipped


def frame_file_stem(video: TaskVideo, frame: int) -> str:
    return f"{video.name}_{frame:06d}"

