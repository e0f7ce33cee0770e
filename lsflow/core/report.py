"""Region accounting: every region given to a format is either written or dropped with a reason.

The balance `regions_in == written + dropped` is checked after every export (an asset check in
Dagster); each dropped region is listed, with its task, annotation and reason, in
`lsflow_dropped.jsonl` next to the dataset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

REPORT_FILE = "lsflow_report.json"
DROPPED_FILE = "lsflow_dropped.jsonl"


@dataclass
class RegionReport:
    format_name: str
    drop_log: IO[bytes] | None = None
    tasks: int = 0
    annotations_exported: int = 0
    annotations_skipped: Counter[str] = field(default_factory=Counter)
    regions_in: int = 0
    written: int = 0
    clipped: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    # Tasks a format could not list as images (e.g. size unknown), by reason.
    images_skipped: Counter[str] = field(default_factory=Counter)

    def wrote(self, label: str | None = None, clipped: bool = False) -> None:
        self.written += 1
        self.clipped += clipped
        if label is not None:
            self.labels[label] += 1

    def drop(self, task_id: Any, annotation_id: Any, region_id: Any, reason: str) -> None:
        self.dropped[reason] += 1
        if self.drop_log is not None:
            self.drop_log.write(
                orjson.dumps(
                    {"task": task_id, "annotation": annotation_id, "region": region_id, "reason": reason}
                )
                + b"\n"
            )

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def balanced(self) -> bool:
        return self.regions_in == self.written + self.dropped_total

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format_name,
            "tasks": self.tasks,
            "annotations_exported": self.annotations_exported,
            "annotations_skipped": dict(sorted(self.annotations_skipped.items())),
            "regions_in": self.regions_in,
            "regions_written": self.written,
            "regions_clipped": self.clipped,
            "regions_dropped": self.dropped_total,
            "dropped_by_reason": dict(self.dropped.most_common()),
            "labels": dict(sorted(self.labels.items())),
            "images_skipped": dict(self.images_skipped.most_common()),
            "balanced": self.balanced,
        }
