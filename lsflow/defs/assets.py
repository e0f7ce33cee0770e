"""The asset graph of one project partition: snapshot → normalized store → one asset per format.

Assets only wire things together; what a format is and how it is checked lives in `lsflow.core`.
"""

from pathlib import Path

import dagster as dg

from lsflow.core.formats import WRITERS, writer_class
from lsflow.core.formats.base import CheckOutcome
from lsflow.project.layout import ProjectLayout, directory_digest
from lsflow.core.incremental.store import iter_store_tasks, read_manifest
from lsflow.defs.partitions import project_partitions
from lsflow.defs.resources import DatasetSettings, TaskSourceResource
from lsflow.sources.export_file import EXPORT_FILE
from lsflow.sources.label_studio import LabelStudioError
from lsflow.sources.media import MediaResolver, media_keys, media_references
from lsflow.sources.project_sync import build_datasets, snapshot_label_config, take_project_snapshot, update_store

REGION_ACCOUNTING = "region_accounting"
FORMAT_KEYS = {name: dg.AssetKey(f"dataset_{name.lower()}") for name in WRITERS}


def _layout(context: dg.AssetExecutionContext, settings: DatasetSettings) -> ProjectLayout:
    return ProjectLayout(Path(settings.output_root), context.partition_key)


FULL_EXPORT_TAG = "lsflow/full_export"


class SnapshotConfig(dg.Config):
    full: bool = False  # re-export every task even though the store holds an earlier snapshot


@dg.asset(
    partitions_def=project_partitions,
    group_name="label_studio",
    kinds={"json"},
    pool="label_studio",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
    description="The project's Label Studio JSON export (a snapshot) on disk: every task the first time, "
    "then only the tasks changed since the last one (run config `full: true` or run tag "
    f"`{FULL_EXPORT_TAG}=true` forces a full export).",
)
def label_studio_snapshot(
    context: dg.AssetExecutionContext, config: SnapshotConfig, task_source: TaskSourceResource,
    settings: DatasetSettings,
) -> dg.MaterializeResult:
    layout = _layout(context, settings)
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
            "path": dg.MetadataValue.path(str(layout.snapshot_dir / EXPORT_FILE)),
        },
        data_version=dg.DataVersion(record.md5) if record.md5 else None,
    )


@dg.asset(
    partitions_def=project_partitions,
    deps=[label_studio_snapshot],
    group_name="label_studio",
    kinds={"parquet"},
    description="Tasks, annotations and regions in pixel units (Parquet), keyed by task id, with a manifest "
    "of their origin; incremental snapshots are upserted into it.",
)
def normalized_tasks(context: dg.AssetExecutionContext, settings: DatasetSettings) -> dg.MaterializeResult:
    layout = _layout(context, settings)
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
            "labels": dg.MetadataValue.md(_label_table(summary.labels)),
            "path": dg.MetadataValue.path(str(layout.store_dir)),
        },
        data_version=dg.DataVersion(summary.content_digest),
    )


def _check_specs() -> list[dg.AssetCheckSpec]:
    specs = []
    for name, key in FORMAT_KEYS.items():
        for check in writer_class(name).checks:
            specs.append(dg.AssetCheckSpec(check.name, asset=key, description=check.description,
                                           blocking=check.blocking))
        specs.append(dg.AssetCheckSpec(
            REGION_ACCOUNTING, asset=key, blocking=True,
            description="regions in = regions written + regions dropped with a reason",
        ))
    return specs


@dg.multi_asset(
    specs=[
        # Skippable: a format the project's label config cannot fill (YOLO for a text project) is
        # not materialized for that partition, rather than written empty and failing its checks.
        dg.AssetSpec(key, deps=[normalized_tasks], group_name="datasets", description=WRITERS[name].description,
                     partitions_def=project_partitions, skippable=True)
        for name, key in FORMAT_KEYS.items()
    ],
    check_specs=_check_specs(),
    can_subset=True,
    partitions_def=project_partitions,
)
def datasets(context: dg.AssetExecutionContext, settings: DatasetSettings):
    """Every selected format from one pass over the normalized store."""
    layout = _layout(context, settings)
    config = snapshot_label_config(layout)
    formats = []
    for name, key in FORMAT_KEYS.items():
        if key in context.selected_asset_keys:
            reason = writer_class(name).not_applicable(config)
            if reason:
                context.log.info(f"{name} skipped for project {context.partition_key}: {reason}")
            else:
                formats.append(name)
    if not formats:
        return
    manifest = read_manifest(layout.store_dir)
    media = settings.media()
    if any(writer_class(name).reads_media for name in formats):
        _prefetch_media(context, media, layout)
    results, export = build_datasets(layout, formats, settings.policy(), media, settings.writer_options,
                                     workers=settings.workers)
    media_metadata = _media_metadata(context, media)
    for name in formats:
        result = results[name]
        key = FORMAT_KEYS[name]
        report = result.report
        outcomes = writer_class(name).check(result.path, export) + [_accounting_outcome(report)]
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "path": dg.MetadataValue.path(str(result.path)),
                "snapshot_id": manifest.get("snapshot_id") or "",
                "tasks": report["tasks"],
                "annotations_exported": report["annotations_exported"],
                "regions_written": report["regions_written"],
                "regions_clipped": report["regions_clipped"],
                "regions_dropped": report["regions_dropped"],
                "dropped_by_reason": dg.MetadataValue.json(report["dropped_by_reason"]),
                "labels": dg.MetadataValue.md(_label_table(report["labels"])),
                "annotation_policy": str(settings.policy()),
                "files_written": result.files.files_written,
                "files_unchanged": result.files.files_kept,
                "files_removed": result.files.files_removed,
                **media_metadata,
            },
            data_version=dg.DataVersion(directory_digest(result.path)),
            check_results=[
                _check_result(key, outcome, name)
                for outcome in outcomes
                if dg.AssetCheckKey(key, outcome.name) in context.selected_asset_check_keys
            ],
        )


def _prefetch_media(context: dg.AssetExecutionContext, media: MediaResolver, layout: ProjectLayout) -> None:
    """Every task's media, fetched concurrently before the one pass over the tasks needs it."""
    context.log.info(f"fetching task media from: {media.describe()}")
    references = media_references(iter_store_tasks(layout.store_dir), media_keys(snapshot_label_config(layout)))
    media.prefetch(references)


def _media_metadata(context: dg.AssetExecutionContext, media: MediaResolver) -> dict:
    """Counts of the task media this run looked up; each missing or refused kind logged with its reason."""
    report = media.report().as_dict()
    for problem in report["problems"]:
        context.log.warning(f"media {problem['status']} ({problem['references']}, e.g. {problem['example']}): "
                            f"{problem['reason']}")
    rows = "\n".join(f"| {p['status']} | {p['references']} | {_cell(p['reason'])} | `{_cell(p['example'])}` |"
                     for p in report["problems"])
    return {
        **{f"media_{count}": report[count] for count in ("resolved", "downloaded", "cached", "missing", "refused")},
        "media_problems": dg.MetadataValue.md(
            "| outcome | files | reason | example |\n|---|---|---|---|\n" + rows if rows else "none"
        ),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _accounting_outcome(report: dict) -> CheckOutcome:
    problems = [] if report["balanced"] else [
        f"{report['regions_in']} regions in, {report['regions_written']} written, "
        f"{report['regions_dropped']} dropped: {report['regions_in'] - report['regions_written'] - report['regions_dropped']} unaccounted"
    ]
    return CheckOutcome(REGION_ACCOUNTING, report["balanced"], problems, {
        "regions_in": report["regions_in"], "regions_written": report["regions_written"],
        "regions_dropped": report["regions_dropped"],
    })


def _check_result(key: dg.AssetKey, outcome: CheckOutcome, format_name: str) -> dg.AssetCheckResult:
    metadata = dict(outcome.metadata)
    if outcome.problems:
        metadata["problems"] = dg.MetadataValue.md("\n".join(f"- {p}" for p in outcome.problems))
    # A check that does not block (the dataset is usable, e.g. an empty val split) warns; one that
    # blocks is an error, and downstream assets do not run.
    blocking = outcome.name == REGION_ACCOUNTING or any(
        spec.blocking for spec in writer_class(format_name).checks if spec.name == outcome.name)
    return dg.AssetCheckResult(asset_key=key, check_name=outcome.name, passed=outcome.passed, metadata=metadata,
                               severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN)


def _label_table(labels: dict[str, int]) -> str:
    rows = "\n".join(f"| {name} | {count} |" for name, count in sorted(labels.items(), key=lambda kv: -kv[1]))
    return "| label | regions |\n|---|---|\n" + rows if rows else "no labelled regions"
