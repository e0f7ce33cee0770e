"""What the time-segment formats share: labeled ranges of a video, an audio file or a time series.

Label Studio's results (one per region):

- TimelineLabels on a `<Video>`: `value.ranges` = [{start, end}] in Label Studio's frame numbers
  (1-based, inclusive, at the `<Video frameRate>`), labels under `value.timelinelabels`.
- Labels on an `<Audio>`: `value.start` / `value.end` in seconds, `value.channel`, labels under `value.labels`.
- TimeSeriesLabels on a `<TimeSeries>`: `value.start` / `value.end` (the time column's values: numbers,
  or date strings when the column is formatted), `value.instant`, labels under `value.timeserieslabels`.

A region becomes one `Segment` per range and label set; anything else a project holds is dropped with
the format that holds it, and a range that cannot be read is dropped with why.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

from lsflow.core.formats.base import DatasetWriter, Stream, TaskItem
from lsflow.core.model.task import Annotation, Region


class Segment(NamedTuple):
    annotation: Annotation
    region: Region
    label: str
    start: Any  # seconds, frames or the series' own time values, as the result gives them
    end: Any
    extra: dict[str, Any]  # e.g. channel (audio), instant (time series)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def csv_row(values: list[Any]) -> bytes:
    """A CSV line: cells quoted only when they hold a comma, quote or line break; None is empty."""
    cells = []
    for value in values:
        text = "" if value is None else str(value)
        cells.append(f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n\r') else text)
    return (",".join(cells) + "\n").encode()


class SegmentWriter(DatasetWriter):
    """Subclasses name the region types they hold and write `Segment`s; every other region is dropped."""

    region_types: ClassVar[frozenset[str]]
    elsewhere: ClassVar[str]  # the formats holding other regions, for the drop reason

    def segments(self, item: TaskItem) -> list[Segment]:
        found = []
        for annotation in item.annotations:
            for region in annotation.regions:
                if region.type not in self.region_types:
                    self.drop(item, annotation, region, f"'{region.type}' regions are not segments of "
                                                        f"{self.name} ({self.elsewhere})")
                    continue
                labels = region.labels
                if not labels:
                    self.drop(item, annotation, region, "segment has no label")
                    continue
                ranges = self.ranges(region)
                if isinstance(ranges, str):
                    self.drop(item, annotation, region, ranges)
                    continue
                self.report.wrote(labels[0])
                found += [Segment(annotation, region, label, start, end, extra)
                          for start, end, extra in ranges for label in labels]
        return found

    def ranges(self, region: Region) -> list[tuple[Any, Any, dict[str, Any]]] | str:
        """The region's (start, end, extra) ranges, or why it has none; numbers in seconds by default."""
        start, end = number(region.value.get("start")), number(region.value.get("end"))
        if start is None or end is None:
            return "segment has no number 'start' and 'end'"
        if end < start:
            return f"segment ends ({end:g}) before it starts ({start:g})"
        return [(start, end, {})]


def table_streams(columns: tuple[str, ...]) -> dict[str, Stream]:
    """A segment table as `segments.csv` (a header of `columns`) and as `segments.jsonl`."""
    return {**SegmentWriter.streams, "csv": Stream("segments.csv", header=",".join(columns).encode() + b"\n"),
            "json": Stream("segments.jsonl")}


class AudioLabelsWriter(SegmentWriter):
    """The formats of `<Labels>` segments on an `<Audio>`."""

    object_tags = frozenset({"audio", "audioplus"})
    control_tags = frozenset({"labels"})
    region_types = frozenset({"labels"})
    elsewhere = "transcriptions go to ASR_MANIFEST"

    def audio_key(self) -> str:
        """The task `data` key of the project's audio (the label config's `<Audio value="$...">`)."""
        config = self.context.label_config
        found = next((o.data_key for o in config.objects if o.tag in self.object_tags), None) if config else None
        return found or "audio"
