"""The asset graph of one project partition: snapshot → normalized store → one asset per format.

Assets only wire things together; each calls one function of the application layer (`lsflow.project`).
`build_assets` makes the graph of one lsflow instance (see `names.py`); the module-level assets are the
standalone code location's.
"""

from collections.abc import Sequence
from dataclasses import replace

import dagster as dg

from lsflow.core.formats import WRITERS, writer_class
from lsflow.core.incremental.store import read_manifest
from lsflow.defs.agreement import build_annotator_agreement
from lsflow.defs.metadata import check_result, label_table, media_metadata, version_metadata
from lsflow.defs.names import STANDALONE, Names
from lsflow.defs.partitions import project_partitions
from lsflow.defs.resources import DatasetSettings, TaskSourceResource
from lsflow.defs.review import build_prediction_review
from lsflow.defs.shards import build_dataset_shards, shard_options
from lsflow.project.datasets import REGION_ACCOUNTING, build_datasets, dataset_checks
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.label_studio import LabelStudioError

FULL_EXPORT_TAG = "lsflow/full_export"
# Snapshots of every instance share one pool: a Label Studio server serves one export at a time well.
LABEL_STUDIO_POOL = "label_studio"


def _layout(context: dg.AssetExecutionContext, settings: DatasetSettings) -> ProjectLayout:
    return ProjectLayout(settings.layout_root(), context.partition_key)


class SnapshotConfig(dg.Config):
    full: bool = False  # re-export every task even though the store holds an earlier snapshot


def build_assets(names: Names, partitions_def: dg.PartitionsDefinition,
                 formats: Sequence[str] | None = None) -> list[dg.AssetsDefinition]:
    """Snapshot, normalized store, a large project's shards, the datasets multi-asset (only `formats`,
    unset: every format), the prediction review and the annotator agreement."""
    for name in formats or ():
        writer_class(name)  # an unknown format name fails here, naming the known ones
    format_keys = names.format_keys(formats)

    @dg.asset(
        key=names.key("label_studio_snapshot"),
        partitions_def=partitions_def,
        group_name=names.group("label_studio"),
        kinds={"json"},
        pool=LABEL_STUDIO_POOL,
        required_resource_keys={names.task_source, names.settings},
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
        description="The project's Label Studio JSON export (a snapshot) on disk: every task the first time, "
        "then only the tasks changed since the last one (run config `full: true` or run tag "
        f"`{FULL_EXPORT_TAG}=true` forces a full export).",
    )
    def label_studio_snapshot(context: dg.AssetExecutionContext, config: SnapshotConfig) -> dg.MaterializeResult:
        task_source: TaskSourceResource = getattr(context.resources, names.task_source)
        layout = _layout(context, getattr(context.resources, names.settings))
        full = config.full or context.run.tags.get(FULL_EXPORT_TAG, "").lower() == "true"
        try:
            record = take_project_snapshot(task_source.open(), layout, full=full)
        except LabelStudioError as error:
            # A refused token or a missing project does not go away on retry: fail the run at once.
            raise dg.Failure(str(error), allow_retries=error.retryable) from None
        return dg.MaterializeResult(
            metadata={
                "snapshot_id": record.snapshot_id or "",
                "md5": record.md5 or "",
                "task_count": record.task_count,
                "mode": record.mode,
                "changed_since": record.changed_since or "",
                "deleted_tasks": len(record.deleted_task_ids),
                "source": record.source,
                **record.counts,  # the source's own: target storage's objects listed, read, skipped, ...
                "path": dg.MetadataValue.path(str(layout.snapshot_export)),
            },
            data_version=dg.DataVersion(record.md5) if record.md5 else None,
        )

    @dg.asset(
        key=names.key("normalized_tasks"),
        partitions_def=partitions_def,
        deps=[label_studio_snapshot],
        group_name=names.group("label_studio"),
        kinds={"parquet"},
        required_resource_keys={names.settings},
        description="Tasks, annotations and regions in pixel units (Parquet), keyed by task id, with a manifest "
        "of their origin; incremental snapshots are upserted into it.",
    )
    def normalized_tasks(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        layout = _layout(context, getattr(context.resources, names.settings))
        summary, changes, record = update_store(layout)
        return dg.MaterializeResult(
            metadata={
                "tasks": summary.tasks,
                "annotations": summary.annotations,
                "predictions": summary.predictions,
                "regions": summary.regions,
                "mode": record.mode,
                "new_tasks": changes.new,
                "changed_tasks": changes.changed,
                "unchanged_tasks": changes.unchanged,  # fetched again (inside the overlap), found unchanged
                "deleted_tasks": changes.deleted,
                "watermark": summary.max_updated_at or "",
                "snapshot_id": record.snapshot_id or "",
                "labels": label_table(summary.labels),
                "path": dg.MetadataValue.path(str(layout.store_dir)),
            },
            data_version=dg.DataVersion(summary.content_digest),
        )

    dataset_shards = build_dataset_shards(names, partitions_def, normalized_tasks, format_keys)

    @dg.multi_asset(
        name=names.op("datasets"),
        specs=[
            # Skippable: a format the project's label config cannot fill (YOLO for a text project) is
            # not materialized for that partition, rather than written empty and failing its checks.
            dg.AssetSpec(key, deps=[normalized_tasks, dataset_shards], group_name=names.group("datasets"),
                         description=WRITERS[name].description, partitions_def=partitions_def, skippable=True)
            for name, key in format_keys.items()
        ],
        check_specs=_check_specs(format_keys),
        can_subset=True,
        partitions_def=partitions_def,
        required_resource_keys={names.task_source, names.settings},
    )
    def datasets(context: dg.AssetExecutionContext):
        """Every selected format from one pass over the normalized store."""
        settings: DatasetSettings = getattr(context.resources, names.settings)
        task_source: TaskSourceResource = getattr(context.resources, names.task_source)
        yield from _build_formats(context, settings, task_source, format_keys)

    prediction_review = build_prediction_review(names, partitions_def, normalized_tasks)
    annotator_agreement = build_annotator_agreement(names, partitions_def, normalized_tasks)
    return [label_studio_snapshot, normalized_tasks, dataset_shards, datasets, prediction_review, annotator_agreement]


def _check_specs(format_keys: dict[str, dg.AssetKey]) -> list[dg.AssetCheckSpec]:
    specs = []
    for name, key in format_keys.items():
        for check in writer_class(name).checks:
            specs.append(dg.AssetCheckSpec(check.name, asset=key, description=check.description,
                                           blocking=check.blocking))
        specs.append(dg.AssetCheckSpec(
            REGION_ACCOUNTING, asset=key, blocking=True,
            description="regions in = regions written + regions dropped with a reason",
        ))
    return specs


def _build_formats(context: dg.AssetExecutionContext, settings: DatasetSettings, task_source: TaskSourceResource,
                   format_keys: dict[str, dg.AssetKey]):
    layout = _layout(context, settings)
    selected = [name for name, key in format_keys.items() if key in context.selected_asset_keys]
    media = settings.media()
    context.log.info(f"task media from: {media.describe()}")

    def skipped(name: str, reason: str) -> None:
        context.log.info(f"{name} skipped for project {context.partition_key}: {reason}")

    with media:
        # The shard steps' options, so that the shards they built are current here (their stamps agree).
        built = build_datasets(layout, selected, media, replace(
            shard_options(settings), on_not_applicable=skipped, keep_versions=settings.keep_versions,
            label_studio_url=task_source.server_url(), object_store=settings.object_store()))
    snapshot_id = read_manifest(layout.store_dir).get("snapshot_id") or ""
    media_counts = media_metadata(context.log, media)
    for name, result in built.results.items():
        key = format_keys[name]
        report = result.report
        version = result.version
        assert version is not None  # a project build publishes versions
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "path": dg.MetadataValue.path(str(result.path)),
                **version_metadata(version),
                "snapshot_id": snapshot_id,
                "tasks": report["tasks"],
                "annotations_exported": report["annotations_exported"],
                "regions_written": report["regions_written"],
                "regions_clipped": report["regions_clipped"],
                "regions_dropped": report["regions_dropped"],
                "dropped_by_reason": dg.MetadataValue.json(report["dropped_by_reason"]),
                "labels": label_table(report["labels"]),
                "annotation_policy": str(settings.policy()),
                "files_written": result.files.files_written,
                "files_unchanged": result.files.files_kept,
                "files_removed": result.files.files_removed,
                **({"published_to": f"{settings.output_root.rstrip('/')}/project-{context.partition_key}/"
                                    f"versions/{name}/{version.version_id}/"} if name in built.remote else {}),
                **media_counts,
            },
            data_version=dg.DataVersion(version.version_id),
            check_results=[
                check_result(key, outcome, name, context.partition_key)
                for outcome in dataset_checks(result, built.context)
                if dg.AssetCheckKey(key, outcome.name) in context.selected_asset_check_keys
            ],
        )


FORMAT_KEYS = STANDALONE.format_keys()
label_studio_snapshot, normalized_tasks, dataset_shards, datasets, prediction_review, annotator_agreement = (
    build_assets(STANDALONE, project_partitions))
