"""JSON: the snapshot as exported — byte for byte for Label Studio's own snapshots, also through the store."""

import json
import re

from lsflow.core.formats.json import JsonWriter
from lsflow.core.incremental.store import iter_store_tasks, write_store
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.sources.export_file import iter_export_tasks
from lsflow_tests.core.formats.reference import AUDIO_PROJECT, IMAGE_PROJECT, TEXT_PROJECT, run_lsflow


def key_order(value):
    """Every object's keys in order, recursively: what a dict comparison ignores."""
    if isinstance(value, dict):
        return [(key, key_order(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [key_order(item) for item in value]
    return None


def test_label_studio_snapshots_come_out_byte_for_byte(tmp_path):
    for project in (TEXT_PROJECT, AUDIO_PROJECT):  # snapshots a real Label Studio 1.23.2 wrote
        result = run_lsflow(tmp_path / project.name, project / "export.json", ["JSON"], project / "label_config.xml")
        assert (result["JSON"].path / "result.json").read_bytes() == (project / "export.json").read_bytes()


def test_bytes_survive_the_parquet_store_the_dagster_assets_read_from(tmp_path):
    """All but `created_ago` ("5 minutes": how long ago at the moment of the export), which the store
    leaves out so that a task does not change while it only ages."""
    export_file = TEXT_PROJECT / "export.json"
    write_store(iter_export_tasks(export_file), tmp_path / "store", image_key=None, manifest={})
    config = LabelConfig.from_file(TEXT_PROJECT / "label_config.xml")
    context = export_context(config, lambda: iter_store_tasks(tmp_path / "store"))
    results = export_datasets(iter_store_tasks(tmp_path / "store"), ["JSON"], tmp_path / "out", context)
    exported = export_file.read_bytes()
    assert exported.count(b'"created_ago": ') == 1
    expected = re.sub(rb', "created_ago": "5\xc2\xa0minutes"', b"", exported)  # a no-break space, as Django writes it
    assert (results["JSON"].path / "result.json").read_bytes() == expected


def test_other_formatting_keeps_tasks_keys_order_and_values(tmp_path):
    # The image sample is indented, not as Label Studio writes snapshots.
    export_file = IMAGE_PROJECT / "export.json"
    result = run_lsflow(tmp_path, export_file, ["JSON"], IMAGE_PROJECT / "label_config.xml")
    ours, original = (json.loads(p.read_text(encoding="utf-8")) for p in (result["JSON"].path / "result.json",
                                                                           export_file))
    assert ours == original and key_order(ours) == key_order(original)


def test_the_annotation_policy_does_not_thin_out_the_snapshot(tmp_path):
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["JSON"], TEXT_PROJECT / "label_config.xml",
                        policy="latest")["JSON"]
    tasks = json.loads((result.path / "result.json").read_text(encoding="utf-8"))
    assert [len(t["annotations"]) for t in tasks] == [1, 1, 1, 2, 1, 0]
    assert tasks[4]["annotations"][0]["was_cancelled"] is True
    assert tasks[5]["predictions"][0]["model_version"] == "ner-v0"
    # Regions of the annotations the policy chose are counted; the file holds the rest as well.
    assert result.report["regions_written"] == 4 + 6 + 5 + 4 and result.report["balanced"]


def test_check_passes_and_notices_a_missing_task(tmp_path):
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["JSON"], TEXT_PROJECT / "label_config.xml")["JSON"]
    (outcome,) = JsonWriter.check(result.path, None)
    assert outcome.passed and outcome.metadata == {"tasks": 6}

    tasks = json.loads((result.path / "result.json").read_text(encoding="utf-8"))
    (result.path / "result.json").write_text(json.dumps(tasks[:-1]), encoding="utf-8")
    (outcome,) = JsonWriter.check(result.path, None)
    assert not outcome.passed and outcome.problems == ["5 tasks in result.json, 6 exported"]
