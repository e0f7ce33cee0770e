"""Label Studio's flat records, one per exported annotation, that JSON_MIN and CSV/TSV share
(`label_studio_sdk.converter` builds both from the same records). See `json_min.py` for the rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lsflow.core.formats.base import DatasetWriter, ExportContext, TaskItem
from lsflow.core.model.task import Annotation

# Label Studio's names for the tag types whose single values are written plain; the rest only
# differ in case, which nothing depends on (the type is not written).
_TAG_TYPES = {"choices": "Choices", "textarea": "TextArea", "chat": "Chat"}
_TEMPLATE = re.compile(r"\{\{[^}]*\}\}")


@dataclass(frozen=True, slots=True)
class AnnotationRecord:
    """What Label Studio's converter calls an item: one annotation of a task, results by control tag."""

    task_id: Any
    data: dict[str, Any]
    outputs: dict[str, list[tuple[str, dict[str, Any]]]]  # from_name → [(tag type, result value)]
    annotation: Annotation | None  # None for a task without annotations
    agreement: tuple[Any] | None  # (the task's agreement,) when the task has one

    @property
    def completed_by(self) -> Any:
        return self.annotation.raw.get("completed_by", {}) if self.annotation else {}

    def field(self, name: str) -> Any:
        return self.annotation.raw.get(name) if self.annotation else None


def cell_value(results: list[tuple[str, dict[str, Any]]]) -> Any:
    """A control tag's results as one value: a lone choice or text line plain, else a list."""
    values = []
    for tag_type, value in results:
        if tag_type == "Choices" and len(value.get("choices") or ()) == 1:
            values.append(value["choices"][0])
        elif tag_type == "TextArea" and len(value.get("text") or ()) == 1:
            values.append(value["text"][0])
        elif tag_type in ("Chat", "chatmessage"):
            values.append(value.get("chatmessage", value))
        else:
            values.append(value)
    last_type = results[-1][0] if results else None
    return values[0] if last_type in ("Choices", "TextArea") and len(values) == 1 else values


def annotator(completed_by: Any, numeric_id: bool, default: Any = None) -> Any:
    """The email of an expanded user, else the user id (a string unless `numeric_id`)."""
    if isinstance(completed_by, dict):
        return completed_by.get("email", default)
    if numeric_id and isinstance(completed_by, int):
        return completed_by
    return str(completed_by)


class ControlTags:
    """Which `from_name`s have a column, and their tag type, from the label config."""

    def __init__(self, context: ExportContext):
        config = context.label_config
        self.everything = config is None
        self.types: dict[str, str] = {}
        self.templates: list[tuple[re.Pattern[str], str]] = []
        for control in config.controls if config else ():
            tag_type = _TAG_TYPES.get(control.tag, control.tag)
            if _TEMPLATE.search(control.name):
                parts = _TEMPLATE.split(control.name)
                self.templates.append((re.compile(".*".join(re.escape(p) for p in parts)), tag_type))
            else:
                self.types[control.name] = tag_type

    def tag_type(self, from_name: str, result_type: str) -> str | None:
        if self.everything:
            return result_type or "unknown"
        if from_name in self.types:
            return self.types[from_name]
        for pattern, tag_type in self.templates:
            if pattern.fullmatch(from_name):
                return tag_type
        if result_type == "chatmessage":
            return "chatmessage"
        return None


class RecordWriter(DatasetWriter):
    """A writer of Label Studio's per-annotation records (JSON_MIN, CSV, TSV)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # Not `control_tags`: that is the class's frozenset of tags the format applies to (`not_applicable`).
        self.tag_types = ControlTags(self.context)

    def records(self, item: TaskItem) -> list[AnnotationRecord]:
        """The task's records; its results without a column are dropped with the reason. Every
        record writer of a pass gets the same records, derived once."""
        derived = item.memo.get("records")
        if derived is None:
            derived = item.memo["records"] = self._derive_records(item)
        records, drops, labels = derived
        for annotation, region, reason in drops:
            self.drop(item, annotation, region, reason)
        for label in labels:
            self.report.wrote(label)
        return records

    def _derive_records(self, item: TaskItem) -> tuple[list[AnnotationRecord], list[tuple], list[str | None]]:
        task = item.task
        if not task.annotations:
            return [AnnotationRecord(task.id, task.data, {}, None, None)], [], []
        agreement = (task.raw["agreement"],) if "agreement" in task.raw else None
        records: list[AnnotationRecord]
        drops: list[tuple]
        labels: list[str | None]
        records, drops, labels = [], [], []
        tag_type_of = self.tag_types.tag_type
        # Newest first, as Label Studio orders them (a stable sort: ties keep their order).
        for annotation in sorted(item.annotations, key=lambda a: a.created_at or "", reverse=True):
            outputs: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            for region in annotation.regions:
                if not region.from_name:
                    reason = "relations have no column" if region.type == "relation" else "result has no from_name"
                    drops.append((annotation, region, reason))
                    continue
                raw = region.raw
                tag_type = tag_type_of(region.from_name, str(raw.get("type") or ""))
                if tag_type is None:
                    drops.append((annotation, region, f"'{region.from_name}' is not a control tag of the label config"))
                    continue
                value = dict(region.value)
                value.pop("type", None)
                if tag_type != "chatmessage":  # Label Studio adds the image size to all but chat messages
                    if "original_width" in raw:
                        value["original_width"] = raw["original_width"]
                    if "original_height" in raw:
                        value["original_height"] = raw["original_height"]
                outputs.setdefault(region.from_name, []).append((tag_type, value))
                labels.append((region.labels or (None,))[0])  # a constant tuple: typed str | None
            records.append(AnnotationRecord(task.id, task.data, outputs, annotation, agreement))
        return records, drops, labels
