"""The worker pool: it stops when a pass fails, whatever SIGTERM handler the process that forked it had;
its pipes are wide."""

import fcntl
import signal
import threading
import time
from pathlib import Path

import pytest

from lsflow.core.formats.base import ExportContext
from lsflow.core.model.label_config import classes_from_labels
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.pipeline.parallel import PIPE_BYTES, TaskWriterPool


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
