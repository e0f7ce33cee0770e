"""Region accounting: every region given to a format is either written or dropped with a reason.

The balance `regions_in == written + dropped` is checked after every export (an asset check in
Dagster); each dropped region is listed, with its task, annotation and reason, in
`lsflow_dropped.jsonl` next to the dataset.

A writer accounts for one task at a time; the pipeline takes that task's account (`take_task`) and
adds it to the totals (`add_task`). A task's account is a small value of its own, so it can be
made in another process or kept from an earlier export and added later, with the same totals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

REPORT_FILE = "lsflow_report.json"
DROPPED_FILE = "lsflow_dropped.jsonl"


class TaskSelection(NamedTuple):
    """What the pipeline gave every format of a task: the same for all of them."""

    annotations_exported: int
    annotations_skipped: tuple[str, ...]  # one reason per annotation left out
    regions_in: int


class TaskAccount(NamedTuple):
    """One format's accounting for one task."""

    selection: TaskSelection
    written: tuple[str | None, ...]  # the label of each region written (None: a region without one)
    clipped: int
    dropped: tuple[str, ...]  # the reason of each region dropped
    images_skipped: tuple[str, ...]  # why the task's image could not be listed, if it was not

    def to_json(self) -> list:
        return [list(self.selection), list(self.written), self.clipped, list(self.dropped), list(self.images_skipped)]

    @classmethod
    def from_json(cls, value: list) -> TaskAccount:
        selection, written, clipped, dropped, images = value
        exported, skipped, regions = selection
        return cls(TaskSelection(exported, tuple(skipped), regions), tuple(written), clipped, tuple(dropped),
                   tuple(images))


@dataclass
class RegionReport:
    format_name: str
    tasks: int = 0
    annotations_exported: int = 0
    annotations_skipped: Counter[str] = field(default_factory=Counter)
    regions_in: int = 0
    written: int = 0
    clipped: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    labels: Counter[str | None] = field(default_factory=Counter)  # None: regions without a label
    # Tasks a format could not list as images (e.g. size unknown), by reason.
    images_skipped: Counter[str] = field(default_factory=Counter)
    # The task being written: its regions' labels, clipped count, drop reasons, image problems.
    _written_now: list[str | None] = field(default_factory=list, repr=False)
    _clipped_now: int = field(default=0, repr=False)
    _dropped_now: list[str] = field(default_factory=list, repr=False)
    _images_now: list[str] = field(default_factory=list, repr=False)

    def wrote(self, label: str | None = None, clipped: bool = False) -> None:
        self._written_now.append(label)
        if clipped:
            self._clipped_now += 1

    def drop(self, reason: str) -> None:
        self._dropped_now.append(reason)

    def skip_image(self, reason: str) -> None:
        self._images_now.append(reason)

    def take_task(self, selection: TaskSelection) -> TaskAccount:
        """The account of the task just written; the next task starts from nothing."""
        account = TaskAccount(selection, tuple(self._written_now), self._clipped_now,
                              tuple(self._dropped_now) if self._dropped_now else (),
                              tuple(self._images_now) if self._images_now else ())
        self._written_now.clear()
        if self._dropped_now:
            self._dropped_now.clear()
        if self._images_now:
            self._images_now.clear()
        self._clipped_now = 0
        return account

    def add_task(self, account: TaskAccount) -> None:
        selection, written, clipped, dropped, images_skipped = account
        exported, skipped, regions_in = selection
        self.tasks += 1
        self.annotations_exported += exported
        if skipped:
            self.annotations_skipped.update(skipped)
        self.regions_in += regions_in
        if written:
            self.written += len(written)
            self.labels.update(written)  # None counts the regions without a label; `as_dict` leaves it out
        self.clipped += clipped
        if dropped:
            self.dropped.update(dropped)
        if images_skipped:
            self.images_skipped.update(images_skipped)

    def add_report(self, other: RegionReport) -> None:
        """Add the totals of `other`, which accounted for the tasks that follow this report's."""
        self.tasks += other.tasks
        self.annotations_exported += other.annotations_exported
        self.annotations_skipped.update(other.annotations_skipped)
        self.regions_in += other.regions_in
        self.written += other.written
        self.clipped += other.clipped
        self.dropped.update(other.dropped)
        self.labels.update(other.labels)
        self.images_skipped.update(other.images_skipped)

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
            "labels": dict(sorted((label, n) for label, n in self.labels.items() if label is not None)),
            "images_skipped": dict(self.images_skipped.most_common()),
            "balanced": self.balanced,
        }
