import inspect

import pytest

from lsflow.core.model.task import ExportFormatError
from lsflow.sources.export_file import ExportFileSource, iter_export_tasks
from lsflow_tests.paths import IMAGE_EXPORT, SAMPLE_PROJECTS


def test_tasks_stream_one_at_a_time_in_export_order():
    tasks = iter_export_tasks(IMAGE_EXPORT)
    assert inspect.isgenerator(tasks)
    first = next(tasks)
    assert first.id == 101
    assert [a.id for a in first.annotations] == [1001]
    assert first.annotations[0].regions[1].value["rotation"] == 30.0
    ids = [first.id] + [t.id for t in tasks]
    assert ids[:5] == [101, 102, 103, 104, 105]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"<html>not json</html>", "is not a Label Studio JSON export"),
        (b'[{"id": 1, "data": {}}, {"id": 2, "data": ', "is not valid JSON after task 1"),
        (b"[1, 2]", "item 0 of the export is int, not a task object"),
        (b'[{"data": {}}]', "task at position 0 has no 'id'"),
        (b'[{"id": 7, "data": "x"}]', "task 7: 'data' is missing or not an object"),
        (b'[{"id": 8, "data": {}, "annotations": [{"id": 1, "result": [{"id": "r1", "type": "rectanglelabels"}]}]}]',
         "task 8, region r1: region has no 'value' object"),
    ],
)
def test_malformed_exports_name_the_task_and_the_reason(tmp_path, content, message):
    path = tmp_path / "export.json"
    path.write_bytes(content)
    with pytest.raises(ExportFormatError, match=message):
        list(iter_export_tasks(path))


def test_relations_have_no_value_and_are_not_an_error(tmp_path):
    path = tmp_path / "export.json"
    path.write_bytes(b'[{"id": 3, "data": {}, "annotations": [{"id": 1, "result": '
                     b'[{"type": "relation", "from_id": "a", "to_id": "b", "direction": "right"}]}]}]')
    (task,) = iter_export_tasks(path)
    assert task.annotations[0].regions[0].type == "relation"


def test_file_source_snapshot_copies_the_export_with_its_md5(tmp_path):
    import hashlib

    source = ExportFileSource(SAMPLE_PROJECTS)
    assert "1" in [p.project_id for p in source.list_projects()]
    snapshot = source.take_snapshot("1", tmp_path / "snap")
    assert snapshot.export_path.read_bytes() == IMAGE_EXPORT.read_bytes()
    assert snapshot.md5 == hashlib.md5(IMAGE_EXPORT.read_bytes()).hexdigest()
    assert "<RectangleLabels" in snapshot.label_config
    with pytest.raises(FileNotFoundError, match="project 999: no .* \\(projects on disk: "):
        source.take_snapshot("999", tmp_path / "other")


# The export is split into tasks by a byte scan before each task is parsed; these documents are
# built to trip a scan that miscounts strings, escapes or depth. The expectation is the standard
# library's reading of the whole document.
TRICKY_TASKS = [
    {"id": 1, "data": {"text": 'brackets }]{[ and "quotes" inside, a backslash \\ and \\"', "image": "/x/a.jpg"},
     "annotations": [{"id": 10, "result": [{"id": "r", "type": "choices", "value": {"choices": ["}", "]"]}}]}]},
    {"id": 2, "data": {"text": "ends in backslashes \\\\", "n": [[1, [2, [3]]], {"a": {}}]}, "annotations": []},
    {"id": 3, "data": {"text": "ünïcødé 💡 \u2028", "x": 0.000012345678901234567, "y": -1.5e-300, "z": 10**17}},
    {"id": 4, "data": {"text": "x" * 5000}, "annotations": [], "predictions": []},
]


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("chunk", [7, 1 << 20])  # 7 bytes: every boundary falls somewhere awkward
def test_tasks_are_read_exactly_as_a_full_json_parser_reads_them(tmp_path, monkeypatch, indent, chunk):
    import json

    from lsflow.sources import export_file

    monkeypatch.setattr(export_file, "_SCAN_CHUNK", chunk)
    # ijson reads only what the fast reader refuses; a valid export must never get that far.
    monkeypatch.setattr(export_file.ijson, "items", lambda *args, **kwargs: pytest.fail("fell back to ijson"))
    document = " \n" + json.dumps(TRICKY_TASKS, indent=indent, ensure_ascii=False) + "\n"
    path = tmp_path / "export.json"
    path.write_text(document, encoding="utf-8")
    assert [task.raw for task in iter_export_tasks(path)] == json.loads(document)


@pytest.mark.parametrize("chunk", [7, 1 << 20])
@pytest.mark.parametrize(
    "tail, message",
    [
        (b'{"id": 31, "data": {"n": 18446744073709551616}}]', "after task 30 .*integer overflow"),
        (b'{"id": 31, "data": {"n": 1}},]', "after task 31"),
        (b'{"id": 31, "data": {"n": 1}}] trailing', "after task 31 .*trailing garbage"),
        (b'{"id": 31, "data": {"n": 1}', "after task 30"),
    ],
)
def test_invalid_json_after_many_tasks_names_the_last_good_task(tmp_path, monkeypatch, chunk, tail, message):
    """Integers beyond 64 bits stay an error (they are never silently read as floats)."""
    from lsflow.sources import export_file

    monkeypatch.setattr(export_file, "_SCAN_CHUNK", chunk)
    path = tmp_path / "export.json"
    path.write_bytes(b"[" + b"".join(b'{"id": %d, "data": {}}, ' % i for i in range(1, 31)) + tail)
    with pytest.raises(ExportFormatError, match=message):
        list(iter_export_tasks(path))


def test_predictions_as_bare_ids_are_kept_raw_and_not_read(tmp_path):
    # Label Studio's default snapshot options list predictions by id only.
    path = tmp_path / "export.json"
    path.write_bytes(b'[{"id": 4, "data": {}, "annotations": [], "predictions": [17, 18]}]')
    (task,) = iter_export_tasks(path)
    assert task.predictions == () and task.raw["predictions"] == [17, 18]
