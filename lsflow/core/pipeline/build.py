"""One format of an export pass: its writer, its stream files, its report, and what it reuses and keeps.

A task's output is put in place in task order: written now (`put`), written by a worker as part of a
batch (`put_batch`), or kept from the previous export (`put_kept`: a run of consecutive unchanged
tasks, its records copied as one range, its files hard-linked).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import orjson

from lsflow.core.formats import writer_class
from lsflow.core.formats.accounting import REPORT_FILE, RegionReport, TaskSelection
from lsflow.core.formats.base import DatasetWriter, ExportContext, TaskItem, TaskOutput
from lsflow.core.incremental.reuse import OutputRecorder, PreviousOutputs, fingerprint
from lsflow.core.model.entries import TaskEntry
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.pipeline.parallel import BatchOutput, write_task
from lsflow.core.pipeline.publish import PublishSummary, publish_directory, remove_tree
from lsflow.core.pipeline.streams import StreamSink
from lsflow.core.pipeline.versions import Describe, PublishedVersion, publish_version


@dataclass(frozen=True, slots=True)
class FormatResult:
    format_name: str
    path: Path
    report: dict
    files: PublishSummary
    version: PublishedVersion | None = None  # when the build publishes versions


@dataclass(frozen=True, slots=True)
class Versioning:
    """Publish each format as immutable versions under `root/<FORMAT>/`, the stable path a link to the newest."""

    root: Path
    describe: Callable[[str], Describe] | None = None  # per format: writes the version's manifest and card


class Reused(NamedTuple):
    """A task whose output the previous export kept: its row in that export's index."""

    row: int


class FileLink(NamedTuple):
    """A reused task's file: hard-linked from the published dataset into the one being built."""

    task: int  # the task's place in its batch
    published: str
    new: str


def runs(tasks_and_rows: list[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
    """(first task, first row, count) of the stretches where tasks and index rows both follow on."""
    start = 0
    for position in range(1, len(tasks_and_rows) + 1):
        if position == len(tasks_and_rows) or tasks_and_rows[position] != (
                tasks_and_rows[position - 1][0] + 1, tasks_and_rows[position - 1][1] + 1):
            first_task, first_row = tasks_and_rows[start]
            yield first_task, first_row, position - start
            start = position


def link_files(links: list[FileLink]) -> set[int]:
    """Hard-link the files; the tasks (places in the batch) of which a file could not be."""
    failed = set()
    for task, published, new in links:
        if task in failed:
            continue
        try:
            os.link(published, new)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(new), exist_ok=True)  # the first file of its folder
            try:
                os.link(published, new)
            except OSError:  # gone from the published dataset
                failed.add(task)
        except OSError:  # e.g. no hard links on this filesystem
            failed.add(task)
    return failed



class FormatBuild:
    """One format of a pass: its writer, stream files, report, and what is reused and kept."""

    def __init__(self, name: str, staging: Path, out_root: Path, context: ExportContext,
                 policy: AnnotationPolicy, reuse_dir: Path | None):
        self.name = name
        self.writer_class = writer_class(name)
        self.out_dir = staging / name
        self.out_dir.mkdir(parents=True)
        self.destination = out_root / name
        self.report = RegionReport(name)
        self.streams = self.writer_class.streams
        self.sinks: dict[str, StreamSink] = {}
        self.previous: PreviousOutputs | None = None
        self.recorder: OutputRecorder | None = None
        self._reuse_dir: Path | None = None
        self.writer: DatasetWriter = self.writer_class(self.out_dir, context, self.report)
        self.writer.prepare()
        for stream, spec in self.streams.items():
            self.sinks[stream] = StreamSink(self.out_dir / spec.file, spec)
        if reuse_dir is not None and (self.writer_class.per_task or self.writer_class.media_keyed):
            self._reuse_dir = reuse_dir / name
            depends_on = fingerprint(name, context, policy)
            self.previous = PreviousOutputs.open(self._reuse_dir, depends_on, self.streams, self.destination, name)
            self.recorder = OutputRecorder(reuse_dir / f".staging-{name}-{uuid.uuid4().hex[:8]}", depends_on,
                                           self.streams)

    def reusable(self, entry: TaskEntry, key: bytes) -> Reused | None:
        """The task's row in the previous export's index, if its output can be reused."""
        row = self.previous.match(entry.id, key) if self.previous is not None else None
        return None if row is None else Reused(row)

    def reusable_many(self, entries: list[TaskEntry], keys: list[bytes | None]) -> list[Reused | None]:
        """`reusable` for a batch of tasks (a task without a key: None)."""
        assert self.previous is not None  # asked only of formats that have a previous export
        return [None if row is None else Reused(row)
                for row in self.previous.match_many([entry.id for entry in entries], keys)]

    def links(self, tasks_and_rows: list[tuple[int, int]]) -> list[FileLink]:
        """The files of reused tasks, given as (place in the batch, index row)."""
        assert self.previous is not None  # only reused tasks come here, and only a previous export reuses
        links = []
        for first_task, first_row, count in runs(tasks_and_rows):
            for offset, relative in self.previous.files(first_row, count):
                links.append(FileLink(first_task + offset, f"{self.destination}/{relative}", f"{self.out_dir}/{relative}"))
        return links

    def rewrite(self, reused: Reused, item_of: Callable[[], tuple[TaskItem, TaskSelection]]) -> TaskOutput:
        """Write a task whose kept files could not all be linked (gone from the published dataset)."""
        assert self.previous is not None  # a reused task: there is a previous export
        for _, relative in self.previous.files(reused.row, 1):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.out_dir / relative)
        return write_task(self.writer, *item_of())

    def put(self, task_id: object, key: bytes | None, output: TaskOutput) -> None:
        """The task's output in place: records after the previous task's, account in the report."""
        self.report.add_task(output.account)
        if self.recorder is None:
            for name, stream_records in output.records.items():
                self.sinks[name].add(stream_records)
            return
        records = output.records
        spans = [self.sinks[name].add(records.get(name, b"")) for name in self.streams]
        if key is not None:
            self.recorder.add(task_id, key, spans, output.files, output.account)

    def put_kept(self, first_row: int, count: int) -> None:
        """Consecutive tasks' output from the previous export, in place after the previous task's."""
        previous = self.previous
        assert previous is not None  # kept tasks come from a previous export
        starts, lengths = previous.spans(first_row, count)
        shifts = np.zeros(len(self.streams), dtype=np.int64)
        for column, name in enumerate(self.streams):
            present = np.flatnonzero(lengths[:, column])
            if present.size:  # the rows' records lie together, separators between them included
                old_start = starts[present[0], column]
                old_end = starts[present[-1], column] + lengths[present[-1], column]
                new_start, _ = self.sinks[name].copy(previous.sources[name], (int(old_start), int(old_end - old_start)))
                shifts[column] = new_start - old_start
        self.report.add_report(previous.report(first_row, count))
        if self.recorder is not None:
            self.recorder.add_kept(previous.rows(first_row, count), starts + shifts)

    def put_batch(self, output: BatchOutput, entries: list[tuple[TaskEntry, bytes | None]], spill: int | None) -> None:
        """A batch written whole by a worker, in place after the previous task (`spill`: the open spill file
        that records given as spans lie in)."""
        self.report.add_report(output.report)
        starts = {name: (self.sinks[name].add(records) if isinstance(records, bytes)
                         else self.sinks[name].add_from(spill, records))[0]  # type: ignore[arg-type]  # spans come with a spill
                  for name, records in output.records.items()}
        if self.recorder is None:
            return
        assert output.tasks is not None  # the worker keeps task outputs for the formats that record them
        for (entry, key), task in zip(entries, output.tasks):
            if key is not None:
                spans = [(starts.get(name, 0) + start, length) for name, (start, length) in zip(self.streams, task.spans)]
                self.recorder.add(entry.id, key, spans, task.files, task.account)

    def close_streams(self) -> None:
        for sink in self.sinks.values():
            sink.close()
        if self.previous is not None:
            self.previous.close()

    def finish(self) -> None:
        """After the writer's `close`: the report, and the working streams kept or removed."""
        (self.out_dir / REPORT_FILE).write_bytes(orjson.dumps(self.report.as_dict(), option=orjson.OPT_INDENT_2))
        for spec in self.streams.values():  # working files: kept for the next export, or gone
            if spec.temporary:
                working = self.out_dir / spec.file
                if self.recorder is not None:
                    os.replace(working, self.recorder.directory / spec.file)
                else:
                    working.unlink()

    def publish(self, trash: Path | None, versioning: Versioning | None) -> FormatResult:
        version = None
        if versioning is not None:
            describe = versioning.describe(self.name) if versioning.describe is not None else None
            version = publish_version(self.out_dir, versioning.root / self.name, self.destination, describe)
            files = version.files
        else:
            published = publish_directory(self.out_dir, self.destination, trash=trash)
            assert published is not None  # keep_unchanged (the default) always summarises
            files = published
        if self.recorder is not None:
            assert self._reuse_dir is not None  # set with the recorder
            # As recorded: the stream files the spans point into are these, with their size and mtime.
            self.recorder.finish(self.destination)
            publish_directory(self.recorder.directory, self._reuse_dir, keep_unchanged=False, trash=trash)
        return FormatResult(self.name, self.destination, self.report.as_dict(), files, version)

    def abandon(self) -> None:
        for sink in self.sinks.values():
            sink.abandon()
        if self.previous is not None:
            self.previous.close()
        if self.recorder is not None:
            self.recorder.abandon()
            remove_tree(self.recorder.directory)
