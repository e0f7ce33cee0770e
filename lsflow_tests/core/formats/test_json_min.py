"""JSON_MIN: the converter's records, key for key, from one streaming pass; what it skips is counted."""

import json

import pytest

from lsflow.core.formats.json_min import JsonMinWriter
from lsflow_tests.core.formats.reference import (
    LABEL_STUDIO_OUTPUTS,
    TEXT_PROJECT,
    record_cases,
    run_converter,
    run_lsflow,
)


def records(result):
    return json.loads((result.path / "result.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("export_file, config, converter_config", record_cases())
def test_records_are_the_converters_with_keys_in_the_same_order(tmp_path, export_file, config, converter_config):
    result = run_lsflow(tmp_path, export_file, ["JSON_MIN"], config)["JSON_MIN"]
    theirs = json.loads((run_converter(tmp_path, export_file, "JSON_MIN", converter_config) / "result.json")
                        .read_text(encoding="utf-8"))
    ours = records(result)
    assert ours == theirs
    assert [list(record) for record in ours] == [list(record) for record in theirs]
    assert result.report["balanced"]


def test_records_equal_what_label_studio_1_23_2_exported(tmp_path):
    for project in ("2", "3"):
        export_dir = TEXT_PROJECT.parent / project
        ours = records(run_lsflow(tmp_path / project, export_dir / "export.json", ["JSON_MIN"],
                                  export_dir / "label_config.xml")["JSON_MIN"])
        assert ours == json.loads((LABEL_STUDIO_OUTPUTS / f"project-{project}" / "result_min.json").read_text())


def test_cancelled_annotations_have_no_record_and_unannotated_tasks_one(tmp_path):
    ours = records(run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["JSON_MIN"],
                              TEXT_PROJECT / "label_config.xml")["JSON_MIN"])
    # Task 5 has only a cancelled annotation; task 6 none (just a prediction); task 4 two, newest first.
    assert [(r["id"], r["annotation_id"]) for r in ours] == [(1, 1), (2, 2), (3, 3), (4, 5), (4, 4), (6, None)]
    unannotated = ours[-1]
    assert unannotated == {"text": "The meeting was postponed again.", "id": 6, "annotator": None,
                           "annotation_id": None, "created_at": None, "updated_at": None, "lead_time": None}
    assert ours[0]["sentiment"] == "neutral"  # a single choice is a plain string
    assert [span["text"] for span in ours[0]["label"]] == ["Angela Merkel", "Emmanuel Macron", "Paris"]


def test_results_without_a_column_are_reported_not_lost(tmp_path):
    task = {"id": 1, "data": {"text": "Ada met Bob."}, "annotations": [{
        "id": 10, "completed_by": {"id": 3, "email": "ann@example.com"}, "created_at": "2025-01-01T00:00:00Z",
        "result": [
            {"id": "a", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 0, "end": 3, "text": "Ada", "labels": ["PER"]}},
            {"id": "b", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 8, "end": 11, "text": "Bob", "labels": ["PER"]}},
            {"from_id": "a", "to_id": "b", "type": "relation", "direction": "right"},
            {"id": "c", "from_name": "gone", "to_name": "text", "type": "choices", "value": {"choices": ["x"]}},
        ]}]}
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps([task]))
    config = '<View><Text name="text" value="$text"/><Labels name="label" toName="text"><Label value="PER"/></Labels></View>'
    result = run_lsflow(tmp_path, export_file, ["JSON_MIN"], config)["JSON_MIN"]

    (record,) = records(result)
    assert [span["text"] for span in record["label"]] == ["Ada", "Bob"]
    assert "gone" not in record and record["annotator"] == "ann@example.com"
    assert result.report["dropped_by_reason"] == {"relations have no column": 1,
                                                  "'gone' is not a control tag of the label config": 1}
    assert result.report["regions_written"] == 2 and result.report["balanced"]
    dropped = [json.loads(line) for line in (result.path / "lsflow_dropped.jsonl").read_text().splitlines()]
    assert {(d["task"], d["annotation"], d["region"]) for d in dropped} == {(1, 10, None), (1, 10, "c")}


def test_check_counts_annotation_records_and_fails_on_a_lost_one(tmp_path):
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["JSON_MIN"], TEXT_PROJECT / "label_config.xml")
    path = result["JSON_MIN"].path
    (outcome,) = JsonMinWriter.check(path, None)
    assert outcome.passed and outcome.metadata == {"records": 6, "annotation_records": 5}

    kept = records(result["JSON_MIN"])[1:]
    (path / "result.json").write_text(json.dumps(kept))
    (outcome,) = JsonMinWriter.check(path, None)
    assert not outcome.passed and "4 records carry an annotation, 5 annotations were exported" in outcome.problems[0]
