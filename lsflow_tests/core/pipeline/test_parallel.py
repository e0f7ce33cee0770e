"""The worker pool stops when a pass fails, whatever SIGTERM handler the process that forked it had."""

import signal
import threading
import time
from pathlib import Path

from lsflow.core.formats.base import ExportContext
from lsflow.core.model.label_config import classes_from_labels
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.pipeline.parallel import TaskWriterPool


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
