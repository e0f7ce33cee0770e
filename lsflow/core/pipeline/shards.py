"""A large project built in shards: bounded task-id ranges, each exported by its own pass, then merged.

Shard k holds the tasks whose id lies in [k·size, (k+1)·size). Label Studio's task ids only grow, so a
shard's bounds never move as the project grows: new tasks land in the last shards, an edit or a
deletion touches only the shard holding that id, and a shard never holds more than `size` tasks. Only
shards holding tasks exist (at most tasks/size + 1 of them for a project's dense ids).

Each shard is an ordinary export pass (`lsflow.core.pipeline.export`) into its own folder, with its own
reuse index, so an incremental build reuses per shard what did not change and no process ever holds
more than one shard's index. Image file names are fixed for the whole project before any shard is
built (`plan_shards`: the same collision-free names one pass over every task gives), so a shard's
output does not depend on the others. `lsflow.core.pipeline.merge` then joins the shards' outputs per
format into one dataset equal, file by file, to a single pass's.

    <shards root>/<first>-<end>/out/<FORMAT>/     a shard's output: task files, stream files, report
    <shards root>/<first>-<end>/reuse/<FORMAT>/   its reuse index and working streams

Only formats whose task output depends on the task alone (`DatasetWriter.per_task`) can be sharded;
the others number or batch across tasks, or copy media, and are built in one pass.

A shard may be built ahead, on its own (each its own Dagster step, `lsflow.defs.shards`): a build
given a `stamp` — a digest of everything its output depends on, its tasks' content hashes among
them — records it with the formats it built in `<shard>/built.json`, and a later build with the same
stamp and formats skips it. So after an edit, only the shard holding the edited task is built again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from lsflow.core.formats import writer_class
from lsflow.core.formats.base import ExportContext
from lsflow.core.incremental.store import MANIFEST_FILE
from lsflow.core.model.entries import TaskEntry
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import ImageSize
from lsflow.core.pipeline.build import FormatResult, Versioning
from lsflow.core.pipeline.export import export_datasets
from lsflow.core.pipeline.merge import OUT_DIR, REUSE_DIR, merge_shards
from lsflow.core.pipeline.naming import TaskFileNames, plain_name
from lsflow.core.pipeline.publish import remove_leftovers, remove_tree

SHARD_SIZE = 100_000  # tasks (task-id values) per shard
STAMP_FILE = "built.json"  # what a shard's last finished build was made from, and of which formats


@dataclass(frozen=True, slots=True)
class Shard:
    first: int  # the smallest task id it may hold
    end: int  # one past the largest
    tasks: int  # how many it holds now
    digest: str = ""  # of its tasks' ids and content hashes: changes exactly when one of its tasks does

    @property
    def name(self) -> str:
        return f"{self.first}-{self.end}"


@dataclass
class ShardPlan:
    size: int
    shards: list[Shard]
    # The tasks whose image name is not their plain name (two tasks shared a stem): few.
    renamed: dict[int, str] = field(default_factory=dict)
    dataset_date: str = ""  # the newest task change: what one pass would write as the dataset's date

    @property
    def tasks(self) -> int:
        return sum(shard.tasks for shard in self.shards)


def plan_shards(tasks: Iterable[tuple[int, str | None, str | None, str | None]],
                size: int = SHARD_SIZE) -> ShardPlan | None:
    """The shards of tasks given as (id, image reference, updated_at, content hash) in the order a pass
    reads them; None when that order is not by ascending id (the merged dataset could not equal one pass's)."""
    if size < 1:
        raise ValueError(f"shard size {size}: must be at least 1")
    names = TaskFileNames()
    counts: dict[int, int] = {}
    digests: dict[int, Any] = {}
    renamed: dict[int, str] = {}
    newest, last = "", None
    for task_id, image_ref, updated_at, content_hash in tasks:
        if last is not None and task_id <= last:
            return None
        last = task_id
        counts[task_id // size] = counts.get(task_id // size, 0) + 1
        digests.setdefault(task_id // size, hashlib.sha256()).update(f"{task_id}:{content_hash};".encode())
        name = names.name_for(task_id, image_ref)
        if name != plain_name(task_id, image_ref):
            renamed[task_id] = name
        if updated_at and updated_at > newest:
            newest = updated_at
    shards = [Shard(k * size, (k + 1) * size, count, digests[k].hexdigest()) for k, count in sorted(counts.items())]
    return ShardPlan(size, shards, renamed, newest)


def store_plan(store_dir: Path, size: int = SHARD_SIZE) -> ShardPlan | None:
    """The shard plan of a project's normalized store (four narrow columns read, no task parsed).
    Without pyarrow's pre-buffering, which holds every row group's columns at once (a million tasks:
    297 MB against 137 MB), and in batches of 8 192 (65 536 took ~60 MB more)."""
    parquet = pq.ParquetFile(store_dir / "tasks.parquet", pre_buffer=False)

    def rows() -> Iterator[tuple[int, str | None, str | None, str | None]]:
        columns = ["task_id", "image_ref", "updated_at", "content_hash"]
        for batch in parquet.iter_batches(batch_size=8192, columns=columns):
            yield from zip(*(column.to_pylist() for column in batch.columns))

    return plan_shards(rows(), size)


def cached_store_plan(store_dir: Path, size: int, cache_file: Path) -> ShardPlan | None:
    """`store_plan`, kept in `cache_file` for the store as it is (keyed by its manifest, which every
    store update rewrites): a plan reads every task's row (~20 s at a million tasks), and the plan
    step, each shard's step and the merge each need it."""
    key = hashlib.sha256((store_dir / MANIFEST_FILE).read_bytes() + str(size).encode()).hexdigest()
    try:
        cached = json.loads(cache_file.read_text(encoding="utf-8"))
        if cached["key"] == key:
            plan = cached["plan"]
            return plan and ShardPlan(plan["size"], [Shard(*shard) for shard in plan["shards"]],
                                      {int(task_id): name for task_id, name in plan["renamed"].items()},
                                      plan["dataset_date"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: made again
    plan = store_plan(store_dir, size)
    kept = plan and {"size": plan.size, "renamed": plan.renamed, "dataset_date": plan.dataset_date,
                     "shards": [[shard.first, shard.end, shard.tasks, shard.digest] for shard in plan.shards]}
    partial = cache_file.with_name(f".{cache_file.name}.{uuid.uuid4().hex[:8]}")
    partial.write_text(json.dumps({"key": key, "plan": kept}), encoding="utf-8")
    partial.replace(cache_file)  # whole or not at all, whoever of the steps writes it last
    return plan


def store_shard_entries(store_dir: Path, shard: Shard) -> Iterator[TaskEntry]:
    """The store's tasks of one shard: only the row groups whose id range meets the shard's are read,
    a batch at a time (not pre-buffered: that would hold the shard's whole JSON)."""
    parquet = pq.ParquetFile(store_dir / "tasks.parquet", pre_buffer=False)
    id_column = parquet.schema_arrow.get_field_index("task_id")
    groups = []
    for group in range(parquet.metadata.num_row_groups):
        statistics = parquet.metadata.row_group(group).column(id_column).statistics
        if statistics is None or not statistics.has_min_max or (
                statistics.min < shard.end and statistics.max >= shard.first):
            groups.append(group)
    columns = ["task_id", "updated_at", "image_ref", "image_width", "image_height", "content_hash", "raw_json"]
    starts = [0]  # each row group's first row: a task's position in the whole store, for error messages
    for group in range(parquet.metadata.num_row_groups):
        starts.append(starts[-1] + parquet.metadata.row_group(group).num_rows)
    for group in groups:
        position = starts[group]
        for batch in parquet.iter_batches(batch_size=1000, row_groups=[group], columns=columns):
            for task_id, updated_at, image_ref, width, height, digest, raw in zip(*(c.to_pylist()
                                                                                     for c in batch.columns)):
                if shard.first <= task_id < shard.end:
                    size = ImageSize(width, height) if width and height else None
                    yield TaskEntry(task_id, updated_at, image_ref, size, raw=raw, content_hash=digest,
                                    position=position)
                position += 1


class FixedNames(TaskFileNames):
    """Image names fixed for the whole project by the plan: a shard's pass names its tasks as one pass
    over every task would, without seeing the other shards."""

    def __init__(self, renamed: dict[int, str]):
        super().__init__()
        self._renamed = renamed

    def name_for(self, task_id: int, image_ref: str | None) -> str:
        return self._renamed.get(task_id) or plain_name(task_id, image_ref)


def shardable(format_name: str) -> bool:
    return writer_class(format_name).per_task


def export_sharded(entries: Callable[[Shard], Iterable[TaskEntry]], formats: list[str], out_root: Path,
                   shards_root: Path, context: ExportContext, plan: ShardPlan,
                   policy: AnnotationPolicy = AnnotationPolicy(), workers: int = 1,
                   versioning: Versioning | None = None,
                   on_shard: Callable[[Shard], None] | None = None,
                   stamp: Callable[[Shard], str] | None = None) -> dict[str, FormatResult]:
    """Every shard of `plan` exported in turn (`entries(shard)`: its tasks) unless built ahead with `stamp`,
    then each format merged and published under `out_root/<FORMAT>` (as a version with `versioning`).
    Shards no longer in the plan go."""
    unshardable = [name for name in formats if not shardable(name)]
    if unshardable:
        raise ValueError(f"{', '.join(unshardable)}: not written task by task, cannot be built in shards")
    for shard in plan.shards:
        if stamp is not None and shard_is_current(shards_root, shard, formats, stamp(shard)):
            continue
        build_shard(entries(shard), formats, shards_root, shard, context, plan, policy, workers,
                    stamp(shard) if stamp is not None else None)
        if on_shard is not None:
            on_shard(shard)
    remove_stale_shards(shards_root, plan)
    return merge_shards(formats, [shards_root / shard.name for shard in plan.shards], out_root, context, policy,
                        plan.dataset_date, versioning)


def build_shard(entries: Iterable[TaskEntry], formats: list[str], shards_root: Path, shard: Shard,
                context: ExportContext, plan: ShardPlan, policy: AnnotationPolicy = AnnotationPolicy(),
                workers: int = 1, stamp: str | None = None) -> dict[str, FormatResult]:
    """One shard's pass: its output in `<shards root>/<shard>/out/`, reusing what its last build kept;
    with `stamp`, recorded once the pass finished. Only one build of a shard may run at a time."""
    folder = shards_root / shard.name
    (folder / STAMP_FILE).unlink(missing_ok=True)  # until this build finishes, the shard is not current
    _clear_shard_leftovers(folder)
    results = export_datasets(entries, formats, folder / OUT_DIR, context, policy, workers,
                              reuse_dir=folder / REUSE_DIR, file_names=FixedNames(plan.renamed))
    if stamp is not None:
        (folder / STAMP_FILE).write_text(json.dumps({"stamp": stamp, "formats": sorted(formats)}), encoding="utf-8")
    return results


def shard_is_current(shards_root: Path, shard: Shard, formats: list[str], stamp: str) -> bool:
    """Whether the shard's last finished build was made from `stamp` and wrote every one of `formats`."""
    try:
        built = json.loads((shards_root / shard.name / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return built.get("stamp") == stamp and set(formats) <= set(built.get("formats", ()))


def _clear_shard_leftovers(folder: Path) -> None:
    """Staging folders a killed build of this shard left (the project lock's sweep does not reach shards:
    shard builds run beside each other, each owning its folder)."""
    for place in (folder / OUT_DIR, folder / REUSE_DIR):
        remove_leftovers(place, lambda name: name.startswith((".staging-", ".retired-")))


def remove_stale_shards(shards_root: Path, plan: ShardPlan) -> None:
    """The folders of shards the plan no longer has (all their tasks deleted, or another shard size)."""
    wanted = {shard.name for shard in plan.shards}
    if shards_root.is_dir():
        for folder in shards_root.iterdir():
            if folder.name not in wanted:
                remove_tree(folder)
