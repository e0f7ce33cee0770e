"""CSV and TSV: Label Studio's per-annotation records (see `json_min`) as one table, `result.csv`/`result.tsv`.

Columns are Label Studio's, sorted by name: every task `data` key (renamed `_data_<key>` when a
control tag has the same name anywhere in the export), `id`, one per control tag (`<name>_transcript`
too for chats), `annotator`, `annotation_id`, `created_at`, `updated_at`, `lead_time`, and `agreement`
and `history` when some record has them. Values are quoted unless numeric; objects and lists are
compact JSON. A task without annotations is a row with empty annotation columns.

The columns are only known once every task was seen, so rows are first written to a fragment file
(one JSON line each) and the table is assembled from it in `close`: one pass over the tasks, memory
holding only the column names.

Options (`ExportContext.options`): `csv_header` (default `true`) and `csv_multi_value_separator`
(default unset: several choices or text lines stay JSON, as in Label Studio; when set, e.g. `|`,
they are joined with it).
"""

from __future__ import annotations

import csv
import json
from array import array
from pathlib import Path
from typing import Any

import numpy
import orjson

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, Stream, TaskItem
from lsflow.core.formats.json_text import compact_json
from lsflow.core.formats.shared.records import AnnotationRecord, RecordWriter, annotator, cell_value

HEADER_OPTION = "csv_header"
SEPARATOR_OPTION = "csv_multi_value_separator"
COLUMNS_FILE = "columns.txt"  # the column names, one a line, written when the header is off
ANNOTATION_COLUMNS = ("annotator", "annotation_id", "created_at", "updated_at", "lead_time")
_FRAGMENT = ".rows.jsonl"
_COLUMNS_FRAGMENT = ".columns.jsonl"
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def csv_cell(value: Any) -> str:
    """A cell as `csv.writer(quoting=csv.QUOTE_NONNUMERIC)` writes it: numbers bare, the rest quoted."""
    if isinstance(value, str):
        return f'"{value.replace(chr(34), chr(34) * 2)}"' if '"' in value else f'"{value}"'
    if value is None:
        return '""'
    if isinstance(value, (int, float)):  # booleans too, as the csv module counts them
        return str(value)
    return csv_cell(str(value))


def _chat_transcript(messages: Any) -> str:
    """`role: content` lines, as Label Studio writes a chat's transcript column."""
    lines = []
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role", "")), str(message.get("content", ""))
        lines.append((f"{role}: {content}" if content else f"{role}:") if role else content)
    return "\n".join(lines)


def _repeats(ids: array, rows: array) -> list[tuple[int, str]]:
    """(row, "row N: annotation A appears twice") for every row whose id an earlier row had."""
    values = numpy.frombuffer(ids, dtype=numpy.int64)
    order = numpy.argsort(values, kind="stable")  # equal ids stay in row order: the first is not a repeat
    ordered = values[order]
    repeated = order[1:][ordered[1:] == ordered[:-1]]
    return [(rows[at], f"row {rows[at]}: annotation {ids[at]} appears twice") for at in repeated.tolist()]


class CsvWriter(RecordWriter):
    name = "CSV"
    description = "Label Studio's CSV: one row per annotation, a column per task data key and control tag"
    checks = (CheckSpec("csv_rows_match_annotations", "every row has every column, and the rows with an "
                                                      "annotation id match the exported annotations"),)
    option_help = {
        HEADER_OPTION: "write the header row (true/false, default true); without it the columns are in columns.txt",
        SEPARATOR_OPTION: "join several choices or text lines of one cell with this string instead of a JSON list",
    }
    delimiter = ","
    extension = "csv"

    # Each row, and the column names it brings: the table's columns are those of every row.
    streams = {**RecordWriter.streams, "rows": Stream(_FRAGMENT, temporary=True),
               "columns": Stream(_COLUMNS_FRAGMENT, temporary=True)}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.header = _flag(self.context.options.get(HEADER_OPTION, "true"), HEADER_OPTION)
        self.separator = self.context.options.get(SEPARATOR_OPTION) or None

    def write(self, item: TaskItem) -> None:
        for record in self.records(item):
            outputs = {}
            for name, results in record.outputs.items():
                outputs[name] = self._cell(results)
                if any(tag_type in ("Chat", "chatmessage") for tag_type, _ in results):
                    outputs[f"{name}_transcript"] = _chat_transcript(cell_value(results))
            inputs = {key: compact_json(v) if isinstance(v, (dict, list)) else v for key, v in record.data.items()}
            tail = self._annotation_columns(record)
            # Cells written as they will stand in the table (the workers of a pass share this work).
            cells = [None if record.task_id is None else csv_cell(record.task_id),
                     *({key: csv_cell(value) for key, value in part.items()} for part in (outputs, inputs, tail))]
            self.append("rows", orjson.dumps(cells) + b"\n")
            # The control tags' names too: a data key of the same name moves aside (see close).
            self.append("columns", orjson.dumps([record.task_id is not None, list(inputs), list(record.outputs),
                                                 [*outputs, *tail]]) + b"\n")

    def _cell(self, results: list[tuple[str, dict[str, Any]]]) -> Any:
        if self.separator is not None and all(tag_type in ("Choices", "TextArea") for tag_type, _ in results):
            key = {"Choices": "choices", "TextArea": "text"}
            values = [str(v) for tag_type, value in results for v in value.get(key[tag_type]) or ()]
            return self.separator.join(values)
        value = cell_value(results)
        return value if isinstance(value, str) else compact_json(value)

    @staticmethod
    def _annotation_columns(record: AnnotationRecord) -> dict[str, Any]:
        columns = {
            "annotator": annotator(record.completed_by, numeric_id=False),
            "annotation_id": record.field("id"),
            "created_at": record.field("created_at"),
            "updated_at": record.field("updated_at"),
            "lead_time": record.field("lead_time"),
        }
        if record.agreement is not None:
            columns["agreement"] = record.agreement[0]
        history = record.field("history")
        if history:
            columns["history"] = compact_json(history)
        return columns

    def close(self) -> None:
        fragment = self.out_dir / _FRAGMENT
        input_keys: set[str] = set()
        output_keys: set[str] = set()
        other_columns: set[str] = set(ANNOTATION_COLUMNS)
        with open(self.out_dir / _COLUMNS_FRAGMENT, "rb") as names:
            for line in dict.fromkeys(names):  # rows mostly repeat the same names
                has_id, inputs, tag_names, others = orjson.loads(line)
                input_keys.update(inputs)
                output_keys.update(tag_names)
                other_columns.update(others)
                if has_id:
                    other_columns.add("id")
        # A data key that is also a control tag's name keeps the tag's column; the data moves aside.
        renamed = {key: f"_data_{key}" for key in input_keys & output_keys}
        columns = sorted(other_columns | {renamed.get(key, key) for key in input_keys})
        position = {column: index for index, column in enumerate(columns)}
        id_position = position.get("id")
        delimiter, empty = self.delimiter, csv_cell("")  # csv.DictWriter writes "" for a missing key
        with open(self.out_dir / f"result.{self.extension}", "w", encoding="utf-8", newline="") as table, \
                open(fragment, "rb") as rows:
            if self.header:
                table.write(delimiter.join(map(csv_cell, columns)) + "\r\n")
            for line in rows:
                task_id, outputs, inputs, tail = orjson.loads(line)
                row = [empty] * len(columns)
                if task_id is not None:  # a row with an id made the "id" column (has_id): id_position is set
                    row[id_position] = task_id  # type: ignore[index]  # no assert per row
                for key, value in outputs.items():
                    row[position[key]] = value
                for key, value in inputs.items():
                    row[position[renamed.get(key, key)]] = value
                for key, value in tail.items():
                    row[position[key]] = value
                table.write(delimiter.join(row) + "\r\n")
        if not self.header:
            (self.out_dir / COLUMNS_FILE).write_text("".join(f"{c}\n" for c in columns), encoding="utf-8")

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        report = json.loads((out_dir / "lsflow_report.json").read_text(encoding="utf-8"))
        problems: list[tuple[int, str]] = []  # (row, what)
        # Annotation ids (Label Studio's are integers) in row order, 8 bytes each: a set of a million
        # tasks' 1.6 million id strings took ~200 MB. Repeats are found by sorting them afterwards.
        annotation_ids, annotation_rows = array("q"), array("q")
        other_ids: set[str] = set()  # ids that are not integers
        rows = 0
        with open(out_dir / f"result.{cls.extension}", encoding="utf-8", newline="") as table:
            reader = csv.reader(table, delimiter=cls.delimiter)
            columns_file = out_dir / COLUMNS_FILE
            columns = (columns_file.read_text(encoding="utf-8").splitlines() if columns_file.is_file()
                       else next(reader, []))
            position = columns.index("annotation_id") if "annotation_id" in columns else None
            if position is None:
                problems.append((0, "no annotation_id column"))
            for number, row in enumerate(reader, 2 if not columns_file.is_file() else 1):
                rows += 1
                if len(row) != len(columns):
                    problems.append((number, f"row {number}: {len(row)} fields, {len(columns)} columns"))
                elif position is not None and (value := row[position]):
                    if value.isdigit() and len(value) < 19:
                        annotation_ids.append(int(value))
                        annotation_rows.append(number)
                    elif value in other_ids:
                        problems.append((number, f"row {number}: annotation {value} appears twice"))
                    else:
                        other_ids.add(value)
        problems += _repeats(annotation_ids, annotation_rows)
        found = [text for _, text in sorted(problems)]
        distinct = len(numpy.unique(numpy.frombuffer(annotation_ids, dtype=numpy.int64))) + len(other_ids)
        if distinct != report["annotations_exported"]:
            found.append(f"{distinct} rows carry an annotation, {report['annotations_exported']} annotations were exported")
        return [CheckOutcome("csv_rows_match_annotations", not found, found[:20],
                             {"rows": rows, "annotation_rows": distinct, "columns": len(columns)})]


class TsvWriter(CsvWriter):
    name = "TSV"
    description = "Label Studio's TSV: the CSV table, tab-separated"
    delimiter = "\t"
    extension = "tsv"


def _flag(text: str, option: str) -> bool:
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise ValueError(f"option {option}={text!r}: expected true or false")
