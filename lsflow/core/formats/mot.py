"""MOT: VideoRectangle tracks as MOT Challenge ground truth, one sequence per video.

    <split>/<video>__task<id>/gt/gt.txt      frame,id,bb_left,bb_top,width,height,conf,class,visibility
    <split>/<video>__task<id>/seqinfo.ini    name, frameRate, seqLength, imWidth, imHeight, imDir, imExt
    labels.txt                               class names; line N is class N of gt.txt
    lsflow_tracks.jsonl                      per track: task, annotation, region id → sequence and track id,
                                             and the <Video frameRate> its keyframes were numbered at

Frame numbers are the video's own (1-based, as MOT's are; Label Studio's when its frameRate is the
video's rate, else the track is placed by time: docs/video.md); boxes are axis-aligned pixel boxes in
MOT's 1-based pixel coordinates (bb_left = x + 1: py-motmetrics' loader subtracts the 1), a rotated
rectangle's envelope, clipped to the frame. Track ids number a video's tracks from 1 in annotation
and region order; `lsflow_tracks.jsonl` maps them back to the Label Studio region. The frames
themselves are not extracted (`imDir=img1` is where MOT tools look for them; YOLO_VIDEO extracts
frames). Splits are by video (`split_of` the task id), so no video is split between train and val.
"""

from __future__ import annotations

import configparser
import io
from pathlib import Path

import orjson

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, Stream, TaskItem
from lsflow.core.formats.shared.ultralytics import names_in_id_order, split_of
from lsflow.core.formats.shared.video import VideoTrackWriter, label_studio_fps

TRACKS_FILE = "lsflow_tracks.jsonl"
LABELS_FILE = "labels.txt"


class MotWriter(VideoTrackWriter):
    name = "MOT"
    description = "MOT Challenge ground truth per video (gt/gt.txt, seqinfo.ini), track ids kept"
    streams = {**VideoTrackWriter.streams, "tracks": Stream(TRACKS_FILE)}
    checks = (
        CheckSpec("mot_rows_valid", "every gt.txt row has MOT's 9 columns, a frame within seqinfo.ini's "
                                    "seqLength, a positive box and a class of labels.txt, and the file loads "
                                    "with py-motmetrics"),
    )

    def write(self, item: TaskItem) -> None:
        video = self.task_video(item)
        if video is None:
            return
        tracks = self.tracks(item, video)
        folder = f"{split_of(item.task.id)}/{video.name}"
        rows = []
        for track_id, track in enumerate(tracks, 1):
            for box in track.boxes:
                rows.append((box.frame, track_id, "%d,%d,%.2f,%.2f,%.2f,%.2f,1,%d,1\n" % (  # noqa: UP031
                    box.frame, track_id, box.box.xmin + 1, box.box.ymin + 1, box.box.width, box.box.height,
                    track.class_id + 1)))
            self.append("tracks", orjson.dumps({
                "task": item.task.id, "annotation": track.annotation.id, "region": track.region.id,
                "sequence": folder, "track_id": track_id, "label": track.label,
                "first_frame": track.boxes[0].frame, "last_frame": track.boxes[-1].frame,
                "label_studio_fps": label_studio_fps(self.context, item, track.region.to_name),
            }) + b"\n")
        rows.sort()
        self.task_file(f"{folder}/gt/gt.txt", "".join(row for _, _, row in rows).encode())
        info = video.info
        self.task_file(f"{folder}/seqinfo.ini", (
            f"[Sequence]\nname={video.name}\nimDir=img1\nframeRate={float(info.fps):g}\nseqLength={info.frames}\n"
            f"imWidth={info.width}\nimHeight={info.height}\nimExt=.jpg\n").encode())
        self.append("files", orjson.dumps({"task": item.task.id, "video": video.reference, "sequence": folder,
                                           "label_files": [f"{folder}/gt/gt.txt", f"{folder}/seqinfo.ini"]}) + b"\n")

    def close(self) -> None:
        names = names_in_id_order(self.context.classes)
        (self.out_dir / LABELS_FILE).write_text("".join(f"{name}\n" for name in names), encoding="utf-8")

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        import motmetrics  # noqa: PLC0415 - the optional `video` extra

        classes = len((out_dir / LABELS_FILE).read_text(encoding="utf-8").splitlines())
        problems, rows, sequences = [], 0, 0
        for gt in sorted(out_dir.glob("*/*/gt/gt.txt")):
            sequences += 1
            where = gt.relative_to(out_dir)
            seqinfo = configparser.ConfigParser()
            try:
                seqinfo.read_string((gt.parent.parent / "seqinfo.ini").read_text(encoding="utf-8"))
                length = int(seqinfo["Sequence"]["seqLength"])
            except (OSError, KeyError, ValueError, configparser.Error) as error:
                problems.append(f"{gt.parent.parent.relative_to(out_dir)}/seqinfo.ini cannot be read: {error}")
                continue
            text = gt.read_text(encoding="utf-8")
            for number, line in enumerate(text.splitlines(), 1):
                rows += 1
                problem = _row_problem(line, length, classes)
                if problem:
                    problems.append(f"{where}:{number}: {problem}")
            if text:
                try:
                    loaded = motmetrics.io.loadtxt(io.StringIO(text), fmt="mot15-2D", min_confidence=1)
                except Exception as error:  # noqa: BLE001 - any failure to load is the finding
                    problems.append(f"{where}: py-motmetrics cannot load it: {error}")
                    continue
                if len(loaded) != len(text.splitlines()):
                    problems.append(f"{where}: py-motmetrics loaded {len(loaded)} of {len(text.splitlines())} rows")
        return [CheckOutcome("mot_rows_valid", not problems, problems[:20],
                             {"sequences": sequences, "rows": rows, "classes": classes})]


def _row_problem(line: str, length: int, classes: int) -> str | None:
    parts = line.split(",")
    if len(parts) != 9:  # noqa: PLR2004 - MOT's nine columns
        return f"{len(parts)} columns, MOT has 9"
    try:
        frame, track, class_id = int(parts[0]), int(parts[1]), int(parts[7])
        width, height = float(parts[4]), float(parts[5])
    except ValueError:
        return "not numbers"
    if not 1 <= frame <= length:
        return f"frame {frame} outside 1..{length} (seqLength)"
    if track < 1:
        return f"track id {track} is not positive"
    if width <= 0 or height <= 0:
        return "box without area"
    if not 1 <= class_id <= classes:
        return f"class {class_id} is not in {LABELS_FILE} ({classes} classes)"
    return None
