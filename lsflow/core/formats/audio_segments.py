"""AUDIO_SEGMENTS: labeled audio segments (`<Labels>` on `<Audio>`) as `segments.csv` and `segments.jsonl`.

One row per segment and label: task, annotation, region, label, audio, channel, start, end (seconds,
as Label Studio stores them). No audio is read. Speaker-style labels as RTTM: the RTTM format.
"""

from __future__ import annotations

from typing import ClassVar

import orjson

from lsflow.core.formats.base import Stream, TaskItem
from lsflow.core.formats.shared.segments import SegmentWriter, csv_row

COLUMNS = ("task", "annotation", "region", "label", "audio", "channel", "start", "end")
AUDIO_TAGS = frozenset({"audio", "audioplus"})


def audio_key(writer: SegmentWriter) -> str:
    config = writer.context.label_config
    found = next((o.data_key for o in config.objects if o.tag in AUDIO_TAGS), None) if config else None
    return found or "audio"


class AudioSegmentsWriter(SegmentWriter):
    name = "AUDIO_SEGMENTS"
    description = "labeled audio segments: start/end in seconds per label, as CSV and JSON lines"
    object_tags = AUDIO_TAGS
    control_tags = frozenset({"labels"})
    region_types = frozenset({"labels"})
    elsewhere = "transcriptions go to ASR_MANIFEST"
    streams: ClassVar[dict[str, Stream]] = {
        **SegmentWriter.streams,
        "csv": Stream("segments.csv", header=",".join(COLUMNS).encode() + b"\n"),
        "json": Stream("segments.jsonl"),
    }

    def write(self, item: TaskItem) -> None:
        audio = item.task.data.get(audio_key(self))
        for segment in self.segments(item):
            values = [item.task.id, segment.annotation.id, segment.region.id, segment.label, audio,
                      segment.region.value.get("channel"), segment.start, segment.end]
            self.append("csv", csv_row(values))
            self.append("json", orjson.dumps(dict(zip(COLUMNS, values, strict=True))) + b"\n")
