"""The `annotator_agreement` asset of a project partition.

The asset calls `lsflow.project.agreement.agreement_project` (the store's tasks → the project's
`agreement/`) and shows it in the UI: region F1 per class and per annotator pair as tables, the
classification statistics per control, and the report's path.
"""

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg

from lsflow.defs.names import Names
from lsflow.defs.resources import DatasetSettings
from lsflow.project.agreement import AGREEMENT_FILE, REPORT_FILE, agreement_project
from lsflow.project.layout import ProjectLayout

_REGION_COLUMNS = [dg.TableColumn("f1", "float"), dg.TableColumn("matched", "int"),
                   dg.TableColumn("regions_first", "int"), dg.TableColumn("regions_second", "int")]


def build_annotator_agreement(names: Names, partitions_def: dg.PartitionsDefinition,
                              store: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=names.key("annotator_agreement"),
        partitions_def=partitions_def,
        deps=[store],
        group_name=names.group("review"),
        kinds={"json", "markdown"},
        required_resource_keys={names.settings},
        description="Agreement between annotators on tasks annotated more than once: region F1 (IoU >= 0.5, same "
                    "label) per class, annotator pair and task; Krippendorff's alpha, Fleiss' and Cohen's kappa for "
                    "choices (agreement/).",
    )
    def annotator_agreement(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        settings: DatasetSettings = getattr(context.resources, names.settings)
        layout = ProjectLayout(settings.layout_root(), context.partition_key)
        result = agreement_project(layout)
        context.log.info(f"{result['tasks_compared']} of {result['tasks']} tasks compared; region F1 "
                         f"{result['regions']['overall']['f1']}")
        digest = hashlib.sha256((layout.agreement_dir / AGREEMENT_FILE).read_bytes()).hexdigest()
        return dg.MaterializeResult(metadata=agreement_metadata(result, layout.agreement_dir),
                                    data_version=dg.DataVersion(digest))

    return annotator_agreement


def agreement_metadata(result: dict[str, Any], folder: Path) -> dict[str, Any]:
    regions = result["regions"]
    metadata: dict[str, Any] = {
        "tasks": result["tasks"],
        "tasks_compared": result["tasks_compared"],
        "region_f1": dg.MetadataValue.float(regions["overall"]["f1"]) if regions["overall"]["f1"] is not None
        else dg.MetadataValue.text("no regions compared"),
        "regions_by_class": _table("class", regions["by_class"]),
        "regions_by_pair": _table("annotator_pair", regions["by_pair"]),
        "classifications": dg.MetadataValue.table(
            records=[dg.TableRecord({"control": control, "items": stats["items"],
                                     "krippendorff_alpha": stats["krippendorff_alpha"],
                                     "fleiss_kappa": stats["fleiss_kappa"],
                                     "cohen_kappa": "; ".join(f"{pair}: {_number(row['cohen_kappa'])}"
                                                              for pair, row in stats["pairs"].items())})
                     for control, stats in result["classifications"].items()],
            schema=dg.TableSchema(columns=[dg.TableColumn("control", "string"), dg.TableColumn("items", "int"),
                                           dg.TableColumn("krippendorff_alpha", "float"),
                                           dg.TableColumn("fleiss_kappa", "float"),
                                           dg.TableColumn("cohen_kappa", "string")])),
        "report": dg.MetadataValue.path(str(folder / REPORT_FILE)),
        "report_preview": dg.MetadataValue.md((folder / REPORT_FILE).read_text(encoding="utf-8")),
        "path": dg.MetadataValue.path(str(folder)),
    }
    return metadata


def _table(first: str, rows: dict[str, dict[str, Any]]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({first: name, "f1": row["f1"], "matched": row["matched"],
                                 "regions_first": row["regions_first"], "regions_second": row["regions_second"]})
                 for name, row in rows.items()],
        schema=dg.TableSchema(columns=[dg.TableColumn(first, "string"), *_REGION_COLUMNS]))


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"
