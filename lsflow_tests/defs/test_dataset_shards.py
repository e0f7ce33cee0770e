"""A large project's shards in Dagster: each shard its own step of the `dataset_shards` asset, then the
`datasets` step merges them without building any again; after an edit only the edited task's shard is
a step; the datasets equal one pass over every task, file by file."""

import random

import dagster as dg

from lsflow.defs.factory import build_label_studio_defs
from lsflow.defs.resources import DatasetSettings, ExportFileSourceResource
from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.export_file import ExportFileSource
from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.project.generated_project import make_task, write_project

FORMATS = ["COCO", "CSV", "YOLO"]
SHARD_SIZE = 200


def run_job(projects, output, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    defs = build_label_studio_defs(
        task_source=ExportFileSourceResource(projects_dir=str(projects)),
        settings=DatasetSettings(output_root=str(output), shard_size=SHARD_SIZE, workers=1),
        formats=FORMATS, projects=["1"], sensor=False, schedule=False)
    # The job without the review and agreement assets (not what this is about).
    selection = [dg.AssetKey(key) for key in ("label_studio_snapshot", "normalized_tasks", "dataset_shards")] + [
        dg.AssetKey(f"dataset_{name.lower()}") for name in FORMATS]
    result = defs.resolve_job_def("export_project").execute_in_process(partition_key="1", instance=instance,
                                                                      asset_selection=selection)
    assert result.success
    return result


def step_starts(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> dict[str, float]:
    records = instance.get_records_for_run(result.run_id, limit=10_000).records
    return {event.step_key: record.timestamp for record in records
            if (event := record.event_log_entry.dagster_event) and event.event_type == dg.DagsterEventType.STEP_START
            and event.step_key}


def one_pass(projects, root) -> dict:
    layout = ProjectLayout(root, "1")
    take_project_snapshot(ExportFileSource(projects), layout, full=True)
    update_store(layout)
    built = build_datasets(layout, FORMATS, None, DatasetOptions(workers=1, shard_size=None))
    return {name: dataset_files(result.path.resolve()) for name, result in built.results.items()}


def assert_same_as_one_pass(output, projects, root) -> None:
    single = one_pass(projects, root)
    layout = ProjectLayout(output, "1")
    for name in FORMATS:
        sharded = dataset_files(layout.dataset_dir(name).resolve())
        assert sorted(sharded) == sorted(single[name]), name
        assert all(sharded[path] == data for path, data in single[name].items()), name


def test_each_shard_is_a_step_and_the_datasets_step_only_merges(tmp_path):
    rng = random.Random(11)
    tasks = [make_task(task_id, rng) for task_id in range(1, 600)]  # shards 0-200, 200-400, 400-600
    projects, output = tmp_path / "projects", tmp_path / "output"
    write_project(projects / "1", tasks)
    with dg.instance_for_test() as instance:
        result = run_job(projects, output, instance)
        starts = step_starts(instance, result)
        builds = sorted(key for key in starts if key.startswith("dataset_shards.build_shard["))
        assert builds == ["dataset_shards.build_shard[0_200]", "dataset_shards.build_shard[200_400]",
                          "dataset_shards.build_shard[400_600]"]
        shards = instance.get_latest_materialization_event(dg.AssetKey("dataset_shards"))
        metadata = shards.asset_materialization.metadata  # type: ignore[union-attr]
        assert (metadata["shards_built"].value, metadata["tasks_built"].value) == (3, 599)
        # Each shard was last built in its own step: its record of the build predates the datasets step.
        stamps = ProjectLayout(output, "1").shards_dir
        for shard in ("0-200", "200-400", "400-600"):
            assert (stamps / shard / "built.json").stat().st_mtime < starts["datasets"]
        assert_same_as_one_pass(output, projects, tmp_path / "single")

        # Task 250 edited: only shard 200-400 is a step of the next run.
        edited = tasks[249]
        assert edited["id"] == 250
        edited["annotations"][0]["result"] = [{
            "original_width": 640, "original_height": 480, "image_rotation": 0, "id": "edited", "from_name": "label",
            "to_name": "image", "type": "rectanglelabels", "origin": "manual",
            "value": {"x": 5.0, "y": 5.0, "width": 10.0, "height": 10.0, "rotation": 0, "rectanglelabels": ["Car"]}}]
        edited["updated_at"] = edited["annotations"][0]["updated_at"] = "2025-11-02T10:00:00.000000Z"
        write_project(projects / "1", tasks)
        result = run_job(projects, output, instance)
        assert sorted(key for key in step_starts(instance, result) if "build_shard" in key) == [
            "dataset_shards.build_shard[200_400]"]
        assert_same_as_one_pass(output, projects, tmp_path / "single-again")


def test_a_project_below_the_shard_size_has_no_shard_step(tmp_path):
    rng = random.Random(12)
    projects, output = tmp_path / "projects", tmp_path / "output"
    write_project(projects / "1", [make_task(task_id, rng) for task_id in range(1, 150)])
    with dg.instance_for_test() as instance:
        starts = step_starts(instance, run_job(projects, output, instance))
        assert not [key for key in starts if "build_shard" in key]
        assert {"dataset_shards.plan_shards", "datasets"} <= set(starts)
        assert not ProjectLayout(output, "1").shards_dir.exists()
        assert_same_as_one_pass(output, projects, tmp_path / "single")
