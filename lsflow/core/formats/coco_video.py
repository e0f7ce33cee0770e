"""COCO_VIDEO: VideoRectangle tracks as COCO with videos, per-frame images and track ids.

    result.json                                  info, videos, images, tracks, categories, annotations
    images/<video>__task<id>/<frame>.jpg         frames 1, 1 + k, 1 + 2k, … (writer option frame_step=k)

The fields are those the common video-COCO loaders read:

- `videos`: id (the Label Studio task id), name (`<video>__task<id>`, the frames' folder), file_name
  (the task's video reference), width, height, fps (the video's own rate), frames (its frame count),
  label_studio_fps (the `<Video frameRate>` its keyframes were numbered at), frame_step;
- `images`: id (1, 2, … over the dataset), file_name, width, height, video_id, `frame_id` — the frame's
  place among the video's extracted frames, 0, 1, 2, … as mmtracking's CocoVID indexes them — and
  `frame_index`, its 0-based index in the video (TAO's field; frame_index = frame number − 1);
- `tracks` (TAO): id, video_id, category_id, and the Label Studio annotation and region of the track;
- `annotations`: id, image_id, video_id, `track_id` (TAO) and `instance_id` (mmtracking), the same
  number, unique over the dataset; category_id, bbox (pixels, the rectangle's envelope clipped to
  the frame), area, iscrowd 0, segmentation (a rotated rectangle's clipped corners, else empty).

Plain COCO tools (pycocotools' COCO) read it as an image dataset: every frame an image. Every
extracted frame is listed, with or without objects (background frames). One file, no splits (as
COCO's own writer); a video's frames all belong to it. Ids are given at `close`, from the streamed
records, so a task's records depend on nothing before it.
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import orjson

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, Stream, TaskItem
from lsflow.core.formats.shared.coco_json import (
    COCO_CATEGORY_IDS,
    FIRST_CATEGORY_HELP,
    FIRST_CATEGORY_OPTION,
    check_category_ids,
    class_categories,
    coco_info,
    copy_joined,
    first_category_id,
)
from lsflow.core.formats.shared.video import (
    FRAME_STEP,
    FRAME_STEP_HELP,
    TrackBox,
    VideoTrackWriter,
    frame_step,
    label_studio_fps,
)
from lsflow.core.geometry.plane import clip_polygon, polygon_area

RESULT_FILE = "result.json"
COCO_VIDEO_LOADS = CheckSpec(
    "coco_video_loads", "the file loads in pycocotools; every frame image exists; every annotation's image, video "
                        "and track agree and its box lies inside the frame; a video's frame_ids are 0, 1, 2, …"
)


class CocoVideoWriter(VideoTrackWriter):
    name = "COCO_VIDEO"
    description = "COCO with videos, per-frame images (frames extracted) and track ids (TAO, mmtracking)"
    checks: ClassVar[tuple[CheckSpec, ...]] = (COCO_VIDEO_LOADS, COCO_CATEGORY_IDS)
    option_help: ClassVar[dict[str, str]] = {FRAME_STEP: FRAME_STEP_HELP, FIRST_CATEGORY_OPTION: FIRST_CATEGORY_HELP}
    streams = {**VideoTrackWriter.streams, "videos": Stream(".videos.part", temporary=True),
               "images": Stream(".images.part", temporary=True), "tracks": Stream(".tracks.part", temporary=True),
               "annotations": Stream(".annotations.part", temporary=True)}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.first_category_id = first_category_id(self.context)
        self.step = frame_step(self.context)

    def write(self, item: TaskItem) -> None:
        video = self.task_video(item)
        if video is None:
            return
        info, task_id = video.info, item.task.id
        on_frame: dict[int, list[tuple[int, int, TrackBox]]] = defaultdict(list)  # frame → (track, category, box)
        for number, track in enumerate(self.tracks(item, video, self.step), 1):
            category_id = track.class_id + self.first_category_id
            self.append("tracks", orjson.dumps({
                "video_id": task_id, "track": number, "category_id": category_id,
                "label_studio": {"annotation": track.annotation.id, "region": track.region.id},
            }) + b"\n")
            for box in track.boxes:
                on_frame[box.frame].append((number, category_id, box))
        self.append("videos", orjson.dumps({
            "id": task_id, "name": video.name, "file_name": video.reference, "width": info.width,
            "height": info.height, "fps": float(info.fps), "frames": info.frames,
            "label_studio_fps": label_studio_fps(self.context, item, None), "frame_step": self.step,
        }) + b"\n")
        last = 0
        for saved in self.save_frames(video, self.step, lambda n: f"images/{video.name}/{n:06d}.jpg"):
            last = saved.number
            self.append("images", orjson.dumps({
                "video_id": task_id, "frame_id": saved.position, "frame_index": saved.number - 1,
                "file_name": saved.file, "width": saved.width, "height": saved.height,
            }) + b"\n")
            for track_number, category_id, box in on_frame.pop(saved.number, ()):
                self.append("annotations", orjson.dumps(_annotation(task_id, saved.position, track_number, category_id,
                                                                    box, saved.width, saved.height)) + b"\n")
            self.append("files", orjson.dumps({
                "task": task_id, "video": video.reference, "frame": saved.number, "image_file": saved.file,
                "width": saved.width, "height": saved.height, "label_files": [RESULT_FILE],
            }) + b"\n")
        self.frames_missing(last, info, len(on_frame))

    def close(self) -> None:
        """Images and tracks numbered 1, 2, … over the dataset; annotations pointed at them."""
        part = {name: self.out_dir / self.streams[name].file for name in ("videos", "images", "tracks", "annotations")}
        first_image: dict[Any, int] = {}  # video id → the id of its first frame
        first_track: dict[Any, int] = {}  # video id → the id of its first track
        with open(self.out_dir / RESULT_FILE, "wb") as out:
            out.write(b'{"info":' + orjson.dumps(coco_info(self.dataset_date, self.context.project_id)))
            out.write(b',"videos":[')
            copy_joined(part["videos"], out)
            out.write(b'],"images":[')
            _numbered(part["images"], out, first_image)
            out.write(b'],"tracks":[')
            _numbered(part["tracks"], out, first_track, drop="track")
            out.write(b'],"categories":' + orjson.dumps(class_categories(self.context.classes, self.first_category_id)))
            out.write(b',"annotations":[')
            with open(part["annotations"], "rb") as lines:
                for number, line in enumerate(lines, 1):
                    record = orjson.loads(line)
                    video_id = record.pop("video_id")
                    image_id = first_image[video_id] + record.pop("frame_id")
                    track_id = first_track[video_id] + record.pop("track") - 1
                    out.write(b"," if number > 1 else b"")
                    out.write(orjson.dumps({"id": number, "image_id": image_id, "video_id": video_id,
                                            "track_id": track_id, "instance_id": track_id, **record}))
            out.write(b"]}")

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        from pycocotools.coco import COCO  # noqa: PLC0415 - costs ~0.3 s to import

        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                coco = COCO(str(out_dir / RESULT_FILE))
        except Exception as error:  # noqa: BLE001 - pycocotools raises bare AssertionError/KeyError on bad files
            return [CheckOutcome(COCO_VIDEO_LOADS.name, False, [f"pycocotools cannot load {RESULT_FILE}: {error!r}"]),
                    CheckOutcome(COCO_CATEGORY_IDS.name, False, [f"{RESULT_FILE} does not load"])]
        document = coco.dataset
        videos = {video["id"] for video in document.get("videos", [])}
        tracks = {track["id"]: track for track in document.get("tracks", [])}
        problems: list[str] = []
        frame_ids: dict[Any, list[int]] = defaultdict(list)
        for image in coco.imgs.values():
            frame_ids[image.get("video_id")].append(image.get("frame_id"))
            if image.get("video_id") not in videos:
                problems.append(f"image {image['id']}: video {image.get('video_id')} is not listed")
            if not (out_dir / image["file_name"]).is_file():
                problems.append(f"image {image['id']}: {image['file_name']} does not exist")
        for video_id, found in frame_ids.items():
            if sorted(found) != list(range(len(found))):
                problems.append(f"video {video_id}: frame_ids are not 0..{len(found) - 1}")
        for annotation in coco.anns.values():
            problem = _annotation_problem(annotation, coco.imgs.get(annotation["image_id"]), tracks)
            if problem:
                problems.append(f"annotation {annotation['id']}: {problem}")
        return [CheckOutcome(COCO_VIDEO_LOADS.name, not problems, problems[:20], {
                    "videos": len(videos), "images": len(coco.imgs), "tracks": len(tracks),
                    "annotations": len(coco.anns)}),
                check_category_ids(document, context)]


def _annotation(video_id: Any, position: int, track: int, category_id: int, box: TrackBox, width: int,
                height: int) -> dict:
    """One track's box on one frame; ids (image, track, annotation) are given at `close`."""
    segmentation: list = []
    area = box.box.area
    if box.rotated:
        outline = clip_polygon(box.corners, width, height)
        segmentation = [[coordinate for point in outline for coordinate in point]]
        area = polygon_area(outline)
    envelope = box.box
    return {"video_id": video_id, "frame_id": position, "track": track, "category_id": category_id,
            "bbox": [envelope.xmin, envelope.ymin, envelope.width, envelope.height], "area": area, "iscrowd": 0,
            "segmentation": segmentation, "keyframe": box.keyframe}


def _numbered(path: Path, out: Any, firsts: dict[Any, int], drop: str | None = None) -> None:
    """Records given ids 1, 2, … in order (key `drop` left out); the id of each video's first one noted in
    `firsts`: a video's records are consecutive, so its n-th is firsts[video] + n."""
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            record = orjson.loads(line)
            firsts.setdefault(record["video_id"], number)
            if drop is not None:
                del record[drop]
            out.write(b"," if number > 1 else b"")
            out.write(orjson.dumps({"id": number, **record}))


def _annotation_problem(annotation: dict, image: dict | None, tracks: dict[Any, dict]) -> str | None:
    if image is None:
        return f"image {annotation['image_id']} is not listed"
    if annotation.get("video_id") != image.get("video_id"):
        return f"video {annotation.get('video_id')}, its image's is {image.get('video_id')}"
    track = tracks.get(annotation.get("track_id"))
    if track is None or annotation.get("instance_id") != annotation.get("track_id"):
        return f"track {annotation.get('track_id')} is not listed (or instance_id differs)"
    if track.get("video_id") != image.get("video_id") or track.get("category_id") != annotation.get("category_id"):
        return f"track {track['id']} belongs to another video or category"
    x, y, w, h = annotation["bbox"]
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > image["width"] + 1e-6 or y + h > image["height"] + 1e-6:
        return f"bbox {annotation['bbox']} is not inside the {image['width']}x{image['height']} frame"
    return None
