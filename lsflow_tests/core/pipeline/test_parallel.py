"""The worker pool: it stops when a pass fails, whatever SIGTERM handler the process that forked it had;
its pipes are wide; what it writes comes back through spill files, or the pipe when they cannot be had."""

import copy
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lsflow.core.formats.base import ExportContext
from lsflow.core.model.label_config import LabelConfig, classes_from_labels
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import ExportFormatError
from lsflow.core.pipeline import parallel, passes
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.core.pipeline.parallel import PIPE_BYTES, TaskWriterPool
from lsflow.core.pipeline.passes import BATCH_TASKS
from lsflow.core.pipeline.streams import StreamSink
from lsflow.sources.export_file import iter_export_entries, iter_export_tasks
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT


def test_a_failed_pass_stops_busy_workers_even_when_sigterm_only_notes_the_interrupt(tmp_path: Path):
    # What Dagster does during a step: SIGTERM mapped to a handler that notes the interrupt and goes on.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        pool = TaskWriterPool([("YOLO", tmp_path)], ExportContext(classes_from_labels({"Car"})), AnnotationPolicy(),
                              frozenset(), processes=2)
        for _ in range(2):  # both workers busy, as when a batch fails while others are being written
            pool._pool.apply_async(time.sleep, (60,))
        time.sleep(0.5)
        closing = threading.Thread(target=pool.close, args=(False,), daemon=True)
        closing.start()
        closing.join(timeout=20)
        assert not closing.is_alive(), "stopping the pool hung on workers that outlived SIGTERM"
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ") or int(Path("/proc/sys/fs/pipe-max-size").read_text()) < PIPE_BYTES,
                    reason="pipe sizes are Linux's, and this system's limit is below the size asked for")
def test_batches_cross_pipes_of_a_mebibyte(tmp_path: Path):
    # The pool's pipes are private to multiprocessing: a Python whose pool hides them would leave every
    # batch and its records crossing 64 KiB at a time again (~0.5 CPU-s per 100 MB), which only this notices.
    pool = TaskWriterPool([("YOLO", tmp_path)], ExportContext(classes_from_labels({"Car"})), AnnotationPolicy(),
                          frozenset(), processes=2)
    try:
        ends = [end for queue in (pool._pool._inqueue, pool._pool._outqueue) for end in (queue._reader, queue._writer)]
        assert [fcntl.fcntl(end.fileno(), fcntl.F_GETPIPE_SZ) for end in ends] == [PIPE_BYTES] * 4
    finally:
        pool.close(True)


def _many_tasks(count: int, broken_at: int | None = None) -> list[dict]:
    """The sample's tasks repeated under new ids and image names, enough for several batches of workers."""
    sample = json.loads(IMAGE_EXPORT.read_text())
    tasks = []
    for number in range(count):
        task = copy.deepcopy(sample[number % len(sample)])
        task["id"] = 1000 + number
        task["data"]["image"] = f"/data/upload/1/{number:05d}.jpg"
        tasks.append(task)
    if broken_at is not None:  # a region without its value: the worker writing it raises
        tasks[broken_at]["annotations"] = [{"id": 5, "result": [{"id": "bad", "type": "rectanglelabels"}]}]
    return tasks


def _export(tmp_path: Path, tasks: list[dict], out: str, workers: int) -> dict[str, Path]:
    path = tmp_path / f"{out}.json"
    path.write_text(json.dumps(tasks))
    context = export_context(LabelConfig.from_file(IMAGE_CONFIG), lambda: iter_export_tasks(path), "1", None)
    results = export_datasets(iter_export_entries(path, context.image_key), FORMATS, tmp_path / out, context,
                              workers=workers)
    return {name: result.path for name, result in results.items()}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


FORMATS = ["JSON_MIN", "CSV", "COCO", "YOLO", "VOC"]


def test_workers_records_and_tasks_cross_through_spill_files_that_no_pass_leaves_behind(tmp_path: Path, monkeypatch):
    spill_root = tmp_path / "spill"
    spill_root.mkdir()
    monkeypatch.setattr(parallel, "_spill_root", lambda: str(spill_root))
    spilled = []  # records appended from a spill file, here in the pipeline (the workers are other processes)
    real_add_from = StreamSink.add_from
    monkeypatch.setattr(StreamSink, "add_from", lambda self, *args: spilled.append(args) or real_add_from(self, *args))
    # Small batches, many more than are ever in flight: each batch's spill files must go once it is put in
    # place, or a long pass would fill /dev/shm with them.
    monkeypatch.setattr(passes, "BATCH_TASKS", 16)
    monkeypatch.setattr(passes, "PARALLEL_AFTER", 16)
    spill_files = []
    real_finish = passes.Pass._finish

    def finish_and_count(self, batch):
        real_finish(self, batch)
        spill_files.append(sum(len(files) for _, _, files in os.walk(spill_root)))

    monkeypatch.setattr(passes.Pass, "_finish", finish_and_count)
    tasks = _many_tasks(3 * BATCH_TASKS + 40)
    one = _export(tmp_path, tasks, "one", workers=1)
    two = _export(tmp_path, tasks, "two", workers=2)
    for name in FORMATS:
        assert _files(two[name]) == _files(one[name]), name
    assert len(spilled) > 40 * len(FORMATS)  # ~50 batches, every format of each through a spill file
    assert max(spill_files) <= 2 * (2 * 2 + 1)  # a jobs file and a records file for each batch in flight
    assert list(spill_root.iterdir()) == []
    # A worker failing halfway: the error names the task, and the spill files of every batch go with the pass.
    with pytest.raises(ExportFormatError, match="task 1500, region bad"):
        _export(tmp_path, _many_tasks(3 * BATCH_TASKS + 40, broken_at=500), "broken", workers=2)
    assert list(spill_root.iterdir()) == []


def test_without_spill_files_the_workers_output_crosses_the_pipe_unchanged(tmp_path: Path, monkeypatch):
    # The spill folder gone once the pool started (a full or cleaned /dev/shm): every batch falls back to the pipe.
    real_init = TaskWriterPool.__init__

    def init_then_lose_the_spill_folder(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        shutil.rmtree(self.spill_dir)

    tasks = _many_tasks(3 * BATCH_TASKS + 40)
    one = _export(tmp_path, tasks, "one", workers=1)
    monkeypatch.setattr(TaskWriterPool, "__init__", init_then_lose_the_spill_folder)
    two = _export(tmp_path, tasks, "two", workers=2)
    for name in FORMATS:
        assert _files(two[name]) == _files(one[name]), name


def test_a_pool_removes_the_spill_folders_of_passes_whose_process_was_killed(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(parallel, "_spill_root", lambda: str(tmp_path))
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()  # its pid is free now, as a SIGKILLed step's is
    stale = tmp_path / f"lsflow-pass-{killed.pid}-abc"
    stale.mkdir()
    (stale / "jobs-1").write_bytes(b"[]")
    alive = tmp_path / f"lsflow-pass-{os.getppid()}-def"  # a pass still running in another process
    alive.mkdir()
    other = tmp_path / "lsflow-pass-notapid"
    other.mkdir()
    pool = TaskWriterPool([("YOLO", tmp_path / "out")], ExportContext(classes_from_labels({"Car"})), AnnotationPolicy(),
                          frozenset(), processes=2)
    try:
        assert not stale.exists()
        assert alive.is_dir() and other.is_dir()
    finally:
        pool.close(True)
