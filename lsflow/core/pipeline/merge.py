"""Shards' outputs joined into one dataset per format, equal file by file to one pass over every task.

A per-task format's dataset is its tasks' own files, its streams (each task's records appended in task
order: COCO's images and annotations, the CSV rows, JSON_MIN's records, the drop log) and what the
writer's `close` assembles from the streams once every task is in (COCO's `result.json` with its
annotations numbered 1…n, the CSV table with the union of every row's columns, YOLO's `data.yaml`).
Shards hold consecutive id ranges in order, so the merge:

- hard-links every shard's task files (listed in the shard's reuse index) into one folder;
- appends each stream's records shard after shard — a shard's stream file without its header and
  footer, the stream's separator between two shards' records — which is the stream one pass writes;
- adds up the shards' accounting, task by task from their indexes, so the report (its reasons in the
  order they first occurred too) is one pass's;
- runs the writer's `close` over the joined streams, with the newest task change as the dataset date,
  then publishes the folder as the pipeline does (atomically, or as a new version).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import BinaryIO

import pyarrow.parquet as pq

from lsflow.core.formats.accounting import TaskAccount, TaskSelection
from lsflow.core.formats.base import ExportContext
from lsflow.core.incremental.reuse import INDEX_FILE
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.pipeline.build import FileLink, FormatBuild, FormatResult, Versioning, link_files
from lsflow.core.pipeline.publish import remove_tree

OUT_DIR = "out"  # a shard folder's output (`lsflow.core.pipeline.shards`)
REUSE_DIR = "reuse"  # and its reuse index with the working streams
_ACCOUNT_COLUMNS = ["exported", "skipped", "regions_in", "written", "clipped", "dropped", "images_skipped"]


class ShardDamaged(RuntimeError):
    """A shard's output is not what its index says (a file gone): the shard must be built again."""


def merge_shards(formats: list[str], shard_dirs: list[Path], out_root: Path, context: ExportContext,
                 policy: AnnotationPolicy, dataset_date: str, versioning: Versioning | None) -> dict[str, FormatResult]:
    """Each format of the shards in `shard_dirs` (in task-id order) joined and published as
    `out_root/<FORMAT>`. Nothing is published unless every format merged."""
    out_root.mkdir(parents=True, exist_ok=True)
    staging = out_root / f".staging-{uuid.uuid4().hex[:12]}"
    builds: list[FormatBuild] = []
    finished = False
    try:
        for name in formats:
            build = FormatBuild(name, staging, out_root, context, policy, reuse_dir=None)
            builds.append(build)
            sources: list[BinaryIO] = []
            try:
                for shard_dir in shard_dirs:
                    _append_shard(build, shard_dir / OUT_DIR / name, shard_dir / REUSE_DIR / name, sources)
                build.close_streams()  # copies what is still pending out of the sources
            finally:
                for source in sources:
                    source.close()
            build.writer.dataset_date = dataset_date
            build.writer.close()
            build.finish()
        results = {build.name: build.publish(None, versioning) for build in builds}
        finished = True
        return results
    finally:
        if not finished:
            for build in builds:
                build.abandon()
        remove_tree(staging)


def _append_shard(build: FormatBuild, shard_out: Path, shard_reuse: Path, sources: list[BinaryIO]) -> None:
    """One shard's share of a format, after the shards before it."""
    index = shard_reuse / INDEX_FILE
    if not index.is_file():
        raise ShardDamaged(f"{build.name}: shard {shard_out.parent.parent.name} has no index ({index})")
    for stream, spec in build.streams.items():
        path = (shard_reuse if spec.temporary else shard_out) / spec.file
        source = open(path, "rb")
        sources.append(source)  # read when the sink copies the records: at the next stream write or the close
        size = path.stat().st_size
        body = size - len(spec.header) - len(spec.footer)
        if body < 0:
            raise ShardDamaged(f"{build.name}: {path} is shorter than its stream's header and footer")
        build.sinks[stream].copy(source, (len(spec.header), body))
    parquet = pq.ParquetFile(index, pre_buffer=False)
    # 4 096 rows: a batch becomes Python lists (its files and accounts); 16 384 held ~35 MB more.
    for batch in parquet.iter_batches(batch_size=4096, columns=["files", *_ACCOUNT_COLUMNS]):
        files, exported, skipped, regions_in, written, clipped, dropped, images = (
            column.to_pylist() for column in batch.columns)
        links = []
        for task, task_files in enumerate(files):
            for relative in task_files:
                links.append(FileLink(task, f"{shard_out}/{relative}", f"{build.out_dir}/{relative}"))
            build.report.add_task(TaskAccount(TaskSelection(exported[task], tuple(skipped[task]), regions_in[task]),
                                              tuple(written[task]), clipped[task], tuple(dropped[task]),
                                              tuple(images[task])))
        if failed := link_files(links):
            missing = next(link.published for link in links if link.task in failed)
            raise ShardDamaged(f"{build.name}: shard {shard_out.parent.parent.name} lacks files of "
                               f"{len(failed)} task(s) its index lists, e.g. {missing}")
