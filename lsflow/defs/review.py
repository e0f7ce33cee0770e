"""The `prediction_review` asset of a project partition and its WARN check `newest_model_not_worse`.

The asset calls `lsflow.project.review.review_project` (the store's tasks → the project's `review/`) and
shows the review in the UI: a table with a row per model version, per version a markdown table of its
per-class scores, the report and its pictures as paths.
"""

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg

from lsflow.defs.names import Names
from lsflow.defs.resources import DatasetSettings
from lsflow.project.layout import ProjectLayout
from lsflow.project.review import REPORT_FILE, REVIEW_FILE, picture_names, review_project

NEWEST_NOT_WORSE = "newest_model_not_worse"

_COLUMNS = [  # (name, type): the overview table, one row per model version
    ("model_version", "string"), ("predictions", "int"), ("tasks_predicted", "int"), ("regions_predicted", "int"),
    ("tasks_annotated", "int"), ("from_predictions", "int"), ("unchanged", "int"), ("edited", "int"),
    ("moved", "int"), ("resized", "int"), ("reshaped", "int"), ("relabelled", "int"), ("value_changed", "int"),
    ("deleted", "int"), ("added", "int"), ("precision_50", "float"), ("recall_50", "float"), ("f1_50", "float"),
    ("map", "float"), ("ap50", "float"),
]


def build_prediction_review(names: Names, partitions_def: dg.PartitionsDefinition,
                            store: dg.AssetsDefinition) -> dg.AssetsDefinition:
    key = names.key("prediction_review")

    @dg.asset(
        key=key,
        partitions_def=partitions_def,
        deps=[store],
        group_name=names.group("review"),
        kinds={"json", "markdown"},
        required_resource_keys={names.settings},
        check_specs=[dg.AssetCheckSpec(
            NEWEST_NOT_WORSE, asset=key, blocking=False,
            description="The newest model version is not worse than the previous one on the annotated tasks both "
                        "predicted (box mAP and AP@0.5, detection and span F1, choice accuracy, WER)")],
        description="Per model version of the project's predictions: tasks and regions predicted; of the annotated "
                    "tasks, regions accepted unchanged, edited (moved, resized, relabelled, ...), deleted and added; "
                    "P/R/F1 per class at IoU 0.5, COCO mAP, confusion matrices, span scores, WER (review/).",
    )
    def prediction_review(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        settings: DatasetSettings = getattr(context.resources, names.settings)
        layout = ProjectLayout(settings.layout_root(), context.partition_key)
        result = review_project(layout)
        for version in result["model_versions"]:
            context.log.info(f"model version {version['model_version']}: {version['tasks_predicted']} tasks predicted, "
                             f"{version['lineage']['annotations_from_predictions']} annotations made from them")
        digest = hashlib.sha256((layout.review_dir / REVIEW_FILE).read_bytes()).hexdigest()
        return dg.MaterializeResult(
            metadata=review_metadata(result, layout.review_dir),
            data_version=dg.DataVersion(digest),
            check_results=[newest_not_worse(key, result, context.partition_key)],
        )

    return prediction_review


def review_metadata(result: dict[str, Any], folder: Path) -> dict[str, Any]:
    versions = result["model_versions"]
    metadata: dict[str, Any] = {
        "tasks": result["tasks"],
        "model_versions": dg.MetadataValue.table(
            records=[dg.TableRecord(_row(version)) for version in versions],
            schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in _COLUMNS])),
        "unlinked_annotations": result["unlinked_annotations"],
        "report": dg.MetadataValue.path(str(folder / REPORT_FILE)),
        "path": dg.MetadataValue.path(str(folder)),
    }
    for version in versions:
        metadata[f"classes_{version['model_version']}"] = dg.MetadataValue.md(_class_table(version))
    for file_name in picture_names(result).values():
        if (folder / file_name).is_file():
            metadata[f"picture_{Path(file_name).stem}"] = dg.MetadataValue.path(str(folder / file_name))
    return metadata


def _row(version: dict[str, Any]) -> dict[str, Any]:
    lineage, quality = version["lineage"], version["quality"]
    micro = (quality["detection"] or {}).get("micro") or {}
    coco = quality["coco"] or {}
    return {
        "model_version": version["model_version"], "predictions": version["predictions"],
        "tasks_predicted": version["tasks_predicted"], "regions_predicted": version["regions_predicted"],
        "tasks_annotated": version["tasks_annotated"], "from_predictions": lineage["annotations_from_predictions"],
        **{name: lineage[name] for name in ("unchanged", "edited", "moved", "resized", "reshaped", "relabelled",
                                            "value_changed", "deleted", "added")},
        "precision_50": micro.get("precision"), "recall_50": micro.get("recall"), "f1_50": micro.get("f1"),
        "map": coco.get("mAP"), "ap50": coco.get("AP50"),
    }


def _class_table(version: dict[str, Any]) -> str:
    quality = version["quality"]
    ap50 = {row["class"]: row["AP50"] for row in (quality["coco"] or {}).get("classes", [])}
    rows = []
    for source in ("detection", "spans"):
        for row in (quality[source] or {}).get("classes", []):
            ap = ap50.get(row["class"]) if row["kind"] == "box" else None
            rows.append(f"| {row['kind']} | {row['class']} | {row['tp']} | {row['fp']} | {row['fn']} | "
                        f"{_number(row['precision'])} | {_number(row['recall'])} | {_number(row['f1'])} | "
                        f"{_number(ap)} |")
    if not rows:
        return "no region classes compared"
    return ("| kind | class | TP | FP | FN | precision | recall | F1 | AP@0.5 |\n|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows))


def newest_not_worse(key: dg.AssetKey, result: dict[str, Any], partition: str) -> dg.AssetCheckResult:
    comparison = result["comparison"]
    metadata: dict[str, Any] = {"project": partition}
    if comparison is None:
        metadata["comparison"] = "fewer than two model versions"
        return dg.AssetCheckResult(asset_key=key, check_name=NEWEST_NOT_WORSE, passed=True, metadata=metadata,
                                   severity=dg.AssetCheckSeverity.WARN)
    metadata.update({"newest": comparison["newest"], "previous": comparison["previous"],
                     "tasks_compared": comparison["tasks"],
                     "worse_on": ", ".join(m["metric"] for m in comparison["metrics"] if m["worse"]) or "nothing",
                     "metrics": dg.MetadataValue.md(
                         "| metric | previous | newest | better | worse |\n|---|---|---|---|---|\n" + "\n".join(
                             f"| {m['metric']} | {_number(m['previous'])} | {_number(m['newest'])} | {m['better']} | "
                             f"{'yes' if m['worse'] else 'no'} |" for m in comparison["metrics"]))})
    return dg.AssetCheckResult(asset_key=key, check_name=NEWEST_NOT_WORSE, passed=not comparison["worse"],
                               metadata=metadata, severity=dg.AssetCheckSeverity.WARN)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
