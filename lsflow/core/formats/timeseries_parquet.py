"""TIMESERIES_PARQUET: TimeSeriesLabels ranges as one Parquet table per series, `<series>.parquet`.

A series is a `<TimeSeries>` object of the label config (the regions' `to_name`); its table has one
row per range and label: task_id, annotation_id, region_id, label, start, end, instant. `start` and
`end` are the time column's values as Label Studio stores them: float64 when every range of the
series has numbers, else strings (a formatted time column gives date strings). `instant` marks a
point event (start == end). The ranges are gathered in a working file while tasks are written and
the tables assembled in `close`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, Stream, TaskItem
from lsflow.core.formats.shared.segments import SegmentWriter
from lsflow.core.model.task import Region

_FRAGMENT = ".ranges.jsonl"


def table_name(series: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", series) or "series"


class TimeseriesParquetWriter(SegmentWriter):
    name = "TIMESERIES_PARQUET"
    description = "TimeSeriesLabels ranges as one Parquet table per series (start, end, label, instant)"
    object_tags = frozenset({"timeseries"})
    control_tags = frozenset({"timeserieslabels"})
    region_types = frozenset({"timeserieslabels"})
    elsewhere = "TIMESERIES_PARQUET holds TimeSeriesLabels ranges only"
    streams: ClassVar[dict[str, Stream]] = {**SegmentWriter.streams,
                                            "ranges": Stream(_FRAGMENT, temporary=True)}
    checks = (CheckSpec("timeseries_tables_load", "every table loads with pyarrow, with the columns of a "
                                                  "range table, and no numeric range ends before it starts"),)

    def ranges(self, region: Region) -> list[tuple[Any, Any, dict[str, Any]]] | str:
        start, end = region.value.get("start"), region.value.get("end")
        if not isinstance(start, int | float | str) or not isinstance(end, int | float | str) or \
                isinstance(start, bool) or isinstance(end, bool):
            return "time series range has no 'start' and 'end'"
        if isinstance(start, int | float) and isinstance(end, int | float) and end < start:
            return f"time series range ends ({end}) before it starts ({start})"
        return [(start, end, {"instant": bool(region.value.get("instant", start == end))})]

    def write(self, item: TaskItem) -> None:
        for segment in self.segments(item):
            self.append("ranges", orjson.dumps([segment.region.to_name, item.task.id, segment.annotation.id,
                                                segment.region.id, segment.label, segment.start, segment.end,
                                                segment.extra["instant"]]) + b"\n")

    def close(self) -> None:
        by_series: dict[str, list[list[Any]]] = defaultdict(list)
        with open(self.out_dir / _FRAGMENT, "rb") as fragment:
            for line in fragment:
                series, *row = orjson.loads(line)
                by_series[series].append(row)
        config = self.context.label_config
        for series in [o.name for o in config.objects if o.tag == "timeseries"] if config else []:
            by_series.setdefault(series, [])
        for series, rows in sorted(by_series.items()):
            columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 7
            numeric = all(isinstance(v, int | float) for v in (*columns[4], *columns[5]))
            kind = pa.float64() if numeric else pa.string()
            convert = float if numeric else str
            table = pa.table({
                "task_id": pa.array(columns[0], pa.int64()),
                "annotation_id": pa.array(columns[1], pa.int64()),
                "region_id": pa.array(columns[2], pa.string()),
                "label": pa.array(columns[3], pa.string()),
                "start": pa.array([convert(v) for v in columns[4]], kind),
                "end": pa.array([convert(v) for v in columns[5]], kind),
                "instant": pa.array(columns[6], pa.bool_()),
            })
            pq.write_table(table, self.out_dir / f"{table_name(series)}.parquet")

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        problems, rows = [], 0
        wanted = {"task_id", "annotation_id", "region_id", "label", "start", "end", "instant"}
        for path in sorted(out_dir.glob("*.parquet")):
            try:
                table = pq.read_table(path)
            except (OSError, pa.ArrowException) as error:
                problems.append(f"{path.name} does not load: {error}")
                continue
            rows += table.num_rows
            if set(table.column_names) != wanted:
                problems.append(f"{path.name} has columns {table.column_names}")
            elif pa.types.is_floating(table.schema.field("start").type):
                starts, ends = table.column("start").to_pylist(), table.column("end").to_pylist()
                problems += [f"{path.name} row {n}: ends before it starts"
                             for n, (a, b) in enumerate(zip(starts, ends, strict=True)) if b < a]
        return [CheckOutcome("timeseries_tables_load", not problems, problems[:20], {"ranges": rows})]
