"""VIDEO_SEGMENTS: TimelineLabels ranges of videos as a segment list, `segments.csv` and `segments.jsonl`.

One row per range and label: task, annotation, region, label, video, start_frame, end_frame (Label
Studio's 1-based, inclusive frame numbers), start_time, end_time (seconds: frame N covers
[(N - 1) / fps, N / fps) at the `<Video frameRate>` Label Studio numbered the frames at, 24 when not
given). No video is read.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from lsflow.core.formats.base import Stream, TaskItem
from lsflow.core.formats.shared.segments import SegmentWriter, csv_row, number, table_streams
from lsflow.core.formats.shared.video import label_studio_fps, video_key
from lsflow.core.model.task import Region

COLUMNS = ("task", "annotation", "region", "label", "video", "start_frame", "end_frame", "start_time", "end_time")


class VideoSegmentsWriter(SegmentWriter):
    name = "VIDEO_SEGMENTS"
    description = "TimelineLabels video segments: start/end in frames and seconds, as CSV and JSON lines"
    object_tags = frozenset({"video"})
    control_tags = frozenset({"timelinelabels"})
    region_types = frozenset({"timelinelabels"})
    elsewhere = "VideoRectangle tracks go to MOT and YOLO_VIDEO"
    streams: ClassVar[dict[str, Stream]] = table_streams(COLUMNS)

    def ranges(self, region: Region) -> list[tuple[Any, Any, dict[str, Any]]] | str:
        ranges = region.value.get("ranges")
        if not isinstance(ranges, list) or not ranges:
            return "timeline segment has no 'ranges'"
        found: list[tuple[Any, Any, dict[str, Any]]] = []
        for item in ranges:
            start = number(item.get("start")) if isinstance(item, dict) else None
            end = number(item.get("end")) if isinstance(item, dict) else None
            if start is None or end is None or start != int(start) or end != int(end):
                return "a timeline range has no whole 'start' and 'end' frame"
            if end < start:
                return f"a timeline range ends (frame {end:g}) before it starts (frame {start:g})"
            found.append((int(start), int(end), {}))
        return found

    def write(self, item: TaskItem) -> None:
        video = item.task.data.get(video_key(self.context))
        for segment in self.segments(item):
            rate = label_studio_fps(self.context, item, segment.region.to_name)
            start_time = round((segment.start - 1) / rate, 6) if rate else None
            end_time = round(segment.end / rate, 6) if rate else None
            values = [item.task.id, segment.annotation.id, segment.region.id, segment.label, video,
                      segment.start, segment.end, start_time, end_time]
            self.append("csv", csv_row(values))
            self.append("json", orjson.dumps(dict(zip(COLUMNS, values, strict=True))) + b"\n")
