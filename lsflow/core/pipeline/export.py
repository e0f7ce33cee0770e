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

import gc
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from lsflow.core.formats.base import ExportContext
from lsflow.core.model.entries import TaskEntry
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import Task
from lsflow.core.pipeline.build import FormatBuild, FormatResult, Versioning
from lsflow.core.pipeline.naming import TaskFileNames
from lsflow.core.pipeline.parallel import can_fork
from lsflow.core.pipeline.passes import Pass
from lsflow.core.pipeline.publish import empty_trash, remove_tree

GC_THRESHOLD = 10_000
TRASH_DIR = ".trash"  # in the reuse folder: what a build replaced, removed by the next one


def export_datasets(
    tasks: Iterable[Task | TaskEntry],
    formats: list[str],
    out_root: Path,
    context: ExportContext,
    policy: AnnotationPolicy = AnnotationPolicy(),
    workers: int = 1,
    reuse_dir: Path | None = None,
    versioning: Versioning | None = None,
    file_names: TaskFileNames | None = None,
) -> dict[str, FormatResult]:
    """Stream `tasks` once through a writer per format; publish `out_root/<FORMAT>/` atomically.

    `workers` > 1 writes the per-task formats in that many forked processes (where the platform
    forks); `reuse_dir` keeps each format's task outputs there for the next export, and reuses the
    ones the previous export kept (entries need a `content_hash` for that: tasks from the store);
    with `versioning`, each format is published as an immutable version (`lsflow.core.pipeline.versions`)
    and `out_root/<FORMAT>` is a link to the newest. `file_names` names the images when this pass is
    one shard of a project (`lsflow.core.pipeline.shards`): names unique across every shard.
    """
    out_root.mkdir(parents=True, exist_ok=True)
    staging = out_root / f".staging-{uuid.uuid4().hex[:12]}"
    builds: list[FormatBuild] = []
    finished = False
    # What the last build of these datasets replaced goes while this one is made (the disk works meanwhile).
    trash = reuse_dir / TRASH_DIR if reuse_dir is not None else None
    cleaner = ThreadPoolExecutor(1) if trash is not None else None
    cleaning = cleaner.submit(empty_trash, trash) if cleaner is not None and trash is not None else None
    try:
        for name in formats:
            builds.append(FormatBuild(name, staging, out_root, context, policy, reuse_dir))
        with _fewer_collections():
            export_pass = Pass(builds, context, policy, workers if can_fork() else 1)
            if file_names is not None:
                export_pass.file_names = file_names
            export_pass.run(tasks)
        results = {}
        for build in builds:
            results[build.name] = build.publish(trash, versioning)
        finished = True
        return results
    finally:
        if not finished:
            for build in builds:
                build.abandon()
        remove_tree(staging)
        if cleaner is not None:
            cleaner.shutdown()  # waits: nothing of the last build outlives this one
            assert cleaning is not None  # submitted with the cleaner
            cleaning.result()



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

