"""Projects become partitions and runs: the sensor against a real Label Studio, the full-export schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from lsflow.definitions import defs
from lsflow.defs.assets import FULL_EXPORT_TAG
from lsflow.defs.partitions import PROJECTS_PARTITION_NAME
from lsflow.defs.resources import LabelStudioResource
from lsflow.defs.sensors import TITLE_PATTERN_ENV
from lsflow_tests.live_projects import TEXT_CONFIG


def evaluate(instance, label_studio, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"task_source": LabelStudioResource(url=label_studio.url, api_key=label_studio.personal_token)},
    )
    return defs().resolve_sensor_def("label_studio_projects")(context)


def requested(result: dg.SensorResult) -> list[str]:
    return sorted(r.partition_key for r in result.run_requests)


def test_sensor_adds_matching_projects_and_runs_only_the_changed_ones(label_studio, monkeypatch):
    first = label_studio.create_project("sensor-watch first", TEXT_CONFIG)
    second = label_studio.create_project("sensor-watch second", TEXT_CONFIG)
    label_studio.create_project("sensor-ignore other", TEXT_CONFIG)
    task = label_studio.import_tasks(first, [{"text": "a"}])[0]
    label_studio.import_tasks(second, [{"text": "b"}])
    monkeypatch.setenv(TITLE_PATTERN_ENV, "^sensor-watch ")
    with dg.instance_for_test() as instance:
        result = evaluate(instance, label_studio, None)
        (add,) = result.dynamic_partitions_requests
        assert (add.partitions_def_name, sorted(add.partition_keys)) == (PROJECTS_PARTITION_NAME,
                                                                         sorted([str(first), str(second)]))
        assert requested(result) == sorted([str(first), str(second)])
        instance.add_dynamic_partitions(PROJECTS_PARTITION_NAME, list(add.partition_keys))

        quiet = evaluate(instance, label_studio, result.cursor)
        assert quiet.run_requests == [] and quiet.dynamic_partitions_requests == []

        label_studio.annotate(task, [])  # moves the task's last change
        after_annotation = evaluate(instance, label_studio, quiet.cursor)
        assert requested(after_annotation) == [str(first)]

        label_studio.import_tasks(second, [{"text": "c"}])  # moves the task count
        after_import = evaluate(instance, label_studio, after_annotation.cursor)
        assert requested(after_import) == [str(second)]
        assert after_import.run_requests[0].run_key != result.run_requests[1].run_key


def test_schedule_requests_a_full_export_of_every_partition():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PROJECTS_PARTITION_NAME, ["3", "8"])
        tick = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        requests = defs().resolve_schedule_def("full_export")(context)
    assert sorted(r.partition_key for r in requests) == ["3", "8"]
    assert all(r.tags[FULL_EXPORT_TAG] == "true" for r in requests)
    assert len({r.run_key for r in requests}) == 2


def test_sensor_and_schedule_start_the_export_job_over_the_project_assets():
    definitions = defs()
    job = definitions.resolve_job_def("export_project")
    assert definitions.resolve_sensor_def("label_studio_projects").job_name == job.name
    assert definitions.resolve_schedule_def("full_export").job_name == job.name
    keys = job.asset_layer.asset_graph.get_all_asset_keys()
    assert {dg.AssetKey("label_studio_snapshot"), dg.AssetKey("normalized_tasks"), dg.AssetKey("dataset_coco")} <= keys
