"""The asset graph of one project partition: snapshot → normalized store → one asset per format.

Assets only wire things together; what a format is and how it is checked lives in `lsflow.core`.
"""

import shutil
from pathlib import Path

import dagster as dg
import orjson

from lsflow import __version__
from lsflow.core.export import export_context, export_datasets, publish_directory
from lsflow.core.formats import WRITERS, writer_class
from lsflow.core.formats.base import CheckOutcome, ExportContext
from lsflow.core.label_config import LabelConfig
from lsflow.core.layout import ProjectLayout, directory_digest
from lsflow.core.store import iter_store_tasks, read_manifest, write_store
from lsflow.defs.partitions import project_partitions
from lsflow.defs.resources import DatasetSettings, TaskSourceResource
from lsflow.sources.export_file import EXPORT_FILE, LABEL_CONFIG_FILE, count_tasks

SNAPSHOT_FILE = "snapshot.json"
REGION_ACCOUNTING = "region_accounting"
FORMAT_KEYS = {name: dg.AssetKey(f"dataset_{name.lower()}") for name in WRITERS}


def _layout(context: dg.AssetExecutionContext, settings: DatasetSettings) -> ProjectLayout:
    return ProjectLayout(Path(settings.output_root), context.partition_key)


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


@dg.asset(
    partitions_def=project_partitions,
    group_name="label_studio",
    kinds={"json"},
    pool="label_studio",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
    description="The project's Label Studio JSON export (a snapshot), downloaded whole to disk.",
)
def label_studio_snapshot(
    context: dg.AssetExecutionContext, task_source: TaskSourceResource, settings: DatasetSettings
) -> dg.MaterializeResult:
    layout = _layout(context, settings)
    staging = _fresh(layout.staging_dir("snapshot"))
    source = task_source.open()
    snapshot = source.take_snapshot(context.partition_key, staging)
    task_count = count_tasks(snapshot.export_path)
    record = {"project_id": snapshot.project_id, "snapshot_id": snapshot.snapshot_id, "md5": snapshot.md5,
              "source": snapshot.source, "task_count": task_count}
    (staging / SNAPSHOT_FILE).write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    publish_directory(staging, layout.snapshot_dir)
    return dg.MaterializeResult(
        metadata={
            "snapshot_id": snapshot.snapshot_id or "",
            "md5": snapshot.md5 or "",
            "task_count": task_count,
            "source": snapshot.source,
            "label_config": bool(snapshot.label_config),
            "path": dg.MetadataValue.path(str(layout.snapshot_dir / EXPORT_FILE)),
        },
        data_version=dg.DataVersion(snapshot.md5) if snapshot.md5 else None,
    )


def _label_config(layout: ProjectLayout) -> LabelConfig | None:
    path = layout.snapshot_dir / LABEL_CONFIG_FILE
    return LabelConfig.from_file(path) if path.is_file() else None


@dg.asset(
    partitions_def=project_partitions,
    deps=[label_studio_snapshot],
    group_name="label_studio",
    kinds={"parquet"},
    description="Tasks, annotations and regions in pixel units (Parquet) with a manifest of their origin.",
)
def normalized_tasks(context: dg.AssetExecutionContext, settings: DatasetSettings) -> dg.MaterializeResult:
    from lsflow.sources.export_file import iter_export_tasks

    layout = _layout(context, settings)
    snapshot = orjson.loads((layout.snapshot_dir / SNAPSHOT_FILE).read_bytes())
    config = _label_config(layout)
    staging = _fresh(layout.staging_dir("store"))
    summary = write_store(
        iter_export_tasks(layout.snapshot_dir / EXPORT_FILE),
        staging,
        image_key=(config.data_key("image") if config else None) or "image",
        manifest={**snapshot, "lsflow_version": __version__},
    )
    publish_directory(staging, layout.store_dir)
    return dg.MaterializeResult(
        metadata={
            "tasks": summary.tasks,
            "annotations": summary.annotations,
            "predictions": summary.predictions,
            "regions": summary.regions,
            "max_updated_at": summary.max_updated_at or "",
            "snapshot_id": snapshot.get("snapshot_id") or "",
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
        dg.AssetSpec(key, deps=[normalized_tasks], group_name="datasets", description=WRITERS[name].description,
                     partitions_def=project_partitions)
        for name, key in FORMAT_KEYS.items()
    ],
    check_specs=_check_specs(),
    can_subset=True,
    partitions_def=project_partitions,
)
def datasets(context: dg.AssetExecutionContext, settings: DatasetSettings):
    """Every selected format from one pass over the normalized store."""
    layout = _layout(context, settings)
    formats = [name for name, key in FORMAT_KEYS.items() if key in context.selected_asset_keys]
    manifest = read_manifest(layout.store_dir)
    export = export_context(_label_config(layout), lambda: iter_store_tasks(layout.store_dir),
                            context.partition_key, media=settings.media())
    results = export_datasets(iter_store_tasks(layout.store_dir), formats, layout.datasets_dir, export,
                              policy=settings.policy())
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
            },
            data_version=dg.DataVersion(directory_digest(result.path)),
            check_results=[
                _check_result(key, outcome, export)
                for outcome in outcomes
                if dg.AssetCheckKey(key, outcome.name) in context.selected_asset_check_keys
            ],
        )


def _accounting_outcome(report: dict) -> CheckOutcome:
    problems = [] if report["balanced"] else [
        f"{report['regions_in']} regions in, {report['regions_written']} written, "
        f"{report['regions_dropped']} dropped: {report['regions_in'] - report['regions_written'] - report['regions_dropped']} unaccounted"
    ]
    return CheckOutcome(REGION_ACCOUNTING, report["balanced"], problems, {
        "regions_in": report["regions_in"], "regions_written": report["regions_written"],
        "regions_dropped": report["regions_dropped"],
    })


def _check_result(key: dg.AssetKey, outcome: CheckOutcome, export: ExportContext) -> dg.AssetCheckResult:
    metadata = dict(outcome.metadata)
    if outcome.problems:
        metadata["problems"] = dg.MetadataValue.md("\n".join(f"- {p}" for p in outcome.problems))
    return dg.AssetCheckResult(asset_key=key, check_name=outcome.name, passed=outcome.passed, metadata=metadata,
                               severity=dg.AssetCheckSeverity.ERROR)


def _label_table(labels: dict[str, int]) -> str:
    rows = "\n".join(f"| {name} | {count} |" for name, count in sorted(labels.items(), key=lambda kv: -kv[1]))
    return "| label | regions |\n|---|---|\n" + rows if rows else "no labelled regions"
