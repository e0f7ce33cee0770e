"""Building datasets: formats → applicability → media → one export pass → published folders.

The one sequence behind `lsflow convert` (tasks from an export file), `lsflow export` and the
Dagster `datasets` asset (tasks from the project's store).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path

import pyarrow as pa

from lsflow.core.formats import writer_class
from lsflow.core.formats.base import CheckOutcome, ExportContext
from lsflow.core.incremental.reuse import code_digest
from lsflow.core.incremental.store import iter_store_entries, iter_store_tasks, read_manifest
from lsflow.core.model.entries import TaskEntry
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import Task
from lsflow.core.pipeline.build import FormatResult, Versioning
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.core.pipeline.parallel import usable_cores
from lsflow.core.pipeline.publish import remove_tree
from lsflow.core.pipeline.shards import (
    SHARD_SIZE,
    Shard,
    ShardPlan,
    build_shard,
    cached_store_plan,
    export_sharded,
    shard_is_current,
    shardable,
    store_shard_entries,
)
from lsflow.project.card import write_card
from lsflow.project.layout import ProjectLayout
from lsflow.project.lock import project_lock
from lsflow.project.object_store import ObjectStoreOutput, RemotePublish, publish_remote
from lsflow.project.snapshot import snapshot_label_config
from lsflow.project.versions import KEEP_VERSIONS, build_facts, describer, lineage_file, retain
from lsflow.sources.media import MediaOutcome, MediaResolver, media_keys, media_references


@dataclass(frozen=True)
class DatasetOptions:
    """How tasks become datasets, beside which formats."""

    policy: AnnotationPolicy = AnnotationPolicy()
    options: dict[str, str] | None = None  # writer options by name (`csv_header=false`)
    workers: int | None = None  # processes writing tasks; None: one a usable core
    # A format the label config cannot fill (YOLO for a text project) is written anyway, every region
    # reported as dropped (the CLI: the user asked for it), or left out (Dagster skips its asset).
    write_inapplicable: bool = True
    on_not_applicable: Callable[[str, str], None] | None = None  # (format, reason), before anything is written
    # Fetch every task's media first, concurrently: None decides by the formats (any that reads media).
    prefetch_media: bool | None = None
    on_media_resolved: Callable[[MediaOutcome], None] | None = None
    # Wraps the task stream (a progress bar).
    progress: Callable[[Iterator[TaskEntry]], Iterable[TaskEntry]] | None = None
    # Project builds: the versions kept per format besides pinned ones (`lsflow.project.versions`).
    keep_versions: int = KEEP_VERSIONS
    label_studio_url: str | None = None  # named in each version's manifest (never a token)
    # Project builds of more tasks than this are built in shards of this many task ids
    # (`lsflow.core.pipeline.shards`); None: never.
    shard_size: int | None = SHARD_SIZE
    on_shard: Callable[[Shard], None] | None = None  # after each shard's pass (progress)
    # Project builds: each format's newest version also published there (`lsflow.project.object_store`).
    object_store: ObjectStoreOutput | None = None


@dataclass(frozen=True)
class Sharding:
    """How a project build is split: the plan, where the shards live, and a shard's tasks."""

    plan: ShardPlan
    root: Path
    entries: Callable[[Shard], Iterable[TaskEntry]]

    def stamps(self, context: ExportContext, policy: AnnotationPolicy) -> Callable[[Shard], str]:
        """A shard's stamp: a digest of everything its output depends on besides its formats — lsflow's
        code (as the reuse index's fingerprint: a shard is never kept by other code than its tasks'
        reused outputs would be), its tasks (ids and content hashes), the plan's size and the names it
        fixed in the shard, the label config and what was made of it, writer options and the policy."""
        common = [code_digest(), self.plan.size, repr(context.label_config), context.classes.names_by_id,
                  context.keypoint_names, context.image_key, context.project_id, sorted(context.options.items()),
                  str(policy)]

        def stamp(shard: Shard) -> str:
            renamed = sorted((task_id, name) for task_id, name in self.plan.renamed.items()
                             if shard.first <= task_id < shard.end)
            return hashlib.sha256(json.dumps([*common, shard.digest, renamed], default=str).encode()).hexdigest()

        return stamp


@dataclass(frozen=True)
class BuiltDatasets:
    results: dict[str, FormatResult]  # by format, for the formats written
    context: ExportContext  # what the checks read the datasets back with
    not_applicable: dict[str, str]  # format → why the label config cannot fill it
    remote: dict[str, RemotePublish] = field(default_factory=dict)  # by format, with an object-store output


def write_datasets(tasks: Callable[[], Iterable[Task]], entries: Callable[[str | None], Iterator[TaskEntry]],
                   formats: list[str], out_root: Path, config: LabelConfig | None, media: MediaResolver | None,
                   settings: DatasetOptions, project_id: str | None = None,
                   reuse_dir: Path | None = None, versioning: Versioning | None = None,
                   sharding: Sharding | None = None) -> BuiltDatasets:
    """`tasks` reads the tasks as the model (class discovery, media references); `entries(image_key)` as
    the pass takes them. Every format is published under `out_root/<FORMAT>/` atomically. With
    `sharding`, the formats written task by task are built shard by shard and merged, the others in
    one pass."""
    chosen, not_applicable = _applicable(formats, config, settings)
    prefetch = settings.prefetch_media
    if prefetch is None:
        prefetch = any(writer_class(name).reads_media for name in chosen)
    if media is not None and prefetch:
        media.prefetch(media_references(tasks(), media_keys(config)), on_resolved=settings.on_media_resolved)
    context = replace(export_context(config, tasks, project_id, media=media), options=settings.options or {})
    workers = settings.workers or usable_cores()
    sharded = [name for name in chosen if shardable(name)] if sharding is not None else []
    whole = [name for name in chosen if name not in sharded]
    results = {}
    if sharding is not None and sharded:
        results.update(export_sharded(sharding.entries, sharded, out_root, sharding.root, context, sharding.plan,
                                      settings.policy, workers, versioning, on_shard=settings.on_shard,
                                      stamp=sharding.stamps(context, settings.policy)))
    if whole:
        stream = entries(context.image_key)
        results.update(export_datasets(settings.progress(stream) if settings.progress else stream, whole, out_root,
                                       context, settings.policy, workers=workers, reuse_dir=reuse_dir,
                                       versioning=versioning))
    return BuiltDatasets({name: results[name] for name in chosen if name in results}, context, not_applicable)


def _applicable(formats: list[str], config: LabelConfig | None,
                settings: DatasetOptions) -> tuple[list[str], dict[str, str]]:
    """The formats to write, and why each the label config cannot fill cannot (reported as it is found)."""
    not_applicable = {}
    for name in formats:
        if reason := writer_class(name).not_applicable(config):
            not_applicable[name] = reason
            if settings.on_not_applicable is not None:
                settings.on_not_applicable(name, reason)
    chosen = formats if settings.write_inapplicable else [name for name in formats if name not in not_applicable]
    return chosen, not_applicable


def build_datasets(layout: ProjectLayout, formats: list[str], media: MediaResolver | None = None,
                   settings: DatasetOptions = DatasetOptions()) -> BuiltDatasets:
    """Every format from one pass over the project's store, each published as a new immutable version
    when its content changed (`datasets/<FORMAT>` shows the newest), reusing the output of every task
    the last build of the same formats already wrote; then the versions beyond `keep_versions` go, and
    with `object_store` each format's newest version is published there too."""
    # Arrow's default pool (mimalloc) keeps what it freed: publishing five versions of a large project
    # (lineage, task tables, digests, cards) peaked ~50 MB higher on it than on the system allocator.
    pa.set_memory_pool(pa.system_memory_pool())
    with project_lock(layout), _lineage_path(layout) as lineage:
        facts = build_facts(layout, settings.policy, settings.options, settings.label_studio_url)
        # The lineage goes to a file, written once when first needed and read a batch at a time: a million
        # tasks' table (~230 bytes a task) is never in memory whole.
        tasks = cache(partial(lineage_file, layout.store_dir, settings.policy, lineage))
        versioning = Versioning(layout.versions_root, describer(layout.versions_root, facts, tasks, media, write_card))
        sharding = project_sharding(layout, settings.shard_size)
        if sharding is None:  # a project that shrank below the shard size: its shards are of no more use
            remove_tree(layout.shards_dir)
        built = write_datasets(lambda: iter_store_tasks(layout.store_dir),
                               lambda _: iter_store_entries(layout.store_dir), formats, layout.datasets_dir,
                               snapshot_label_config(layout), media, settings, project_id=layout.project_id,
                               reuse_dir=layout.reuse_dir, versioning=versioning, sharding=sharding)
        for name in built.results:
            retain(layout, name, settings.keep_versions)
        if settings.object_store is not None:
            for name, result in built.results.items():
                if result.version is not None:
                    built.remote[name] = publish_remote(layout, settings.object_store, name,
                                                        result.version.version_id, settings.keep_versions)
        return built


@contextmanager
def _lineage_path(layout: ProjectLayout) -> Iterator[Path]:
    """Where a build writes its lineage file, removed after it (a `.staging-` name: a killed build's is
    swept by the next holder of the project lock)."""
    path = layout.project_dir / ".staging-lineage.parquet"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


SHARD_PLAN_FILE = "shard_plan.json"  # in the project folder: the plan of the store as it is


def project_sharding(layout: ProjectLayout, shard_size: int | None) -> Sharding | None:
    """Shards for a store of more than `shard_size` tasks kept in id order (as Label Studio exports them);
    else None, and the project is built in one pass."""
    if shard_size is None or read_manifest(layout.store_dir).get("task_count", 0) <= shard_size:
        return None
    plan = cached_store_plan(layout.store_dir, shard_size, layout.project_dir / SHARD_PLAN_FILE)
    if plan is None or len(plan.shards) < 2:
        return None
    return Sharding(plan, layout.shards_dir, lambda shard: store_shard_entries(layout.store_dir, shard))


@dataclass(frozen=True)
class ShardWork:
    """The shards a project build would build (not yet built from the store as it is), and of which formats."""

    shards: list[Shard]
    formats: list[str]
    planned: int  # shards in the plan; 0: the project is built in one pass


def pending_shards(layout: ProjectLayout, formats: list[str], settings: DatasetOptions) -> ShardWork:
    """What `build_project_shard` should build before `build_datasets` merges: the shards of the
    formats written task by task (of `formats`, the ones the label config can fill unless
    `write_inapplicable`) that are not current."""
    sharding = project_sharding(layout, settings.shard_size)
    if sharding is None:
        return ShardWork([], [], 0)
    chosen, _ = _applicable(formats, snapshot_label_config(layout), replace(settings, on_not_applicable=None))
    sharded = [name for name in chosen if shardable(name)]
    if not sharded:
        return ShardWork([], [], len(sharding.plan.shards))
    stamp = sharding.stamps(project_context(layout, settings), settings.policy)
    pending = [shard for shard in sharding.plan.shards
               if not shard_is_current(sharding.root, shard, sharded, stamp(shard))]
    return ShardWork(pending, sharded, len(sharding.plan.shards))


def build_project_shard(layout: ProjectLayout, shard_name: str, formats: list[str], media: MediaResolver | None,
                        settings: DatasetOptions) -> Shard:
    """One shard of `formats` built ahead of the merge, beside other shards' builds (each owns its
    folder; the project lock is held shared, so no store update or dataset build runs meanwhile)."""
    # As in `build_datasets`: on Arrow's default pool (mimalloc), what a shard's reuse pass freed (windows of
    # five formats' indexes, the store's batches) stayed in the process, ~50 MB at 100 000 tasks.
    pa.set_memory_pool(pa.system_memory_pool())
    with project_lock(layout, shared=True):
        sharding = project_sharding(layout, settings.shard_size)
        shard = next((s for s in sharding.plan.shards if s.name == shard_name), None) if sharding else None
        if sharding is None or shard is None:
            raise ValueError(f"project {layout.project_id}: no shard {shard_name} in its plan (the store changed "
                             "since the shards were planned); run the build again")
        context = project_context(layout, settings, media)
        if media is not None and any(writer_class(name).reads_media for name in formats):
            shard_tasks = (entry.parsed() for entry in sharding.entries(shard))
            media.prefetch(media_references(shard_tasks, media_keys(context.label_config)),
                           on_resolved=settings.on_media_resolved)
        build_shard(sharding.entries(shard), formats, sharding.root, shard, context, sharding.plan, settings.policy,
                    settings.workers or usable_cores(), sharding.stamps(context, settings.policy)(shard))
        return shard


def project_context(layout: ProjectLayout, settings: DatasetOptions, media: MediaResolver | None = None) -> ExportContext:
    """The context `build_datasets` gives the pass (`write_datasets`), so a shard built ahead equals one built there."""
    context = export_context(snapshot_label_config(layout), lambda: iter_store_tasks(layout.store_dir),
                             layout.project_id, media=media)
    return replace(context, options=settings.options or {})


REGION_ACCOUNTING = "region_accounting"


def dataset_checks(result: FormatResult, context: ExportContext) -> list[CheckOutcome]:
    """The format's own checks of the published dataset, and the region accounting every format has."""
    report = result.report
    problems = [] if report["balanced"] else [
        f"{report['regions_in']} regions in, {report['regions_written']} written, {report['regions_dropped']} "
        f"dropped: {report['regions_in'] - report['regions_written'] - report['regions_dropped']} unaccounted"
    ]
    accounting = CheckOutcome(REGION_ACCOUNTING, report["balanced"], problems, {
        "regions_in": report["regions_in"], "regions_written": report["regions_written"],
        "regions_dropped": report["regions_dropped"],
    })
    return writer_class(result.format_name).check(result.path, context) + [accounting]


def check_is_blocking(format_name: str, check_name: str) -> bool:
    """A blocking check's failure makes the dataset unusable; the others warn (e.g. an empty val split)."""
    return check_name == REGION_ACCOUNTING or any(
        spec.blocking for spec in writer_class(format_name).checks if spec.name == check_name)
