"""JSON_MIN: one flat record per annotation — the task data plus a value per control tag.

The records are Label Studio's (`label_studio_sdk.converter`, JSON_MIN and CSV share them):

- one record per exported annotation, a task's annotations newest first (by `created_at`); a task
  with no annotations at all gets one record without annotation fields; cancelled annotations get
  none (the annotation policy leaves them out, as Label Studio does);
- the task's `data` keys, then `id`, then one key per control tag (`from_name`) holding its results:
  a single choice or a single text line as a plain string, otherwise the list of result values;
- `annotator` (the email when `completed_by` is an object, else the user id), `annotation_id`,
  `created_at`, `updated_at`, `lead_time`, and the task's `agreement` when it has one.

Results are kept when their `from_name` is a control tag of the label config (Repeater names such as
`labels_{{idx}}` match `labels_0`, …) or, without a label config, all of them. Results Label Studio
passes over silently — relations, results of tags the config does not have — are reported as
dropped here.
"""

from __future__ import annotations

import json
from typing import Any

import ijson

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, Stream, TaskItem
from lsflow.core.formats.json_text import indented_json
from lsflow.core.formats.shared.records import RecordWriter, annotator, cell_value

RESULT_FILE = "result.json"


class JsonMinWriter(RecordWriter):
    name = "JSON_MIN"
    description = "Label Studio's JSON-MIN: one flat record per annotation (task data + a value per control)"
    checks = (CheckSpec("json_min_records", "result.json parses and holds a record per exported annotation"),)

    streams = {**RecordWriter.streams, "records": Stream(RESULT_FILE, header=b"[\n", separator=b",\n", footer=b"\n]")}

    def write(self, item: TaskItem) -> None:
        for record in self.records(item):
            document = dict(record.data)
            if record.task_id is not None:
                document["id"] = record.task_id
            for name, results in record.outputs.items():
                document[name] = cell_value(results)
            document["annotator"] = annotator(record.completed_by, numeric_id=True)
            for key in ("annotation_id", "created_at", "updated_at", "lead_time"):
                document[key] = record.field("id" if key == "annotation_id" else key)
            if record.agreement is not None:
                document["agreement"] = record.agreement[0]
            self.append("records", indented_json(document))

    @classmethod
    def check(cls, out_dir: Any, context: ExportContext) -> list[CheckOutcome]:
        report = json.loads((out_dir / "lsflow_report.json").read_text(encoding="utf-8"))
        problems, with_annotation, records = [], 0, 0
        try:
            with open(out_dir / RESULT_FILE, "rb") as stream:
                for record in ijson.items(stream, "item", use_float=True):
                    records += 1
                    with_annotation += record.get("annotation_id") is not None
        except ijson.JSONError as error:
            problems.append(f"{RESULT_FILE} is not valid JSON after {records} records: {error}")
        if not problems and with_annotation != report["annotations_exported"]:
            problems.append(f"{with_annotation} records carry an annotation, {report['annotations_exported']} "
                            "annotations were exported")
        return [CheckOutcome("json_min_records", not problems, problems,
                             {"records": records, "annotation_records": with_annotation})]
