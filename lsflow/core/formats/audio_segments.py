"""AUDIO_SEGMENTS: labeled audio segments (`<Labels>` on `<Audio>`) as `segments.csv` and `segments.jsonl`.

One row per segment and label: task, annotation, region, label, audio, channel, start, end (seconds,
as Label Studio stores them). No audio is read. Speaker-style labels as RTTM: the RTTM format.
"""

from __future__ import annotations

from typing import ClassVar

import orjson

from lsflow.core.formats.base import Stream, TaskItem
from lsflow.core.formats.shared.segments import AudioLabelsWriter, csv_row, table_streams

COLUMNS = ("task", "annotation", "region", "label", "audio", "channel", "start", "end")


class AudioSegmentsWriter(AudioLabelsWriter):
    name = "AUDIO_SEGMENTS"
    description = "labeled audio segments: start/end in seconds per label, as CSV and JSON lines"
    streams: ClassVar[dict[str, Stream]] = table_streams(COLUMNS)

    def write(self, item: TaskItem) -> None:
        audio = item.task.data.get(self.audio_key())
        for segment in self.segments(item):
            values = [item.task.id, segment.annotation.id, segment.region.id, segment.label, audio,
                      segment.region.value.get("channel"), segment.start, segment.end]
            self.append("csv", csv_row(values))
            self.append("json", orjson.dumps(dict(zip(COLUMNS, values, strict=True))) + b"\n")
