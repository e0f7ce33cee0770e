"""An export pass: every task read once, named, and handed to every format's build in batches.

Per task and format the pass decides: reuse the previous export's output (an unchanged task; for a
media-keyed format, with its media files unchanged too), write it here, or send it to the forked
workers (`lsflow.core.pipeline.parallel`) once the pass has written enough tasks to be worth them.
A batch's outputs are put in place format by format, in task order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.pool import AsyncResult
from typing import Any

import orjson

from lsflow.core.formats.base import DatasetWriter, ExportContext, TaskItem, TaskOutput
from lsflow.core.incremental.reuse import media_task_key, task_key
from lsflow.core.model.entries import TaskEntry, entry_of
from lsflow.core.model.media_files import image_size
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import ImageSize, Task
from lsflow.core.pipeline.build import FormatBuild, Reused, link_files, runs
from lsflow.core.pipeline.naming import TaskFileNames
from lsflow.core.pipeline.parallel import BatchOutput, TaskJob, TaskWriterPool, write_task

BATCH_TASKS = 256  # tasks per batch handed to a worker
# A pass starts workers only once this many tasks were written without them: small exports never fork.
PARALLEL_AFTER = BATCH_TASKS
LINK_THREADS = 2


@dataclass
class Batch:
    entries: list[tuple[TaskEntry, bytes | None]]  # with each task's reuse key
    # Per task, per format (build index): its output made here, or its row in the previous export's
    # index (reused); the workers' come later.
    outputs: list[dict[int, TaskOutput | Reused]]
    from_workers: AsyncResult | None = None  # per job: {build index: TaskOutput}
    job_tasks: list[int] | None = None  # the batch's task each job is
    links: dict[int, Future] = field(default_factory=dict)  # per format: the tasks whose files could not be linked
    names: list[tuple[str, ImageSize | None]] = field(default_factory=list)  # per task: file name, image size
    # Per task, the media-keyed formats' own keys (build index → key; None: a media file is missing).
    media_keys: list[dict[int, bytes | None]] = field(default_factory=list)


class Pass:
    def __init__(self, builds: list[FormatBuild], context: ExportContext, policy: AnnotationPolicy, workers: int):
        self.builds = builds
        self.context = context
        self.policy = policy
        self.workers = workers
        self.file_names = TaskFileNames()
        self.latest_change = ""
        self.pool: TaskWriterPool | None = None
        self.pooled = {index for index, build in enumerate(builds) if build.writer_class.per_task}
        # Formats that reuse by the task's key and its media files' size and mtime (never pooled).
        self.media_keyed = {index for index, build in enumerate(builds)
                            if build.writer_class.media_keyed and build.recorder is not None}
        self.written_here = 0  # tasks written in this process
        self.tasks_seen = 0
        # Hard links of reused files are made meanwhile: a system call each, waiting on the disk.
        self.linker = ThreadPoolExecutor(LINK_THREADS) if any(build.previous for build in builds) else None

    def run(self, tasks: Iterable[Task | TaskEntry]) -> None:
        """Every task written, then every format closed (by the workers too, when there are some)."""
        pending: deque[Batch] = deque()
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

    def _start(self, entries: list[TaskEntry]) -> Batch:
        """Reuse what can be reused, write here what must be, hand the rest to the workers."""
        batch = Batch([], [])
        jobs: list[TaskJob] = []
        job_tasks: list[int] = []
        reused: dict[int, list[tuple[int, int]]] = {}  # per format: (task, index row)
        use_pool = self._use_pool()
        names, keys = [], []
        for entry in entries:
            name = self.file_names.name_for(entry.id, entry.image_ref)
            size = entry.image_size or self._size_from_media(entry.image_ref)
            if entry.updated_at and entry.updated_at > self.latest_change:
                self.latest_change = entry.updated_at
            names.append((name, size))
            keys.append(task_key(entry.content_hash, name, size) if entry.content_hash is not None else None)
        # The formats that reuse by the task's key alone look the whole batch up at once.
        matched = {index: build.reusable_many(entries, keys) for index, build in enumerate(self.builds)
                   if build.previous is not None and index not in self.media_keyed and any(keys)}
        for task, (entry, (name, size), key) in enumerate(zip(entries, names, keys)):
            outputs: dict[int, TaskOutput | Reused] = {}
            media_keys: dict[int, bytes | None] = {}
            pooled, here = [], []
            for index, build in enumerate(self.builds):
                if key is None:
                    row = None
                elif index in self.media_keyed:
                    media_keys[index] = format_key = self._media_key(entry, key, build.writer_class)
                    row = build.reusable(entry, format_key) if format_key is not None else None
                else:
                    row = matched[index][task] if index in matched else None
                if row is not None:
                    outputs[index] = row
                    reused.setdefault(index, []).append((task, row.row))
                elif use_pool and index in self.pooled and entry.raw is not None:
                    pooled.append(index)
                else:
                    here.append(index)
            if pooled:
                job_tasks.append(task)
                # `pooled` holds formats only when entry.raw is not None (checked above; no assert per task)
                jobs.append(TaskJob(entry.position, entry.raw, entry.image_ref, name, size,  # type: ignore[arg-type]
                                    tuple(pooled)))
            if here:
                item, selection = TaskItem.select(entry.parsed(), self.policy, entry.image_ref, name, size)
                for index in here:
                    outputs[index] = write_task(self.builds[index].writer, item, selection)
                self.written_here += 1
            entry.task = entry.value = None  # the parsed task is not needed any more
            batch.entries.append((entry, key))
            batch.outputs.append(outputs)
            batch.media_keys.append(media_keys)
        batch.names = names
        for index, tasks_and_rows in reused.items():
            links = self.builds[index].links(tasks_and_rows)
            if links:
                assert self.linker is not None  # reuse needs a previous export, which made the linker
                batch.links[index] = self.linker.submit(link_files, links)
        if jobs:
            # The formats the workers write for every task of the batch come back joined.
            whole = frozenset(index for index in self.pooled
                              if len(jobs) == len(entries) and all(index in job.writers for job in jobs))
            assert self.pool is not None  # jobs are made only while `use_pool`
            batch.from_workers, batch.job_tasks = self.pool.submit(jobs, whole), job_tasks
        return batch

    def _finish(self, batch: Batch) -> None:
        """Put the batch's outputs in place, format by format, in task order."""
        joined: dict[int, BatchOutput] = {}
        spill: str | None = None
        if batch.from_workers is not None:
            assert batch.job_tasks is not None  # set with from_workers
            singles, joined, spill = batch.from_workers.get()
            for task, outputs in zip(batch.job_tasks, singles):
                batch.outputs[task].update(outputs)
        spill_file = os.open(spill, os.O_RDONLY | os.O_CLOEXEC) if spill is not None else None
        try:
            self._put(batch, joined, spill_file)
        finally:
            if spill is not None:
                os.close(spill_file)  # type: ignore[arg-type]  # opened with the spill
                os.unlink(spill)

    def _put(self, batch: Batch, joined: dict[int, BatchOutput], spill_file: int | None) -> None:
        for index, unlinked in batch.links.items():
            for task in unlinked.result():
                entry, _ = batch.entries[task]
                name, size = batch.names[task]
                item_of = partial(TaskItem.select, entry.parsed(), self.policy, entry.image_ref, name, size)
                batch.outputs[task][index] = self.builds[index].rewrite(batch.outputs[task][index], item_of)
        for index, build in enumerate(self.builds):
            if index in joined:
                build.put_batch(joined[index], batch.entries, spill_file)
                continue
            kept: list[tuple[int, int]] = []  # the run of reused tasks being gathered: (task, row)
            for task, ((entry, key), outputs) in enumerate(zip(batch.entries, batch.outputs)):
                output = outputs[index]
                if isinstance(output, Reused):
                    kept.append((task, output.row))
                    continue
                for _, first_row, count in runs(kept):
                    build.put_kept(first_row, count)
                kept = []
                build.put(entry.id, batch.media_keys[task].get(index, key), output)
            for _, first_row, count in runs(kept):
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

    def _media_key(self, entry: TaskEntry, key: bytes, writer: type[DatasetWriter]) -> bytes | None:
        """The task's key for a media-keyed format: with the size and mtime of each media file the writer
        reads for it, taken before the writer reads them. None when a file cannot be had: the task is
        written (its regions dropped saying so) and not kept."""
        if entry.task is not None:
            data = entry.task.data
        else:
            if entry.value is None:  # parsed here once; the task is built from it if it is written
                entry.value = orjson.loads(entry.raw)  # type: ignore[arg-type]  # an entry has a task, value or raw
            data = entry.value["data"]
        files: list[Any] = []
        for reference in writer.media_references(data, self.context):
            local = self.context.media.local_path(reference) if self.context.media is not None else None
            try:
                status = os.stat(local) if local is not None else None
            except OSError:
                status = None
            if status is None:
                return None
            files.append((reference, status.st_size, status.st_mtime_ns))
        return media_task_key(key, files)

    def _size_from_media(self, image_ref: str | None) -> ImageSize | None:
        """The image size read from the image itself, for tasks none of whose regions carries it."""
        if not image_ref or self.context.media is None:
            return None
        local = self.context.media.local_path(image_ref)
        return image_size(local) if local else None

