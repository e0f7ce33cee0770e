"""JSON: the tasks as exported — annotations (cancelled ones too), predictions, drafts — in `result.json`.

Label Studio's JSON export is its snapshot file as is. lsflow works from parsed tasks (the snapshot
may be long gone: the Dagster path reads the Parquet store), so it writes each task again the way
Label Studio encodes a snapshot: Python's JSON encoder with `ensure_ascii=False` and its default
separators, tasks joined by `, ` inside `[` `]`. Keys keep their order; strings and integers are
kept exactly; floats were read as Python floats and are written with Python's shortest repr, which is
how Label Studio wrote them. So a snapshot Label Studio wrote comes out byte for byte the same; an
export formatted differently (indented, or numbers spelled `1.50`/`1E3`) comes out with the same
tasks, keys, order and values in that encoding.

The annotation policy does not apply: this is the snapshot, not a selection. The regions of the
selected annotations are counted as written (they are in the file, as is everything else).
"""

from __future__ import annotations

import json
from pathlib import Path

import ijson
import orjson

from lsflow.core.formats.base import CheckOutcome, CheckSpec, DatasetWriter, ExportContext, Stream, TaskItem

RESULT_FILE = "result.json"
_ENCODER = json.JSONEncoder(ensure_ascii=False)


class JsonWriter(DatasetWriter):
    name = "JSON"
    description = "The Label Studio JSON export: every task with annotations, predictions and drafts, as exported"
    checks = (CheckSpec("json_tasks_complete", "result.json parses and holds every exported task"),)

    streams = {**DatasetWriter.streams, "tasks": Stream(RESULT_FILE, header=b"[", separator=b", ", footer=b"]")}

    def write(self, item: TaskItem) -> None:
        self.append("tasks", _ENCODER.encode(item.task.raw).encode("utf-8"))
        for annotation in item.annotations:
            for region in annotation.regions:
                self.report.wrote((region.labels or (None,))[0])  # a constant tuple: typed str | None

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        report = orjson.loads((out_dir / "lsflow_report.json").read_bytes())
        problems, tasks = [], 0
        try:
            with open(out_dir / RESULT_FILE, "rb") as stream:
                for task in ijson.items(stream, "item", use_float=True):
                    tasks += 1
                    if not isinstance(task, dict) or "id" not in task or "data" not in task:
                        problems.append(f"item {tasks - 1} is not a task (no id or data)")
        except ijson.JSONError as error:
            problems.append(f"{RESULT_FILE} is not valid JSON after {tasks} tasks: {error}")
        if tasks != report["tasks"]:
            problems.append(f"{tasks} tasks in {RESULT_FILE}, {report['tasks']} exported")
        return [CheckOutcome("json_tasks_complete", not problems, problems[:20], {"tasks": tasks})]
