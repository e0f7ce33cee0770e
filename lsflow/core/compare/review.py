"""Prediction review: per model version, what people did with its predictions and how good they were.

For every `model_version` of a project's predictions (`review`):

- **predicted**: predictions, tasks and regions (a region is the results sharing one id);
- **lineage**, over the annotations made from one of its predictions (`lsflow.core.compare.lineage`):
  regions accepted unchanged, edited (moved, resized, reshaped, relabelled, value changed; with the IoU
  of the edited shape to the predicted one), deleted, and added by the person;
- **quality**, by matching (`lsflow.core.compare.matching.match`) on every task that has a prediction of
  the version and annotations: the task's latest prediction of the version against each of its
  annotations that is not cancelled (an annotation is one reference; two annotators make two):
  - detections (box, polygon, mask, keypoint): precision, recall and F1 per class, a prediction and
    an annotation region matching one to one when their similarity (IoU) is >= 0.5 and their class is
    the same;
  - COCO mAP of the boxes through pycocotools' COCOeval (bbox): the annotations' boxes are the ground
    truth, the predictions' boxes the detections with their score (the region's `score`, else the
    prediction's, else 1.0), each (task, annotation) pair an image, pixel boxes (a rotated box's
    envelope). As in COCO, a class nobody annotated has no AP and is left out of the mean;
  - spans (text labels): precision, recall and F1 per class, strict (same start, end and class);
  - choices: a confusion matrix per control (rows: the annotation's choice, columns: the prediction's;
    several choices are one value; `(none)` where one side has none) and accuracy;
  - transcriptions (TextArea): word error rate per control, word edits over the annotation's words.

`compare_newest` compares the newest model version (whose newest prediction is the latest) with the
previous one on the tasks both predicted and someone annotated.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lsflow.core.compare.lineage import ADDED, DELETED, EDITED, EDITS, MOVED, UNCHANGED, annotation_lineage, region_groups
from lsflow.core.compare.matching import levenshtein, match
from lsflow.core.compare.regions import Comparable, comparables
from lsflow.core.model.task import Annotation, ImageSize, Task

IOU_THRESHOLD = 0.5
DETECTION_KINDS = frozenset({"box", "polygon", "mask", "keypoint"})
NO_VERSION = "(no model_version)"
NO_CLASS = "(no label)"
NONE = "(none)"
DEFAULT_SCORE = 1.0
# A metric "worse" by less than this is a tie: float noise must not raise a warning.
TOLERANCE = 1e-9

Box = tuple[float, float, float, float]  # x, y, width, height in pixels


@dataclass
class _Evidence:
    """One annotation of a task compared with the task's prediction of one version."""

    image: ImageSize | None
    detections: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (kind, class, tp|fp|fn)
    spans: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    choices: list[tuple[str, str, str]] = field(default_factory=list)  # (control, annotated, predicted)
    words: Counter[tuple[str, str]] = field(default_factory=Counter)  # (control, errors|words)
    truth: list[tuple[str, Box]] = field(default_factory=list)
    detected: list[tuple[str, Box, float]] = field(default_factory=list)


@dataclass
class _Version:
    name: str
    seen: int  # order of first appearance: breaks ties of `newest`
    newest: str = ""  # the latest `created_at` of its predictions
    predictions: int = 0
    regions: int = 0
    tasks: set[Any] = field(default_factory=set)
    annotated: set[Any] = field(default_factory=set)
    linked: int = 0  # annotations made from one of its predictions
    lineage: Counter[str] = field(default_factory=Counter)
    origins: Counter[str] = field(default_factory=Counter)
    ious: list[float] = field(default_factory=list)  # edited shapes
    moved_ious: list[float] = field(default_factory=list)
    evidence: dict[Any, list[_Evidence]] = field(default_factory=dict)  # task id → one per annotation


class ReviewBuilder:
    """Fed task by task (`add`), so a project is read once and never held whole; `result` gives the review."""

    def __init__(self) -> None:
        self._versions: dict[str, _Version] = {}
        self.tasks = 0
        self.unlinked_annotations = 0  # annotations made without any prediction
        self.regions_not_compared: Counter[str] = Counter()  # reason → regions the matcher cannot compare

    def _version(self, name: str) -> _Version:
        if name not in self._versions:
            self._versions[name] = _Version(name, len(self._versions))
        return self._versions[name]

    def add(self, task: Task, image: ImageSize | None = None) -> None:
        self.tasks += 1
        annotations = [a for a in task.annotations if not a.was_cancelled]
        latest: dict[str, Annotation] = {}
        for prediction in task.predictions:
            version = self._version(version_of(prediction))
            version.predictions += 1
            version.regions += len(region_groups(prediction.regions))
            version.tasks.add(task.id)
            version.newest = max(version.newest, str(prediction.created_at or ""))
            if version.name not in latest or _age(prediction) >= _age(latest[version.name]):
                latest[version.name] = prediction
            if annotations:
                version.annotated.add(task.id)
        for annotation in annotations:
            lineage = annotation_lineage(task, annotation, image)
            if lineage.prediction_id is None:
                self.unlinked_annotations += 1
                continue
            version = self._version(lineage.model_version if lineage.model_version is not None else NO_VERSION)
            version.linked += 1
            version.lineage.update(lineage.counts())
            for region in lineage.regions:
                if region.status != DELETED:
                    version.origins[region.origin or NONE] += 1
                if region.iou is not None:
                    version.ious.append(region.iou)
                    if MOVED in region.edits:
                        version.moved_ious.append(region.iou)
        if not annotations:
            return
        truths = []
        for annotation in annotations:
            made, rejected = comparables(annotation, image)
            self.regions_not_compared.update(reason for _, reason in rejected)
            truths.append(made)
        for name, prediction in latest.items():
            predicted, rejected = comparables(prediction, image)
            self.regions_not_compared.update(reason for _, reason in rejected)
            self._versions[name].evidence[task.id] = [_compare(predicted, truth, image) for truth in truths]

    def result(self) -> dict[str, Any]:
        """{"tasks", "unlinked_annotations", "regions_not_compared", "model_versions": [oldest … newest],
        "comparison": `compare_newest`'s}."""
        ordered = sorted(self._versions.values(), key=lambda v: (v.newest, v.seen))
        return {
            "tasks": self.tasks,
            "unlinked_annotations": self.unlinked_annotations,
            "regions_not_compared": dict(sorted(self.regions_not_compared.items())),
            "model_versions": [_summary(version) for version in ordered],
            "comparison": compare_newest(ordered[-2], ordered[-1]) if len(ordered) >= 2 else None,
        }


def review(tasks: Iterable[tuple[Task, ImageSize | None]]) -> dict[str, Any]:
    """The review of (task, its image size) pairs (see the module docstring)."""
    builder = ReviewBuilder()
    for task, image in tasks:
        builder.add(task, image)
    return builder.result()


def _age(prediction: Annotation) -> tuple[str, int]:
    return str(prediction.created_at or ""), prediction.id if isinstance(prediction.id, int) else 0


def version_of(prediction: Annotation) -> str:
    version = prediction.raw.get("model_version")
    return NO_VERSION if version is None or version == "" else str(version)


def _compare(predicted: list[Comparable], truth: list[Comparable], image: ImageSize | None) -> _Evidence:
    evidence = _Evidence(image)
    for kinds, threshold, counter in ((DETECTION_KINDS, IOU_THRESHOLD, evidence.detections),
                                      (frozenset({"span"}), 1.0, evidence.spans)):
        a = [c for c in predicted if c.kind in kinds]
        b = [c for c in truth if c.kind in kinds]
        matching = match(a, b, threshold=threshold, same_label=True)
        for pair in matching.pairs:
            counter[(a[pair.a].kind, _class(a[pair.a]), "tp")] += 1
        for index in matching.only_a:
            counter[(a[index].kind, _class(a[index]), "fp")] += 1
        for index in matching.only_b:
            counter[(b[index].kind, _class(b[index]), "fn")] += 1
    for control in sorted({c.from_name for c in predicted + truth if c.kind == "choice"}):
        guess = [c.label or NONE for c in predicted if c.kind == "choice" and c.from_name == control]
        said = [c.label or NONE for c in truth if c.kind == "choice" and c.from_name == control]
        evidence.choices.append((control, said[0] if said else NONE, guess[0] if guess else NONE))
    for control in sorted({c.from_name for c in truth if c.kind == "textarea"}):
        reference = " ".join(c.text or "" for c in truth if c.kind == "textarea" and c.from_name == control).split()
        hypothesis = " ".join(c.text or "" for c in predicted
                              if c.kind == "textarea" and c.from_name == control).split()
        evidence.words[(control, "errors")] += levenshtein(reference, hypothesis)
        evidence.words[(control, "words")] += len(reference)
    evidence.truth = [(_class(c), _box(c)) for c in truth if c.kind == "box"]
    evidence.detected = [(_class(c), _box(c), DEFAULT_SCORE if c.score is None else c.score)
                         for c in predicted if c.kind == "box"]
    return evidence


def _class(item: Comparable) -> str:
    return item.label if item.label is not None else NO_CLASS


def _box(item: Comparable) -> Box:
    xs, ys = [p[0] for p in item.points], [p[1] for p in item.points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def _summary(version: _Version) -> dict[str, Any]:
    touched = version.lineage[UNCHANGED] + version.lineage[EDITED] + version.lineage[DELETED]
    return {
        "model_version": version.name,
        "newest_prediction_at": version.newest or None,
        "predictions": version.predictions,
        "tasks_predicted": len(version.tasks),
        "regions_predicted": version.regions,
        "tasks_annotated": len(version.annotated),
        "lineage": {
            "annotations_from_predictions": version.linked,
            UNCHANGED: version.lineage[UNCHANGED],
            EDITED: version.lineage[EDITED],
            **{edit: version.lineage[edit] for edit in EDITS},
            DELETED: version.lineage[DELETED],
            ADDED: version.lineage[ADDED],
            "accepted_unchanged_share": _ratio(version.lineage[UNCHANGED], touched),
            "edited_mean_iou": _mean(version.ious),
            "moved_mean_iou": _mean(version.moved_ious),
            "origins": dict(sorted(version.origins.items())),
        },
        "quality": quality(version.evidence),
    }


def quality(evidence: dict[Any, list[_Evidence]], tasks: set[Any] | None = None) -> dict[str, Any]:
    """The matching-based numbers over `tasks` (all tasks of `evidence` when None)."""
    chosen = [e for task_id, items in evidence.items() if tasks is None or task_id in tasks for e in items]
    detections: Counter[tuple[str, str, str]] = Counter()
    spans: Counter[tuple[str, str, str]] = Counter()
    words: Counter[tuple[str, str]] = Counter()
    choices: list[tuple[str, str, str]] = []
    for item in chosen:
        detections.update(item.detections)
        spans.update(item.spans)
        words.update(item.words)
        choices.extend(item.choices)
    return {
        "tasks_compared": sum(1 for task_id in evidence if tasks is None or task_id in tasks),
        "annotations_compared": len(chosen),
        "detection": _prf(detections, IOU_THRESHOLD),
        "coco": coco_map(chosen) if any(item.truth or item.detected for item in chosen) else None,
        "spans": _prf(spans, "exact"),
        "choices": _confusion(choices),
        "transcription": {control: {"wer": _ratio(words[(control, "errors")], words[(control, "words")]),
                                    "word_errors": words[(control, "errors")],
                                    "reference_words": words[(control, "words")]}
                          for control in sorted({control for control, _ in words})},
    }


def _prf(counts: Counter[tuple[str, str, str]], threshold: float | str) -> dict[str, Any] | None:
    """Precision, recall and F1 per (kind, class) and over all (micro), from tp/fp/fn counts."""
    if not counts:
        return None
    rows = []
    for kind, name in sorted({(kind, name) for kind, name, _ in counts}):
        rows.append({"kind": kind, "class": name, **_scores(counts[(kind, name, "tp")], counts[(kind, name, "fp")],
                                                            counts[(kind, name, "fn")])})
    totals: Counter[str] = Counter()
    for (_, _, outcome), count in counts.items():
        totals[outcome] += count
    return {"match": threshold, "classes": rows, "micro": _scores(totals["tp"], totals["fp"], totals["fn"])}


def _scores(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def _confusion(choices: list[tuple[str, str, str]]) -> dict[str, Any]:
    out = {}
    for control in sorted({control for control, _, _ in choices}):
        pairs = [(said, guess) for name, said, guess in choices if name == control]
        labels = sorted({value for pair in pairs for value in pair} - {NONE}) + \
            ([NONE] if any(NONE in pair for pair in pairs) else [])
        index = {label: position for position, label in enumerate(labels)}
        matrix = [[0] * len(labels) for _ in labels]
        for said, guess in pairs:
            matrix[index[said]][index[guess]] += 1
        out[control] = {"labels": labels, "matrix": matrix, "compared": len(pairs),
                        "accuracy": _ratio(sum(1 for said, guess in pairs if said == guess), len(pairs))}
    return out


def coco_map(evidence: list[_Evidence]) -> dict[str, Any]:
    """COCOeval (bbox) of the detected boxes against the true ones, each evidence an image."""
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = sorted({name for item in evidence for name, _ in item.truth} |
                   {name for item in evidence for name, _, _ in item.detected})
    category = {name: position + 1 for position, name in enumerate(names)}
    images: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    detected: list[dict[str, Any]] = []
    for image_id, item in enumerate(evidence, 1):
        width, height = item.image if item.image else (0, 0)
        images.append({"id": image_id, "width": width, "height": height})
        for name, (x, y, w, h) in item.truth:
            truth.append({"id": len(truth) + 1, "image_id": image_id, "category_id": category[name],
                          "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        for name, (x, y, w, h), score in item.detected:
            detected.append({"image_id": image_id, "category_id": category[name], "bbox": [x, y, w, h],
                             "score": score})
    annotated = {truth_box["category_id"] for truth_box in truth}
    result: dict[str, Any] = {"images": len(images), "true_boxes": len(truth), "detected_boxes": len(detected),
                              "mAP": None, "AP50": None, "AP75": None, "classes": []}
    if not truth:
        return result  # no class has ground truth: COCO defines no AP
    with contextlib.redirect_stdout(io.StringIO()):  # COCO's API prints its progress
        ground = COCO()
        ground.dataset = {"images": images, "annotations": truth,
                          "categories": [{"id": category[name], "name": name} for name in names]}
        ground.createIndex()
        if not detected:
            precision = None
        else:
            evaluation = COCOeval(ground, ground.loadRes(detected), iouType="bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            stats = evaluation.stats
            precision = evaluation.eval["precision"]  # [IoU, recall, class, area, max detections]
            result.update({"mAP": _stat(stats[0]), "AP50": _stat(stats[1]), "AP75": _stat(stats[2])})
    if precision is None:  # nothing detected: every annotated class has AP 0
        result.update({"mAP": 0.0, "AP50": 0.0, "AP75": 0.0})
    for name in names:
        k = category[name] - 1
        row: dict[str, Any] = {"class": name, "AP50": None, "AP": None, "pr_curve_50": None}
        if category[name] in annotated:
            if precision is None:
                row.update({"AP50": 0.0, "AP": 0.0, "pr_curve_50": [0.0] * 101})
            else:
                curve = precision[0, :, k, 0, -1]  # IoU 0.5, every area, 100 detections
                every = precision[:, :, k, 0, -1]
                row.update({"AP50": float(np.mean(curve)) if (curve > -1).any() else None,
                            "AP": float(np.mean(every[every > -1])) if (every > -1).any() else None,
                            "pr_curve_50": [max(float(p), 0.0) for p in curve]})
        result["classes"].append(row)
    return result


def _stat(value: float) -> float | None:
    return None if value < 0 else float(value)


def compare_newest(previous: _Version, newest: _Version) -> dict[str, Any]:
    """The newest version against the previous on the tasks both predicted that someone annotated:
    each metric both have, and whether the newest is worse on any."""
    tasks = set(previous.evidence) & set(newest.evidence)
    before, after = quality(previous.evidence, tasks), quality(newest.evidence, tasks)
    metrics = []
    for name, higher_is_better, old, new in _headline(before, after):
        if old is None or new is None:
            continue
        worse = (new < old - TOLERANCE) if higher_is_better else (new > old + TOLERANCE)
        metrics.append({"metric": name, "previous": old, "newest": new,
                        "better": "higher" if higher_is_better else "lower", "worse": worse})
    return {"previous": previous.name, "newest": newest.name, "tasks": len(tasks), "metrics": metrics,
            "worse": any(m["worse"] for m in metrics)}


def _headline(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, bool, Any, Any]]:
    """(metric, higher is better, previous value, newest value) for each headline number."""
    def get(quality_: dict[str, Any], *path: str) -> Any:
        value: Any = quality_
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    rows = [("box mAP@[.5:.95]", True, get(before, "coco", "mAP"), get(after, "coco", "mAP")),
            ("box AP@0.5", True, get(before, "coco", "AP50"), get(after, "coco", "AP50")),
            ("detection F1@0.5", True, get(before, "detection", "micro", "f1"), get(after, "detection", "micro", "f1")),
            ("span F1", True, get(before, "spans", "micro", "f1"), get(after, "spans", "micro", "f1"))]
    for control in sorted(set(before["choices"]) & set(after["choices"])):
        rows.append((f"{control} accuracy", True, before["choices"][control]["accuracy"],
                     after["choices"][control]["accuracy"]))
    for control in sorted(set(before["transcription"]) & set(after["transcription"])):
        rows.append((f"{control} WER", False, before["transcription"][control]["wer"],
                     after["transcription"][control]["wer"]))
    return rows


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
