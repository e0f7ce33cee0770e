"""CSV and TSV: the converter's table (columns, rows, values), assembled in one pass; the options; the check."""

import json

import pytest

from lsflow.core.formats.csv import COLUMNS_FILE, CsvWriter, TsvWriter
from lsflow_tests.core.formats.reference import (
    AUDIO_PROJECT,
    LABEL_STUDIO_OUTPUTS,
    TEXT_PROJECT,
    assert_same_table,
    read_table,
    record_cases,
    run_converter,
    run_lsflow,
)

DELIMITERS = {"CSV": ",", "TSV": "\t"}


def table_path(result):
    return result.path / f"result.{result.format_name.lower()}"


@pytest.mark.parametrize("format_name", ["CSV", "TSV"])
@pytest.mark.parametrize("export_file, config, converter_config", record_cases())
def test_table_is_the_converters(tmp_path, format_name, export_file, config, converter_config):
    result = run_lsflow(tmp_path, export_file, [format_name], config)[format_name]
    theirs = run_converter(tmp_path, export_file, format_name, converter_config) / "result.csv"
    delimiter = DELIMITERS[format_name]
    assert_same_table(read_table(table_path(result), delimiter), read_table(theirs, delimiter))
    assert result.report["balanced"]
    assert [p.name for p in result.path.iterdir() if p.name.startswith(".")] == []  # no fragment left behind


@pytest.mark.parametrize("format_name", ["CSV", "TSV"])
def test_bytes_equal_what_label_studio_1_23_2_exported(tmp_path, format_name):
    for project in (TEXT_PROJECT, AUDIO_PROJECT):
        result = run_lsflow(tmp_path / project.name, project / "export.json", [format_name],
                            project / "label_config.xml")[format_name]
        expected = LABEL_STUDIO_OUTPUTS / f"project-{project.name}" / f"result.{format_name.lower()}"
        assert table_path(result).read_bytes() == expected.read_bytes()


def test_rows_follow_label_studio_for_cancelled_and_unannotated_tasks(tmp_path):
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["CSV"], TEXT_PROJECT / "label_config.xml")["CSV"]
    header, *rows = read_table(table_path(result), ",")
    column = {name: index for index, name in enumerate(header)}
    assert header == ["annotation_id", "annotator", "created_at", "id", "label", "lead_time", "sentiment", "text",
                      "updated_at"]
    # Task 5's only annotation was cancelled: no row. Task 6 has none: a row without annotation values.
    assert [(row[column["id"]], row[column["annotation_id"]]) for row in rows] == [
        ("1", "1"), ("2", "2"), ("3", "3"), ("4", "5"), ("4", "4"), ("6", "")]
    assert rows[-1][column["text"]] == "The meeting was postponed again."
    assert rows[1][column["text"]].startswith("Zoë Müller works for Siemens in München; Дмитрий Иванов")


MULTI_CHOICE_CONFIG = """<View><Text name="text" value="$text"/>
  <Choices name="topics" toName="text" choice="multiple"><Choice value="sport"/><Choice value="politics"/></Choices>
  <TextArea name="notes" toName="text"/></View>"""


def multi_choice_export(tmp_path):
    task = {"id": 7, "data": {"text": "Match report"}, "annotations": [{
        "id": 70, "completed_by": 2, "created_at": "2025-01-01T00:00:00Z", "lead_time": 4.5,
        "result": [{"id": "c", "from_name": "topics", "to_name": "text", "type": "choices",
                    "value": {"choices": ["sport", "politics"]}},
                   {"id": "n", "from_name": "notes", "to_name": "text", "type": "textarea",
                    "value": {"text": ["first line", "second line"]}}]}]}
    path = tmp_path / "multi.json"
    path.write_text(json.dumps([task]))
    return path


def test_multi_valued_cells_are_json_by_default_and_joined_with_the_separator_option(tmp_path):
    export_file = multi_choice_export(tmp_path)
    default = run_lsflow(tmp_path / "default", export_file, ["CSV"], MULTI_CHOICE_CONFIG)["CSV"]
    header, row = read_table(table_path(default), ",")
    cells = dict(zip(header, row))
    assert json.loads(cells["topics"]) == {"choices": ["sport", "politics"]}  # Label Studio's cell
    assert json.loads(cells["notes"]) == {"text": ["first line", "second line"]}

    joined = run_lsflow(tmp_path / "joined", export_file, ["CSV"], MULTI_CHOICE_CONFIG,
                        options={"csv_multi_value_separator": "|"})["CSV"]
    header, row = read_table(table_path(joined), ",")
    cells = dict(zip(header, row))
    assert (cells["topics"], cells["notes"], cells["annotator"]) == ("sport|politics", "first line|second line", "2")


def test_without_header_the_columns_are_listed_beside_the_table(tmp_path):
    export_file = TEXT_PROJECT / "export.json"
    config = TEXT_PROJECT / "label_config.xml"
    with_header = read_table(table_path(run_lsflow(tmp_path / "a", export_file, ["TSV"], config)["TSV"]), "\t")
    result = run_lsflow(tmp_path / "b", export_file, ["TSV"], config, options={"csv_header": "false"})["TSV"]
    assert read_table(table_path(result), "\t") == with_header[1:]
    assert (result.path / COLUMNS_FILE).read_text().splitlines() == with_header[0]
    assert all(outcome.passed for outcome in TsvWriter.check(result.path, None))


def test_an_option_value_that_cannot_be_used_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"csv_header='maybe': expected true or false"):
        run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["CSV"], TEXT_PROJECT / "label_config.xml",
                   options={"csv_header": "maybe"})


def test_check_passes_on_the_export_and_fails_when_an_annotation_row_is_missing(tmp_path):
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["CSV"], TEXT_PROJECT / "label_config.xml")["CSV"]
    (outcome,) = CsvWriter.check(result.path, None)
    assert outcome.passed and outcome.metadata == {"rows": 6, "annotation_rows": 5, "columns": 9}

    lines = table_path(result).read_bytes().split(b"\r\n")
    table_path(result).write_bytes(b"\r\n".join(lines[:2] + lines[3:]))
    (outcome,) = CsvWriter.check(result.path, None)
    assert not outcome.passed
    assert outcome.problems == ["4 rows carry an annotation, 5 annotations were exported"]
