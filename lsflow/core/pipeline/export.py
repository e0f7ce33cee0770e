"""The export pipeline: one pass over the tasks feeds every requested format, then publishes.

Each format is written into a staging directory next to its destination and only moved into place
when every format finished, so a failure never leaves a half-written dataset behind.

A pass reads each task once and hands it to every format's writer; with `workers`, the formats whose
output is per task (`DatasetWriter.per_task`) are written by forked processes, batch by batch, and
their output put in place in task order by this one. With `reuse_dir`, an export keeps where each
task's output went (`lsflow.core.incremental.reuse`), and the next one reuses the output of every task that did
not change: its records are copied out of the previous stream files and its own files hard-linked.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import shutil
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.pool import AsyncResult
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import numpy as np
import orjson

from lsflow.core.formats import writer_class
from lsflow.core.formats.base import DatasetWriter, ExportContext, TaskItem, TaskOutput, file_stem
from lsflow.core.model.label_config import LabelConfig, classes_from_labels
from lsflow.core.model.media_files import MediaLookup, image_size
from lsflow.core.model.task import Task
from lsflow.core.pipeline.parallel import BatchOutput, Job, TaskWriterPool, can_fork, write_task
from lsflow.core.pipeline.publish import PublishSummary, empty_trash, publish_directory
from lsflow.core.formats.accounting import REPORT_FILE, RegionReport, TaskSelection
from lsflow.core.incremental.reuse import OutputRecorder, PreviousOutputs, fingerprint, task_key
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import ImageSize
from lsflow.core.pipeline.streams import StreamSink
from lsflow.core.model.entries import TaskEntry, entry_of

BATCH_TASKS = 256  # tasks per batch handed to a worker
# A pass starts workers only once this many tasks were written without them: small exports never fork.
PARALLEL_AFTER = BATCH_TASKS
GC_THRESHOLD = 10_000
TRASH_DIR = ".trash"  # in the reuse folder: what a build replaced, removed by the next one
LINK_THREADS = 2


@dataclass(frozen=True, slots=True)
class FormatResult:
    format_name: str
    path: Path
    report: dict
    files: PublishSummary


class TaskFileNames:
    """Collision-free image file names: the media basename, made unique with the task id when two
    tasks share one (Label Studio would let the second overwrite the first).
    Uniqueness is per stem, because YOLO and VOC name label files by the image stem.
    """

    def __init__(self) -> None:
        self._stems = _StemDigests()

    def name_for(self, task_id: int, image_ref: str | None) -> str:
        name = _basename(image_ref) or f"task-{task_id}"  # one path component
        stem = file_stem(name)
        if not self._stems.add(stem):
            name = PurePosixPath(name).with_stem(f"{stem}__task{task_id}").name
            self._stems.add(file_stem(name))
        return name


class _StemDigests:
    """The stems seen so far, as 64-bit BLAKE2b digests in an open-addressing table: ~16 bytes a
    stem where a set of strings took ~110, the one thing of an export pass that grew with the
    project. Two different stems with equal digests (odds ~1e-10 at 100 000 tasks) would only give
    the second a `__task<id>` suffix it did not need: still unique, still deterministic.
    """

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * 4096))  # 0 marks an empty slot
        self._used = 0

    def add(self, stem: str) -> bool:
        """Record `stem`; False when it had been recorded before."""
        digest = int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=8).digest(), "little") or 1
        slots, mask = self._slots, len(self._slots) - 1
        index = digest & mask
        while slots[index]:
            if slots[index] == digest:
                return False
            index = (index + 1) & mask
        slots[index] = digest
        self._used += 1
        if 2 * self._used > len(slots):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        slots, mask = self._slots, len(self._slots) - 1
        for digest in old:
            if digest:
                index = digest & mask
                while slots[index]:
                    index = (index + 1) & mask
                slots[index] = digest


def _basename(image_ref: str | None) -> str:
    if not image_ref:
        return ""
    # Fast path for the common `/data/upload/<project>/<file>`: a plain path, nothing to parse or decode.
    if image_ref[0] == "/" and image_ref[1:2] != "/" and not any(c in image_ref for c in "?#;%\t\r\n"):
        last = image_ref.rsplit("/", 1)[1]
        if last not in ("", "."):
            return last
    parsed = urlparse(image_ref)
    # `/data/local-files/?d=dir/file.jpg` keeps the path in the query string.
    path = parsed.query.split("d=", 1)[1] if parsed.query.startswith("d=") else parsed.path
    return PurePosixPath(unquote(path)).name


def export_context(
    label_config: LabelConfig | None,
    tasks: Callable[[], Iterable[Task]],
    project_id: str | None = None,
    media: MediaLookup | None = None,
) -> ExportContext:
    """Classes and keypoints from the label config; without one, from a first pass over the data."""
    if label_config is not None:
        return ExportContext(
            classes=label_config.classes(),
            keypoint_names=tuple(label_config.keypoint_order()),
            label_config=label_config,
            project_id=project_id,
            image_key=label_config.data_key("image") or "image",
            media=media,
        )
    class_names, keypoint_names = set(), set()
    for task in tasks():
        for annotation in task.annotations:
            for region in annotation.regions:
                target = keypoint_names if region.type == "keypointlabels" else class_names
                if region.type.endswith("labels"):
                    target.update(region.labels)
    return ExportContext(
        classes=classes_from_labels(class_names),
        keypoint_names=tuple(sorted(keypoint_names)),
        project_id=project_id,
        media=media,
    )


def export_datasets(
    tasks: Iterable[Task | TaskEntry],
    formats: list[str],
    out_root: Path,
    context: ExportContext,
    policy: AnnotationPolicy = AnnotationPolicy(),
    workers: int = 1,
    reuse_dir: Path | None = None,
) -> dict[str, FormatResult]:
    """Stream `tasks` once through a writer per format; publish `out_root/<FORMAT>/` atomically.

    `workers` > 1 writes the per-task formats in that many forked processes (where the platform
    forks); `reuse_dir` keeps each format's task outputs there for the next export, and reuses the
    ones the previous export kept (entries need a `content_hash` for that: tasks from the store).
    """
    out_root.mkdir(parents=True, exist_ok=True)
    staging = out_root / f".staging-{uuid.uuid4().hex[:12]}"
    builds: list[_FormatBuild] = []
    finished = False
    # What the last build of these datasets replaced goes while this one is made (the disk works meanwhile).
    trash = reuse_dir / TRASH_DIR if reuse_dir is not None else None
    cleaner = ThreadPoolExecutor(1) if trash is not None else None
    cleaning = cleaner.submit(empty_trash, trash) if cleaner is not None else None
    try:
        for name in formats:
            builds.append(_FormatBuild(name, staging, out_root, context, policy, reuse_dir))
        with _fewer_collections():
            _Pass(builds, context, policy, workers if can_fork() else 1).run(tasks)
        results = {}
        for build in builds:
            results[build.name] = build.publish(trash)
        finished = True
        return results
    finally:
        if not finished:
            for build in builds:
                build.abandon()
        shutil.rmtree(staging, ignore_errors=True)
        if cleaner is not None:
            cleaner.shutdown()  # waits: nothing of the last build outlives this one
            cleaning.result()


def _runs(tasks_and_rows: list[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
    """(first task, first row, count) of the stretches where tasks and index rows both follow on."""
    start = 0
    for position in range(1, len(tasks_and_rows) + 1):
        if position == len(tasks_and_rows) or tasks_and_rows[position] != (
                tasks_and_rows[position - 1][0] + 1, tasks_and_rows[position - 1][1] + 1):
            first_task, first_row = tasks_and_rows[start]
            yield first_task, first_row, position - start
            start = position


def _link_files(links: list[tuple[int, str, str]]) -> set[int]:
    """Hard-link (task, published file, new file) triples; the tasks of which a file could not be."""
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


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """A pass makes millions of short-lived objects, freed as they go; the garbage collector's default
    of a young-generation sweep every 700 of them cost a tenth of the pass."""
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


class _FormatBuild:
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
        self._reuse_dir = None
        self.writer: DatasetWriter = self.writer_class(self.out_dir, context, self.report)
        self.writer.prepare()
        for stream, spec in self.streams.items():
            self.sinks[stream] = StreamSink(self.out_dir / spec.file, spec)
        if reuse_dir is not None and self.writer_class.per_task:
            self._reuse_dir = reuse_dir / name
            depends_on = fingerprint(name, context, policy)
            self.previous = PreviousOutputs.open(self._reuse_dir, depends_on, self.streams, self.destination, name)
            self.recorder = OutputRecorder(reuse_dir / f".staging-{name}-{uuid.uuid4().hex[:8]}", depends_on,
                                           self.streams)

    def reusable(self, entry: TaskEntry, key: bytes) -> int | None:
        """The task's row in the previous export's index, if its output can be reused."""
        return self.previous.match(entry.id, key) if self.previous is not None else None

    def links(self, tasks_and_rows: list[tuple[int, int]]) -> list[tuple[int, str, str]]:
        """(task, published file, file here) for the files of reused tasks (batch task, index row)."""
        links = []
        for first_task, first_row, count in _runs(tasks_and_rows):
            for offset, relative in self.previous.files(first_row, count):
                links.append((first_task + offset, f"{self.destination}/{relative}", f"{self.out_dir}/{relative}"))
        return links

    def rewrite(self, row: int, item_of: Callable[[], tuple[TaskItem, TaskSelection]]) -> TaskOutput:
        """Write a task whose kept files could not all be linked (gone from the published dataset)."""
        for _, relative in self.previous.files(row, 1):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.out_dir / relative)
        return write_task(self.writer, *item_of())

    def put(self, task_id: object, key: bytes | None, output: TaskOutput) -> None:
        """The task's output in place: records after the previous task's, account in the report."""
        self.report.add_task(output.account)
        if self.recorder is None:
            for name, records in output.records.items():
                self.sinks[name].add(records)
            return
        records = output.records
        spans = [self.sinks[name].add(records.get(name, b"")) for name in self.streams]
        if key is not None:
            self.recorder.add(task_id, key, spans, output.files, output.account)

    def put_kept(self, first_row: int, count: int) -> None:
        """Consecutive tasks' output from the previous export, in place after the previous task's."""
        previous = self.previous
        starts, lengths = previous.starts[first_row:first_row + count], previous.lengths[first_row:first_row + count]
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
            self.recorder.add_kept(previous, first_row, count, shifts)

    def put_batch(self, output: BatchOutput, entries: list[tuple[TaskEntry, bytes | None]]) -> None:
        """A batch written whole by a worker, in place after the previous task."""
        self.report.add_report(output.report)
        starts = {name: self.sinks[name].add(records)[0] for name, records in output.records.items()}
        if self.recorder is None:
            return
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

    def publish(self, trash: Path | None) -> FormatResult:
        files = publish_directory(self.out_dir, self.destination, trash=trash)
        if self.recorder is not None:
            # As recorded: the stream files the spans point into are these, with their size and mtime.
            self.recorder.finish(self.destination)
            publish_directory(self.recorder.directory, self._reuse_dir, keep_unchanged=False, trash=trash)
        return FormatResult(self.name, self.destination, self.report.as_dict(), files)

    def abandon(self) -> None:
        for sink in self.sinks.values():
            sink.abandon()
        if self.previous is not None:
            self.previous.close()
        if self.recorder is not None:
            shutil.rmtree(self.recorder.directory, ignore_errors=True)


@dataclass
class _Batch:
    entries: list[tuple[TaskEntry, bytes | None]]  # with each task's reuse key
    # Per task, per format (build index): its output made here, or its row in the previous export's
    # index (reused); the workers' come later.
    outputs: list[dict[int, TaskOutput | int]]
    from_workers: AsyncResult | None = None  # per job: {build index: TaskOutput}
    job_tasks: list[int] | None = None  # the batch's task each job is
    links: dict[int, Future] = field(default_factory=dict)  # per format: the tasks whose files could not be linked
    names: list[tuple[str, ImageSize | None]] = field(default_factory=list)  # per task: file name, image size


class _Pass:
    def __init__(self, builds: list[_FormatBuild], context: ExportContext, policy: AnnotationPolicy, workers: int):
        self.builds = builds
        self.context = context
        self.policy = policy
        self.workers = workers
        self.file_names = TaskFileNames()
        self.latest_change = ""
        self.pool: TaskWriterPool | None = None
        self.pooled = {index for index, build in enumerate(builds) if build.writer_class.per_task}
        self.written_here = 0  # tasks written in this process
        self.tasks_seen = 0
        # Hard links of reused files are made meanwhile: a system call each, waiting on the disk.
        self.linker = ThreadPoolExecutor(LINK_THREADS) if any(build.previous for build in builds) else None

    def run(self, tasks: Iterable[Task | TaskEntry]) -> None:
        """Every task written, then every format closed (by the workers too, when there are some)."""
        pending: deque[_Batch] = deque()
        finished = False
        try:
            for entries in self._batches(tasks):
                pending.append(self._start(entries))
                if len(pending) > 2 * self.workers:  # a few batches in flight: memory stays flat
                    self._finish(pending.popleft())
            while pending:
                self._finish(pending.popleft())
            for build in self.builds:
                build.writer.dataset_date = self.latest_change
                build.close_streams()
            if self.tasks_seen >= PARALLEL_AFTER and len(self.pooled) > 1:
                self._start_pool()  # even when reuse left nothing to write: the closes are work of their own
            closing = [(build, self.pool.close_writer(index, self.latest_change)
                        if self.pool is not None and index in self.pooled else None)
                       for index, build in enumerate(self.builds)]
            for build, in_worker in closing:  # assembling aggregate files: one format per process
                if in_worker is None:
                    build.writer.close()
                else:
                    in_worker.get()
                build.finish()
            finished = True
        finally:
            if self.pool is not None:
                self.pool.close(finished)
            if self.linker is not None:
                self.linker.shutdown(cancel_futures=True)

    def _batches(self, tasks: Iterable[Task | TaskEntry]) -> Iterator[list[TaskEntry]]:
        batch = []
        for task in tasks:
            self.tasks_seen += 1
            batch.append(task if isinstance(task, TaskEntry) else entry_of(task, self.context.image_key))
            if len(batch) == BATCH_TASKS:
                yield batch
                batch = []
        if batch:
            yield batch

    def _start(self, entries: list[TaskEntry]) -> _Batch:
        """Reuse what can be reused, write here what must be, hand the rest to the workers."""
        batch = _Batch([], [])
        jobs: list[Job] = []
        job_tasks: list[int] = []
        reused: dict[int, list[tuple[int, int]]] = {}  # per format: (task, index row)
        use_pool = self._use_pool()
        for entry in entries:
            name = self.file_names.name_for(entry.id, entry.image_ref)
            size = entry.image_size or self._size_from_media(entry.image_ref)
            if entry.updated_at and entry.updated_at > self.latest_change:
                self.latest_change = entry.updated_at
            key = task_key(entry.content_hash, name, size) if entry.content_hash is not None else None
            outputs: dict[int, TaskOutput | int] = {}
            pooled, here = [], []
            task = len(batch.outputs)
            for index, build in enumerate(self.builds):
                row = build.reusable(entry, key) if key is not None else None
                if row is not None:
                    outputs[index] = row
                    reused.setdefault(index, []).append((task, row))
                elif use_pool and index in self.pooled and entry.raw is not None:
                    pooled.append(index)
                else:
                    here.append(index)
            if pooled:
                job_tasks.append(task)
                jobs.append((entry.position, entry.raw, entry.image_ref, name, size, tuple(pooled)))
            if here:
                item, selection = TaskItem.select(entry.parsed(), self.policy, entry.image_ref, name, size)
                for index in here:
                    outputs[index] = write_task(self.builds[index].writer, item, selection)
                self.written_here += 1
            entry.task = entry.value = None  # the parsed task is not needed any more
            batch.entries.append((entry, key))
            batch.outputs.append(outputs)
            batch.names.append((name, size))
        for index, tasks_and_rows in reused.items():
            links = self.builds[index].links(tasks_and_rows)
            if links:
                batch.links[index] = self.linker.submit(_link_files, links)
        if jobs:
            # The formats the workers write for every task of the batch come back joined.
            whole = frozenset(index for index in self.pooled
                              if len(jobs) == len(entries) and all(index in job[5] for job in jobs))
            batch.from_workers, batch.job_tasks = self.pool.submit(jobs, whole), job_tasks
        return batch

    def _finish(self, batch: _Batch) -> None:
        """Put the batch's outputs in place, format by format, in task order."""
        joined: dict[int, BatchOutput] = {}
        if batch.from_workers is not None:
            singles, joined = batch.from_workers.get()
            for task, outputs in zip(batch.job_tasks, singles):
                batch.outputs[task].update(outputs)
        for index, unlinked in batch.links.items():
            for task in unlinked.result():
                entry, _ = batch.entries[task]
                name, size = batch.names[task]
                item_of = partial(TaskItem.select, entry.parsed(), self.policy, entry.image_ref, name, size)
                batch.outputs[task][index] = self.builds[index].rewrite(batch.outputs[task][index], item_of)
        for index, build in enumerate(self.builds):
            if index in joined:
                build.put_batch(joined[index], batch.entries)
                continue
            kept: list[tuple[int, int]] = []  # the run of reused tasks being gathered: (task, row)
            for task, ((entry, key), outputs) in enumerate(zip(batch.entries, batch.outputs)):
                output = outputs[index]
                if isinstance(output, int):
                    kept.append((task, output))
                    continue
                for _, first_row, count in _runs(kept):
                    build.put_kept(first_row, count)
                kept = []
                build.put(entry.id, key, output)
            for _, first_row, count in _runs(kept):
                build.put_kept(first_row, count)

    def _use_pool(self) -> bool:
        """Workers for the rest of the pass, once it has written enough tasks to be worth them."""
        if self.written_here >= PARALLEL_AFTER:
            self._start_pool()
        return self.pool is not None

    def _start_pool(self) -> None:
        if self.pool is None and self.workers > 1 and self.pooled:
            formats = [(build.name, build.out_dir) for build in self.builds]
            keeping = frozenset(index for index, build in enumerate(self.builds) if build.recorder is not None)
            self.pool = TaskWriterPool(formats, self.context, self.policy, keeping, self.workers)

    def _size_from_media(self, image_ref: str | None) -> ImageSize | None:
        """The image size read from the image itself, for tasks none of whose regions carries it."""
        if not image_ref or self.context.media is None:
            return None
        local = self.context.media.local_path(image_ref)
        return image_size(local) if local else None
