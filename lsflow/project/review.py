"""The prediction review of a project (`lsflow review`, Dagster's `prediction_review`): review.json, a
markdown report and its pictures, published atomically in one folder.

    review.json                    `lsflow.core.compare.review.review`'s result, as it is
    README.md                      the report: the newest model version against the previous, then per
                                   version what was predicted, what people did with it, and its quality
    pr_curve_<version>.png         COCO's precision at IoU 0.5 over recall, one line per class
    confusion_<version>_<control>.png  a choices control's confusion matrix

What each number means and how it is computed: docs/compare.md, "Prediction review".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from PIL import Image, ImageDraw

from lsflow.core.compare.review import ReviewBuilder
from lsflow.core.model.entries import TaskEntry
from lsflow.project.card import PALETTE, _fit, _font, _save_png, _text_width, class_colours
from lsflow.project.layout import ProjectLayout
from lsflow.project.reports import report_of_export, report_of_project

REVIEW_FILE = "review.json"
REPORT_FILE = "README.md"


def review_project(layout: ProjectLayout) -> dict[str, Any]:
    """Review the project's normalized store into `layout.review_dir`; the review's result."""
    return report_of_project(layout, _review, write_review, layout.review_dir, "review")


def review_export(export_file: Path, out_dir: Path) -> dict[str, Any]:
    """Review a Label Studio JSON export into `out_dir`; the review's result."""
    return report_of_export(export_file, out_dir, _review, write_review)


def _review(entries: Iterator[TaskEntry]) -> dict[str, Any]:
    builder = ReviewBuilder()
    for entry in entries:
        builder.add(entry.parsed(), entry.image_size)
    return builder.result()


def write_review(result: dict[str, Any], folder: Path, title: str) -> None:
    (folder / REVIEW_FILE).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    pictures = picture_names(result)
    for version in result["model_versions"]:
        name = version["model_version"]
        coco = version["quality"]["coco"]
        if coco and any(row["pr_curve_50"] for row in coco["classes"]):
            _save_png(pr_curve_chart(name, coco["classes"]), folder / pictures[(name, None)])
        for control, matrix in version["quality"]["choices"].items():
            _save_png(confusion_chart(name, control, matrix), folder / pictures[(name, control)])
    (folder / REPORT_FILE).write_text(render_report(result, title, pictures), encoding="utf-8")


def picture_names(result: dict[str, Any]) -> dict[tuple[str, str | None], str]:
    """File names of the pictures: (version, None) its PR curves, (version, control) a confusion matrix.
    Model versions are free text: unsafe characters become `_`, and a clash takes a number."""
    names: dict[tuple[str, str | None], str] = {}
    taken: set[str] = set()

    def unique(stem: str) -> str:
        candidate, number = stem, 1
        while candidate in taken:
            number += 1
            candidate = f"{stem}-{number}"
        taken.add(candidate)
        return candidate + ".png"

    for version in result["model_versions"]:
        name = version["model_version"]
        names[(name, None)] = unique(f"pr_curve_{_safe(name)}")
        for control in version["quality"]["choices"]:
            names[(name, control)] = unique(f"confusion_{_safe(name)}_{_safe(control)}")
    return names


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


# --- the report ---------------------------------------------------------------------------------------


def render_report(result: dict[str, Any], title: str, pictures: dict[tuple[str, str | None], str]) -> str:
    versions = result["model_versions"]
    lines = [f"# Prediction review: {title}", "",
             f"{result['tasks']} tasks, {len(versions)} model version{'s' if len(versions) != 1 else ''}; "
             f"{result['unlinked_annotations']} annotations were made without a prediction. What each number means "
             "and how it is computed: lsflow's docs/compare.md, \"Prediction review\".", ""]
    if result["regions_not_compared"]:
        lines += ["Regions the matching cannot compare (left out of the quality numbers):", "",
                  *[f"- {count}: {reason}" for reason, count in result["regions_not_compared"].items()], ""]
    comparison = result["comparison"]
    if comparison:
        verdict = "**worse** on " + ", ".join(m["metric"] for m in comparison["metrics"] if m["worse"]) \
            if comparison["worse"] else "not worse"
        lines += [f"## Newest model version `{comparison['newest']}` against `{comparison['previous']}`", "",
                  f"On the {comparison['tasks']} annotated tasks both predicted, the newest is {verdict}.", ""]
        if comparison["metrics"]:
            lines += _table(["metric", comparison["previous"], comparison["newest"], "better", "worse"],
                            [[m["metric"], _number(m["previous"]), _number(m["newest"]), m["better"],
                              "yes" if m["worse"] else "no"] for m in comparison["metrics"]])
    for version in reversed(versions):  # the newest first
        lines += _version_section(version, pictures)
    return "\n".join(lines).rstrip() + "\n"


def _version_section(version: dict[str, Any], pictures: dict[tuple[str, str | None], str]) -> list[str]:
    name, lineage, quality = version["model_version"], version["lineage"], version["quality"]
    lines = [f"## Model version `{name}`", "",
             f"{version['predictions']} predictions on {version['tasks_predicted']} tasks, "
             f"{version['regions_predicted']} regions; {version['tasks_annotated']} of those tasks are annotated "
             f"(newest prediction: {version['newest_prediction_at'] or 'unknown'}).", "",
             "### What people did with its predictions", "",
             f"{lineage['annotations_from_predictions']} annotations were made from its predictions.", ""]
    lines += _table(["accepted unchanged", "edited", "moved", "resized", "reshaped", "relabelled", "value changed",
                     "deleted", "added", "share kept as is", "edited: mean IoU", "moved: mean IoU"],
                    [[lineage["unchanged"], lineage["edited"], lineage["moved"], lineage["resized"],
                      lineage["reshaped"], lineage["relabelled"], lineage["value_changed"], lineage["deleted"],
                      lineage["added"], _number(lineage["accepted_unchanged_share"]),
                      _number(lineage["edited_mean_iou"]), _number(lineage["moved_mean_iou"])]])
    if lineage["origins"]:
        lines += ["Regions of those annotations by the `origin` Label Studio recorded: " +
                  ", ".join(f"{origin} {count}" for origin, count in lineage["origins"].items()) + ".", ""]
    lines += ["### Quality against the annotations", "",
              f"{quality['annotations_compared']} annotations on {quality['tasks_compared']} tasks compared with the "
              "task's latest prediction of this version.", ""]
    if quality["detection"]:
        lines += [f"Detections (one-to-one matches at IoU >= {quality['detection']['match']}, same class):", ""]
        lines += _prf_table(quality["detection"])
    coco = quality["coco"]
    if coco:
        lines += [f"COCO bbox (pycocotools COCOeval, {coco['images']} images, {coco['true_boxes']} true and "
                  f"{coco['detected_boxes']} detected boxes): mAP@[.5:.95] {_number(coco['mAP'])}, "
                  f"AP@0.5 {_number(coco['AP50'])}, AP@0.75 {_number(coco['AP75'])}.", ""]
        lines += _table(["class", "AP@0.5", "AP@[.5:.95]"],
                        [[row["class"], _number(row["AP50"]), _number(row["AP"])] for row in coco["classes"]])
        if any(row["pr_curve_50"] for row in coco["classes"]):
            lines += [f"![precision-recall curves of {name}]({pictures[(name, None)]})", ""]
    if quality["spans"]:
        lines += ["Spans (strict: same start, end and class):", ""]
        lines += _prf_table(quality["spans"])
    for control, matrix in quality["choices"].items():
        lines += [f"Choices `{control}`: accuracy {_number(matrix['accuracy'])} over {matrix['compared']} "
                  "annotations (rows: the annotation, columns: the prediction).", ""]
        lines += _table(["annotation \\ prediction", *matrix["labels"]],
                        [[label, *row] for label, row in zip(matrix["labels"], matrix["matrix"])])
        lines += [f"![confusion matrix of {control}]({pictures[(name, control)]})", ""]
    for control, words in quality["transcription"].items():
        lines += [f"Transcription `{control}`: WER {_number(words['wer'])} ({words['word_errors']} word errors in "
                  f"{words['reference_words']} words of the annotations).", ""]
    return lines


def _prf_table(scores: dict[str, Any]) -> list[str]:
    rows = [[row["kind"], row["class"], row["tp"], row["fp"], row["fn"], _number(row["precision"]),
             _number(row["recall"]), _number(row["f1"])] for row in scores["classes"]]
    micro = scores["micro"]
    rows.append(["all", "(micro)", micro["tp"], micro["fp"], micro["fn"], _number(micro["precision"]),
                 _number(micro["recall"]), _number(micro["f1"])])
    return _table(["kind", "class", "TP", "FP", "FN", "precision", "recall", "F1"], rows)


def _table(headers: list[Any], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers),
            *["| " + " | ".join(cell(v) for v in row) + " |" for row in rows], ""]


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


# --- pictures -----------------------------------------------------------------------------------------


def pr_curve_chart(version: str, classes: list[dict[str, Any]]) -> Image.Image:
    """COCO's interpolated precision at IoU 0.5 over recall 0 … 1, one line per class."""
    font, small = _font(14), _font(12)
    shown = [row for row in classes if row["pr_curve_50"]]
    width, plot = 760, 400
    left, top = 56, 52
    legend_top = top + plot + 40
    image = Image.new("RGB", (width, legend_top + 18 * len(shown) + 12), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), _fit(draw, f"Precision-recall at IoU 0.5: {version}", font, width - 20), fill="black",
              font=font)
    right = left + plot * 1.6

    def at(recall: float, precision: float) -> tuple[float, float]:
        return left + (right - left) * recall, top + plot * (1 - precision)

    for step in range(6):
        tick = step / 5
        x, y = at(tick, tick)
        draw.line((x, top, x, top + plot), fill=(225, 225, 225))
        draw.line((left, y, right, y), fill=(225, 225, 225))
        draw.text((x - 8, top + plot + 4), f"{tick:.1f}", fill="black", font=small)
        draw.text((left - 30, y - 7), f"{tick:.1f}", fill="black", font=small)
    draw.rectangle((left, top, right, top + plot), outline="black")
    draw.text((right - 40, top + plot + 20), "recall", fill="black", font=small)
    draw.text((4, top - 18), "precision", fill="black", font=small)
    colours = class_colours(row["class"] for row in shown)
    for position, row in enumerate(shown):
        curve = row["pr_curve_50"]
        points = [at(index / (len(curve) - 1), value) for index, value in enumerate(curve)]
        draw.line(points, fill=colours[row["class"]], width=2)
        y = legend_top + 18 * position
        draw.rectangle((left, y + 3, left + 12, y + 13), fill=colours[row["class"]])
        ap = "-" if row["AP50"] is None else f"{row['AP50']:.3f}"
        draw.text((left + 18, y), _fit(draw, f"{row['class']} (AP@0.5 {ap})", small, width - left - 30), fill="black",
                  font=small)
    return image


def confusion_chart(version: str, control: str, matrix: dict[str, Any]) -> Image.Image:
    """The matrix as a grid: rows the annotation's choice, columns the prediction's, darker = more."""
    font, small = _font(14), _font(12)
    labels, counts = matrix["labels"], matrix["matrix"]
    cell = 64
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    name_width = min(max((_text_width(probe, label, small) for label in labels), default=40) + 12, 200)
    left, top = name_width + 20, 70
    size = (max(left + cell * len(labels) + 20, 420), top + cell * len(labels) + 40)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), _fit(draw, f"{control} ({version}): annotation (rows) vs prediction (columns)", font,
                            size[0] - 20), fill="black", font=font)
    highest = max((value for row in counts for value in row), default=0) or 1
    base = PALETTE[2]
    for column, label in enumerate(labels):
        draw.text((left + column * cell + 4, top - 18), _fit(draw, label, small, cell - 6), fill="black", font=small)
    for row_index, (label, row) in enumerate(zip(labels, counts)):
        y = top + row_index * cell
        draw.text((10, y + cell / 2 - 7), _fit(draw, label, small, name_width), fill="black", font=small)
        for column, value in enumerate(row):
            x = left + column * cell
            share = value / highest
            fill = tuple(round(255 - (255 - channel) * share) for channel in base)
            draw.rectangle((x, y, x + cell, y + cell), fill=fill, outline=(200, 200, 200))
            text = str(value)
            colour = "white" if share > 0.6 else "black"
            draw.text((x + (cell - _text_width(draw, text, font)) / 2, y + cell / 2 - 8), text, fill=colour, font=font)
    return image
