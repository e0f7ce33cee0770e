"""Writing tasks in worker processes, for the formats whose task output depends on the task alone.

The pipeline hands a worker a batch of tasks as JSON, each with its image file name and size; the
worker parses them, writes them with its own writers (task files go straight into the staging
folders, which all processes share) and returns each task's records and account. The pipeline puts
those in place in task order, exactly as if it had written the tasks itself. A format that the
worker writes for every task of the batch comes back as one `BatchOutput`: the batch's records
joined, its accounting added up, so the pipeline handles it once rather than task by task. Those
records (most of what a pass writes) do not cross the pool's pipe: the worker writes them into a
spill file, in memory (`/dev/shm`) where the system has it, and the pipeline has the kernel append
them to the dataset's files (`sendfile`), so they never pass through its own memory.
Workers are forked, so they start with the pipeline's context and no pickling of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import multiprocessing
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import NamedTuple

import orjson

from lsflow.core.formats import writer_class
from lsflow.core.formats.accounting import RegionReport, TaskAccount, TaskSelection
from lsflow.core.formats.base import DatasetWriter, ExportContext, Span, TaskItem, TaskOutput, write_all
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import ImageSize, Task


class TaskJob(NamedTuple):
    """A task for a worker to write, as JSON: parsed in the worker, not pickled as objects."""

    position: int  # in the export, for error messages
    raw: bytes | int  # the task's JSON; once the pool has spilled it, its length there
    image_ref: str | None
    file_name: str
    image_size: ImageSize | None
    writers: tuple[int, ...]  # indexes of the formats to write it in


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class JoinedTask(NamedTuple):
    spans: list[Span]  # of the task's records within the batch's, in the order of the streams
    files: list[str]
    account: TaskAccount


class BatchOutput(NamedTuple):
    """One format's share of a whole batch."""

    # stream → every task's records, joined by the stream's separator: the bytes, or where they lie in the
    # batch's spill file
    records: dict[str, bytes | Span]
    report: RegionReport  # the batch's accounting
    tasks: list[JoinedTask] | None  # when the export keeps task outputs for reuse


def write_task(writer: DatasetWriter, item: TaskItem, selection: TaskSelection) -> TaskOutput:
    writer.write(item)
    for source, region, reason in item.unmerged:  # what reached no consensus is dropped, in every format
        writer.drop(item, source, region, reason)
    return writer.take_output(selection)


class _BatchJoin:
    """A format's outputs of consecutive tasks joined into one `BatchOutput`."""

    def __init__(self, writer: DatasetWriter, keep_tasks: bool):
        self.writer = writer
        self.chunks: dict[str, list[bytes]] = {name: [] for name in writer.streams}
        self.lengths = dict.fromkeys(writer.streams, 0)
        self.report = RegionReport(writer.name)
        self.tasks: list[JoinedTask] | None = [] if keep_tasks else None

    def add(self, output: TaskOutput) -> None:
        self.report.add_task(output.account)
        if self.tasks is None:  # no spans to keep: only the task's records, each after the previous task's
            for name, task_records in output.records.items():
                if task_records:
                    self.chunks[name].append(task_records)
            return
        spans: list[Span] = []
        for name, stream in self.writer.streams.items():
            records = output.records.get(name)
            chunks = self.chunks[name]
            if not records:
                spans.append((self.lengths[name], 0))
                continue
            start = self.lengths[name] + (len(stream.separator) if chunks else 0)
            chunks.append(records)
            self.lengths[name] = start + len(records)
            spans.append((start, len(records)))
        self.tasks.append(JoinedTask(spans, output.files, output.account))

    def output(self) -> BatchOutput:
        records: dict[str, bytes | Span] = {name: self.writer.streams[name].separator.join(chunks)
                                            for name, chunks in self.chunks.items() if chunks}
        return BatchOutput(records, self.report, self.tasks)


class BatchResult(NamedTuple):
    singles: list[dict[int, TaskOutput]]  # per job, the formats written for only part of the batch
    joined: dict[int, BatchOutput]  # the formats written for every task of the batch
    spill: str | None  # the file holding the joined records (removed by whoever reads them), if any


@dataclass
class _WorkerSetup:
    formats: list[tuple[str, Path]]  # (format, its staging folder), by writer index
    context: ExportContext
    policy: AnnotationPolicy
    keeping: frozenset[int]  # the formats whose task outputs are kept for reuse
    spill_dir: str
    writers: list[DatasetWriter] = field(default_factory=list)  # made in the worker, on its first batch
    spills: int = 0  # spill files this worker made


_SETUP: _WorkerSetup | None = None  # set while a pool exists; each worker inherits it when forked


def _writers() -> list[DatasetWriter]:
    setup = _SETUP
    assert setup is not None  # set before the pool forks its workers
    if not setup.writers:
        setup.writers = [writer_class(name)(out_dir, setup.context, RegionReport(name)) for name, out_dir in setup.formats]
    return setup.writers


def _write_batch(jobs: list[TaskJob], whole: frozenset[int], spilled: str | None) -> BatchResult:
    """Per job, the outputs of the formats written for only part of the batch; the `whole` ones joined.
    `spilled`: the file holding the jobs' JSON one after the other (read, then removed, here)."""
    setup = _SETUP
    assert setup is not None  # set before the pool forks its workers
    _writers()
    joins = {index: _BatchJoin(setup.writers[index], index in setup.keeping) for index in whole}
    outputs = []
    spill = b""
    if spilled is not None:
        with open(spilled, "rb") as file:
            spill = file.read()
        os.unlink(spilled)
    view, offset = memoryview(spill), 0
    for position, raw, image_ref, file_name, size, indexes in jobs:
        if isinstance(raw, int):
            text: bytes | memoryview = view[offset:offset + raw]
            offset += raw
        else:
            text = raw
        task = Task.from_dict(orjson.loads(text), position)
        item, selection = TaskItem.select(task, setup.policy, image_ref, file_name, size)
        single = {}
        for index in indexes:
            output = write_task(setup.writers[index], item, selection)
            if index in joins:
                joins[index].add(output)
            else:
                single[index] = output
        outputs.append(single)
    joined = {index: join.output() for index, join in joins.items()}
    return BatchResult(outputs, joined, _spill(setup, joined))


def _spill(setup: _WorkerSetup, joined: dict[int, BatchOutput]) -> str | None:
    """The joined records written into one new spill file, each replaced by its span there. When the file
    cannot be written (a full `/dev/shm`), the records stay bytes and cross the pipe."""
    if not joined:
        return None
    setup.spills += 1
    path = f"{setup.spill_dir}/{os.getpid()}-{setup.spills}"
    placed: list[tuple[dict[str, bytes | Span], str, bytes]] = []
    for output in joined.values():
        for name, records in output.records.items():
            assert isinstance(records, bytes)  # spans only from here
            placed.append((output.records, name, records))
    if not _write_spill(path, [records for _, _, records in placed]):
        return None
    position = 0
    for records_of, name, records in placed:
        records_of[name] = (position, len(records))
        position += len(records)
    return path


def _write_spill(path: str, parts: list[bytes]) -> bool:
    """A new spill file holding `parts` one after the other; False (and no file) when it cannot be written."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            for part in parts:
                write_all(descriptor, part)
        finally:
            os.close(descriptor)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return False
    return True


def _close_writer(index: int, dataset_date: str) -> None:
    writer = _writers()[index]
    writer.dataset_date = dataset_date
    writer.close()


def _die_on_sigterm() -> None:
    """A worker must die when the pool is terminated (a failed pass), but it inherits the handlers of the
    process that forked it: Dagster maps SIGTERM to SIGINT's handler, which during a step only notes the
    interrupt, and the pool's `terminate` then waits for that worker forever."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


PIPE_BYTES = 1 << 20


def _widen_pipes(pool: multiprocessing.pool.Pool) -> None:
    """Batches (the tasks' JSON) and their records (~1 MB a format) cross the pool's pipes, 64 KiB at a time
    by default: a wake-up of the other side per 64 KiB, ~0.5 CPU-s in the pipeline per 100 MB (measured).
    A 1 MiB pipe (Linux's default limit for an unprivileged process) makes that a third. Best effort: the
    pool's queues are not public, and another system or a lower limit keeps the default."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux's
    if set_size is None:
        return
    for queue in (getattr(pool, "_inqueue", None), getattr(pool, "_outqueue", None)):
        for end in (getattr(queue, "_reader", None), getattr(queue, "_writer", None)):
            if end is not None:
                with contextlib.suppress(OSError, ValueError):
                    fcntl.fcntl(end.fileno(), set_size, PIPE_BYTES)


class TaskWriterPool:
    """`processes` forked workers writing batches of tasks with the writers of `formats`."""

    def __init__(self, formats: list[tuple[str, Path]], context: ExportContext, policy: AnnotationPolicy,
                 keeping: frozenset[int], processes: int):
        global _SETUP
        root = _spill_root()
        _remove_stale_spills(root)
        self.spill_dir = tempfile.mkdtemp(prefix=f"{_SPILL_PREFIX}{os.getpid()}-", dir=root)
        self._spills = 0
        _SETUP = _WorkerSetup(formats, context, policy, keeping, self.spill_dir)
        # What exists now is shared with the workers page by page until written; the collector would
        # write to every object it looks at, so it is told to leave these alone.
        gc.freeze()
        try:
            self._pool = multiprocessing.get_context("fork").Pool(processes, initializer=_die_on_sigterm)
        except BaseException:
            _SETUP = None
            gc.unfreeze()
            shutil.rmtree(self.spill_dir, ignore_errors=True)
            raise
        _widen_pipes(self._pool)

    def submit(self, jobs: list[TaskJob], whole: frozenset[int]) -> AsyncResult:
        """Write `jobs`; the formats in `whole` are written for every task of the batch. The `BatchResult`
        comes from `.get()`, which raises a worker's exception (an export error naming the task) here."""
        jobs, spilled = self._spill_jobs(jobs)
        return self._pool.apply_async(_write_batch, (jobs, whole, spilled))

    def _spill_jobs(self, jobs: list[TaskJob]) -> tuple[list[TaskJob], str | None]:
        """The jobs' JSON in one spill file (the worker reads it at once), each job holding its length:
        pickled through the pipe, it would be copied four times more here and in the worker."""
        self._spills += 1
        path = f"{self.spill_dir}/jobs-{self._spills}"
        if not _write_spill(path, [job.raw for job in jobs]):  # type: ignore[misc]  # bytes until spilled
            return jobs, None  # a full /dev/shm: through the pipe
        return [job._replace(raw=len(job.raw)) for job in jobs], path  # type: ignore[arg-type]  # as above

    def close_writer(self, index: int, dataset_date: str) -> AsyncResult:
        """The writer's `close` (assembling its aggregate files from the streams) in a worker."""
        return self._pool.apply_async(_close_writer, (index, dataset_date))

    def close(self, finished: bool) -> None:
        """Wait for the workers to exit (`finished`), or stop them at once."""
        global _SETUP
        if finished:
            self._pool.close()
        else:
            self._pool.terminate()
        self._pool.join()
        _SETUP = None
        gc.unfreeze()
        shutil.rmtree(self.spill_dir, ignore_errors=True)  # the spill files of batches never put in place


_SPILL_PREFIX = "lsflow-pass-"


def _remove_stale_spills(root: str) -> None:
    """The spill folders of passes whose process is gone: a killed step (SIGKILL, out of memory) cannot
    remove its own, and in `/dev/shm` they would hold memory until the machine restarts."""
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        for entry in entries:
            owner = entry.name[len(_SPILL_PREFIX):].partition("-")[0]
            if not entry.name.startswith(_SPILL_PREFIX) or not owner.isdigit() or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                os.kill(int(owner), 0)
            except ProcessLookupError:  # gone; another user's live process raises PermissionError: left alone
                shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                pass


def _spill_root() -> str:
    """Memory (`/dev/shm`) where the system has it: a spill file lives a moment, and on a disk a long pass
    could have it written out. Elsewhere the system's temporary folder."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else tempfile.gettempdir()
