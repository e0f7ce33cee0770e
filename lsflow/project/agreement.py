"""Annotator agreement of a project (`lsflow agreement`, Dagster's `annotator_agreement`): agreement.json
and a markdown report, published atomically in one folder.

    agreement.json   `lsflow.core.compare.agreement.AgreementReport.as_dict()`, as it is
    README.md        the report: region F1 overall, per class, per annotator pair and the tasks agreeing
                     least; per classification control Krippendorff's alpha, Fleiss' and Cohen's kappa

What each number means and how it is computed: docs/compare.md, "Agreement".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from lsflow.core.compare.agreement import agreement
from lsflow.core.model.entries import TaskEntry
from lsflow.project.layout import ProjectLayout
from lsflow.project.reports import report_of_export, report_of_project

AGREEMENT_FILE = "agreement.json"
REPORT_FILE = "README.md"
LEAST_AGREEING_TASKS = 20  # in the markdown report; agreement.json lists every task


def agreement_project(layout: ProjectLayout) -> dict[str, Any]:
    """Agreement over the project's normalized store, into `layout.agreement_dir`; the result."""
    return report_of_project(layout, _agreement, write_agreement, layout.agreement_dir, "agreement")


def agreement_export(export_file: Path, out_dir: Path) -> dict[str, Any]:
    """Agreement over a Label Studio JSON export, into `out_dir`; the result."""
    return report_of_export(export_file, out_dir, _agreement, write_agreement)


def _agreement(entries: Iterator[TaskEntry]) -> dict[str, Any]:
    return agreement((entry.parsed(), entry.image_size) for entry in entries).as_dict()


def write_agreement(result: dict[str, Any], folder: Path, title: str) -> None:
    (folder / AGREEMENT_FILE).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (folder / REPORT_FILE).write_text(markdown(result, title), encoding="utf-8")


def markdown(result: dict[str, Any], title: str) -> str:
    regions = result["regions"]
    lines = [f"# Annotator agreement: {title}", "",
             f"{result['tasks_compared']} of {result['tasks']} tasks have annotations by two or more annotators. "
             f"Regions are matched one to one at IoU >= {result['iou_threshold']} with the same label; "
             "F1 = 2·matched / (regions of one + regions of the other). See docs/compare.md.", "",
             "## Regions", "", f"Overall F1: {number(regions['overall']['f1'])} "
             f"({regions['overall']['matched']} matched)", ""]
    lines += region_table("class", regions["by_class"])
    lines += region_table("annotator pair", regions["by_pair"])
    least = sorted(((task, counts) for task, counts in regions["by_task"].items() if counts["f1"] is not None),
                   key=lambda item: item[1]["f1"])[:LEAST_AGREEING_TASKS]
    lines += region_table("task (least agreeing)", dict(least))
    lines += ["## Classifications", ""]
    if not result["classifications"]:
        lines += ["No choices compared.", ""]
    for control, stats in result["classifications"].items():
        lines += [f"### {control}", "", f"{stats['items']} items, annotators: {', '.join(stats['annotators'])}", "",
                  f"- Krippendorff's alpha (nominal): {number(stats['krippendorff_alpha'])}",
                  f"- Fleiss' kappa: {number(stats['fleiss_kappa'])}"
                  + (f" ({stats['fleiss_kappa_note']})" if stats["fleiss_kappa_note"] else ""), "",
                  "| annotator pair | items | Cohen's kappa |", "|---|---|---|"]
        lines += [f"| {pair} | {row['items']} | {number(row['cohen_kappa'])} |" for pair, row in stats["pairs"].items()]
        lines.append("")
    if result["not_compared"]:
        lines += ["## Not compared", "", "| reason | regions |", "|---|---|"]
        lines += [f"| {reason} | {count} |" for reason, count in result["not_compared"].items()]
        lines.append("")
    return "\n".join(lines)


def region_table(what: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    return ([f"| {what} | F1 | matched | regions (first) | regions (second) |", "|---|---|---|---|---|"]
            + [f"| {name} | {number(row['f1'])} | {row['matched']} | {row['regions_first']} | {row['regions_second']} |"
               for name, row in rows.items()] + [""])


def number(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
