"""RTTM: labeled audio segments as speaker turns, `segments.rttm` (NIST RTTM, as pyannote reads it).

    SPEAKER <file id> <channel> <onset> <duration> <NA> <NA> <label> <NA> <NA>

The file id is the audio file's stem and the task id (`<stem>__task<id>`, unique per task); the
channel is Label Studio's plus one (RTTM counts from 1); onset and duration in seconds, 3 decimals.
A segment without duration cannot be a turn and is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, Stream, TaskItem, file_stem
from lsflow.core.formats.shared.segments import AudioLabelsWriter, SegmentWriter, number
from lsflow.core.model.media_ref import media_file_name
from lsflow.core.model.task import Region

RTTM_FILE = "segments.rttm"
RTTM_FIELDS = 10


class RttmWriter(AudioLabelsWriter):
    name = "RTTM"
    description = "labeled audio segments as RTTM speaker turns (pyannote's diarization format)"
    streams: ClassVar[dict[str, Stream]] = {**SegmentWriter.streams, "rttm": Stream(RTTM_FILE)}
    checks = (CheckSpec("rttm_rows_valid", "every line has RTTM's 10 fields, a positive duration and no space "
                                           "inside a field"),)

    def ranges(self, region: Region) -> list[tuple[Any, Any, dict[str, Any]]] | str:
        found = super().ranges(region)
        if not isinstance(found, str) and found[0][1] <= found[0][0]:
            return "segment has no duration: an RTTM turn needs one"
        return found

    def write(self, item: TaskItem) -> None:
        reference = item.task.data.get(self.audio_key())
        stem = file_stem(media_file_name(reference) or "audio") if isinstance(reference, str) else "audio"
        uri = f"{stem}__task{item.task.id}".replace(" ", "_")
        for segment in self.segments(item):
            channel = number(segment.region.value.get("channel")) or 0
            label = segment.label.replace(" ", "_")
            self.append("rttm", (f"SPEAKER {uri} {int(channel) + 1} {segment.start:.3f} "
                                 f"{segment.end - segment.start:.3f} <NA> <NA> {label} <NA> <NA>\n").encode())

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        problems, rows = [], 0
        for number_, line in enumerate((out_dir / RTTM_FILE).read_text(encoding="utf-8").splitlines(), 1):
            rows += 1
            fields = line.split(" ")
            if len(fields) != RTTM_FIELDS or fields[0] != "SPEAKER" or "" in fields:
                problems.append(f"line {number_}: not 10 single-space separated fields starting with SPEAKER")
                continue
            try:
                if float(fields[4]) <= 0 or float(fields[3]) < 0:
                    problems.append(f"line {number_}: negative onset or no duration")
            except ValueError:
                problems.append(f"line {number_}: onset or duration is not a number")
        return [CheckOutcome("rttm_rows_valid", not problems, problems[:20], {"turns": rows})]
