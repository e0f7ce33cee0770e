"""YOLO_VIDEO and YOLO_OBB_VIDEO: VideoRectangle tracks as YOLO labels of the video's frames.

The frames are decoded with PyAV one at a time at the video's own rate and saved as JPEG next to
their labels, in the Ultralytics layout of `ultralytics.py`:

    images/<split>/<video>__task<id>_<frame>.jpg    frame 1, 1 + k, 1 + 2k, … (writer option frame_step=k)
    labels/<split>/<video>__task<id>_<frame>.txt    YOLO (box) or YOLO_OBB (four corners) rows; empty: no object

`<frame>` is the video's frame number (1-based, six digits): Label Studio's when its frameRate is the
video's rate, else the track is placed by time (docs/video.md). Every extracted frame gets a label
file, so frames without objects are background examples. A video's frames all go to one split
(`split_of` the task id): no video is split between train and val. `lsflow_files.jsonl` lists each
frame with its task, video and frame number.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import ClassVar

import orjson

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, TaskItem
from lsflow.core.formats.shared.ultralytics import (
    LabelRow,
    UltralyticsWriter,
    box_columns,
    coordinates_problem,
    normalized,
    split_of,
)
from lsflow.core.formats.shared.video import (
    FRAME_STEP,
    FRAME_STEP_HELP,
    TrackBox,
    VideoTrackWriter,
    frame_file_stem,
    frame_step,
)
from lsflow.core.geometry.shapes import Shape

BOX_VALUES, CORNER_VALUES = 4, 8  # numbers after the class id in a YOLO and a YOLO_OBB row
FRAME_PER_LABEL = CheckSpec("frame_per_label", "every label file has its frame image under images/<split>/")


class YoloVideoWriter(VideoTrackWriter, UltralyticsWriter):
    name = "YOLO_VIDEO"
    description = "YOLO detection labels per video frame, with the frames extracted (Ultralytics layout)"
    task = "detect"
    kinds = frozenset({"box"})
    elsewhere: ClassVar[dict[str, str]] = {}
    copies_images = True
    option_help: ClassVar[dict[str, str]] = {FRAME_STEP: FRAME_STEP_HELP}

    @classmethod
    def _layout_checks(cls) -> tuple[CheckSpec, ...]:
        return (*super()._layout_checks(), FRAME_PER_LABEL)

    @staticmethod
    def box_row(class_id: int, box: TrackBox, width: int, height: int) -> str:
        return box_columns(class_id, box.box, width, height) + "\n"

    def write(self, item: TaskItem) -> None:
        video = self.task_video(item)
        if video is None:
            return
        step = frame_step(self.context)
        info = video.info
        rows: dict[int, list[str]] = defaultdict(list)
        for track in self.tracks(item, video, step):
            for box in track.boxes:
                rows[box.frame].append(self.box_row(track.class_id, box, info.width, info.height))
        split = split_of(item.task.id)
        last = 0
        for saved in self.save_frames(video, step, lambda n: f"images/{split}/{frame_file_stem(video, n)}.jpg"):
            last = saved.number
            label_file = f"labels/{split}/{frame_file_stem(video, saved.number)}.txt"
            self.task_file(label_file, "".join(rows.pop(saved.number, ())).encode())
            self.append("files", orjson.dumps({
                "task": item.task.id, "video": video.reference, "frame": saved.number, "image_file": saved.file,
                "width": saved.width, "height": saved.height, "label_files": [label_file],
            }) + b"\n")
        self.frames_missing(last, info, len(rows))

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        missing, labels = [], 0
        for label in sorted((out_dir / "labels").glob("*/*.txt")):
            labels += 1
            image = out_dir / "images" / label.parent.name / f"{label.stem}.jpg"
            if not image.is_file():
                missing.append(f"{label.relative_to(out_dir)} has no {image.relative_to(out_dir)}")
        return [*super().check(out_dir, context),
                CheckOutcome(FRAME_PER_LABEL.name, not missing, missing[:20], {"label_files": labels})]

    @staticmethod
    def row(shape: Shape, class_id: int) -> LabelRow | str:
        raise NotImplementedError("a video's rows are made per frame by `write`, from its tracks")

    @classmethod
    def values_problem(cls, values: list[float], context: ExportContext) -> str | None:
        if len(values) != BOX_VALUES:
            return f"{len(values) + 1} columns, a box row has {BOX_VALUES + 1}"
        return coordinates_problem(values)


class YoloObbVideoWriter(YoloVideoWriter):
    name = "YOLO_OBB_VIDEO"
    description = "YOLO oriented boxes per video frame, with the frames extracted (Ultralytics layout)"
    task = "obb"

    @staticmethod
    def box_row(class_id: int, box: TrackBox, width: int, height: int) -> str:
        # Corners beyond the frame are moved onto its edge, as YOLO_OBB does (Ultralytics rejects them).
        corners = [(min(max(x, 0.0), width), min(max(y, 0.0), height)) for x, y in box.corners]
        return f"{class_id} {normalized(corners, width, height)}\n"

    @classmethod
    def values_problem(cls, values: list[float], context: ExportContext) -> str | None:
        if len(values) != CORNER_VALUES:
            return f"{len(values) + 1} columns, an oriented box row has {CORNER_VALUES + 1}"
        return coordinates_problem(values)
