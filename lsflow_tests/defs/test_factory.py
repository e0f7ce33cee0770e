"""build_label_studio_defs: the Python way to put lsflow into a user's Definitions."""

from __future__ import annotations

import dagster as dg
import pytest

from lsflow.core.formats import writer_class
from lsflow.defs.factory import build_label_studio_defs
from lsflow.defs.resources import DatasetSettings, ExportFileSourceResource
from lsflow_tests.paths import SAMPLE_MEDIA, SAMPLE_PROJECTS


def sample_defs(tmp_path, **options) -> dg.Definitions:
    return build_label_studio_defs(
        task_source=ExportFileSourceResource(projects_dir=str(SAMPLE_PROJECTS)),
        settings=DatasetSettings(output_root=str(tmp_path), media_root=str(SAMPLE_MEDIA)), **options)


def test_a_named_instance_with_chosen_formats_and_projects_materializes_its_own_assets(tmp_path):
    defs = sample_defs(tmp_path, name="cars", formats=["COCO", "YOLO"], projects=[1, 2])
    job = defs.resolve_job_def("cars_export_project")
    assert job.partitions_def == dg.StaticPartitionsDefinition(["1", "2"])  # usable at once, no sensor needed
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(partition_key="1", instance=instance)
    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {dg.AssetKey(["cars", name]) for name in
                            ("label_studio_snapshot", "normalized_tasks", "dataset_shards", "dataset_coco",
                             "dataset_yolo", "prediction_review", "annotator_agreement")}
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {**{c.name: True for c in writer_class("COCO").checks},
                      **{c.name: True for c in writer_class("YOLO").checks}, "region_accounting": True,
                      "newest_model_not_worse": True}
    assert (tmp_path / "project-1" / "datasets" / "COCO" / "result.json").is_file()


def test_instances_merge_with_each_other_and_the_standalone_one(tmp_path):
    merged = dg.Definitions.merge(sample_defs(tmp_path), sample_defs(tmp_path, name="a", formats=["COCO"]),
                                  sample_defs(tmp_path, name="b", key_prefix=["team", "b"], group_name="b_data",
                                              sensor=False, schedule=False))
    graph = merged.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert {dg.AssetKey("dataset_coco"), dg.AssetKey(["a", "dataset_coco"]), dg.AssetKey(["team", "b", "dataset_coco"])} <= keys
    assert dg.AssetKey(["a", "dataset_yolo"]) not in keys
    assert graph.get(dg.AssetKey(["team", "b", "dataset_coco"])).group_name == "b_data"
    assert graph.get(dg.AssetKey(["a", "dataset_coco"])).parent_keys == {dg.AssetKey(["a", "normalized_tasks"]),
                                                                         dg.AssetKey(["a", "dataset_shards"])}
    assert {s.name for s in merged.sensors or []} == {"label_studio_projects", "a_label_studio_projects"}
    assert {s.name for s in merged.schedules or []} == {"full_export", "a_full_export"}
    assert set(merged.resources or {}) == {"task_source", "settings", "a_task_source", "a_settings", "b_task_source",
                                           "b_settings"}


def test_the_sensor_of_configured_projects_runs_those_only_and_adds_no_partitions(tmp_path):
    defs = sample_defs(tmp_path, name="texts", projects=["2"], automation_running=True)
    sensor = defs.resolve_sensor_def("texts_label_studio_projects")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        first = sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))
        assert [r.partition_key for r in first.run_requests] == ["2"] and first.dynamic_partitions_requests == []
        context = dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=defs.resources)
        assert sensor(context).run_requests == []  # nothing moved since


def test_bad_options_fail_when_the_definitions_load(tmp_path):
    with pytest.raises(ValueError, match="identifier"):
        sample_defs(tmp_path, name="my-data")
    with pytest.raises(ValueError, match="needs an instance name"):
        sample_defs(tmp_path, key_prefix=["x"])
    with pytest.raises(Exception, match="COCOO"):
        sample_defs(tmp_path, name="x", formats=["COCOO"])
