"""Target storage read as a task source, offline: both of Label Studio's layouts written from the sample
export, in a folder and in a bucket of moto's S3 server; incremental reads count the objects they read.

The same against a real Label Studio writing its target storage: lsflow_tests/project/test_target_storage_live.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.export_file import ExportFileSource
from lsflow.sources.media import MediaResolver
from lsflow.sources.target_storage import STORAGE_PROBLEMS, TargetStorageSource
from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT, SAMPLE_MEDIA

FORMATS = ["COCO", "YOLO", "JSON_MIN", "CSV"]


def sample_tasks() -> list[dict]:
    return orjson.loads(IMAGE_EXPORT.read_bytes())


def per_task(task: dict) -> dict[str, bytes]:
    return {f"{task['id']}.json": orjson.dumps(task)}


def per_annotation(task: dict) -> dict[str, bytes]:
    """Label Studio's older layout: an object per annotation, its task nested (without annotations)."""
    nested = {k: v for k, v in task.items() if k not in ("annotations", "predictions")}
    return {str(a["id"]): orjson.dumps({**a, "task": nested}) for a in task["annotations"]}


def write_objects(folder: Path, tasks: list[dict], layout) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for key, body in layout(task).items():
            (folder / key).write_bytes(body)


def build(source, root: Path, project: str = "1") -> ProjectLayout:
    layout = ProjectLayout(root, project)
    take_project_snapshot(source, layout)
    update_store(layout)
    with MediaResolver(media_root=SAMPLE_MEDIA) as media:
        build_datasets(layout, FORMATS, media, DatasetOptions())
    return layout


@pytest.mark.parametrize("layout", [per_task, per_annotation])
def test_a_folder_of_task_objects_gives_the_datasets_of_the_export(tmp_path, layout):
    tasks = [t for t in sample_tasks() if t["annotations"]]  # storage holds annotated tasks only
    write_objects(tmp_path / "storage" / "1", tasks, layout)
    (tmp_path / "files" / "1").mkdir(parents=True)
    (tmp_path / "files" / "1" / "export.json").write_bytes(orjson.dumps(tasks))
    (tmp_path / "files" / "1" / "label_config.xml").write_bytes(IMAGE_CONFIG.read_bytes())

    from_storage = build(TargetStorageSource(f"file://{tmp_path}/storage/{{project}}", IMAGE_CONFIG), tmp_path / "a")
    from_export = build(ExportFileSource(tmp_path / "files"), tmp_path / "b")
    for name in FORMATS:
        assert dataset_files(from_storage.dataset_dir(name).resolve()) == dataset_files(from_export.dataset_dir(name).resolve())


def test_only_changed_objects_are_read_and_vanished_ones_are_deletions(tmp_path):
    tasks = [t for t in sample_tasks() if t["annotations"]]
    folder = tmp_path / "storage" / "1"
    write_objects(folder, tasks, per_annotation)
    source = TargetStorageSource(f"file://{tmp_path}/storage/{{project}}", IMAGE_CONFIG)
    layout = ProjectLayout(tmp_path / "out", "1")
    first = take_project_snapshot(source, layout)
    update_store(layout)
    annotations = sum(len(t["annotations"]) for t in tasks)
    assert first.counts["objects_read"] == first.counts["objects_listed"] == annotations

    quiet = take_project_snapshot(source, layout)
    assert (quiet.mode, quiet.counts["objects_read"], quiet.task_count, quiet.deleted_task_ids) == ("incremental", 0, 0, [])
    update_store(layout)

    # One annotation edited; the task with a single annotation loses it (its object vanishes).
    several = next(t for t in tasks if len(t["annotations"]) > 1)
    single = next(t for t in tasks if len(t["annotations"]) == 1)
    edited = dict(several["annotations"][0], lead_time=99.0)
    nested = {k: v for k, v in several.items() if k not in ("annotations", "predictions")}
    (folder / str(edited["id"])).write_bytes(orjson.dumps({**edited, "task": nested}))
    os.utime(folder / str(edited["id"]), ns=(1, 1))  # another mtime, whatever the clock's resolution
    (folder / str(single["annotations"][0]["id"])).unlink()
    changed = take_project_snapshot(source, layout)
    # The edited object, and its task's other annotations to rebuild the task whole; nothing else.
    assert changed.counts["objects_read"] == len(several["annotations"])
    assert (changed.counts["objects_changed"], changed.counts["objects_vanished"]) == (1, 1)
    assert changed.task_count == 1 and changed.deleted_task_ids == [single["id"]]
    summary, store_changes, _ = update_store(layout)
    assert (store_changes.changed, store_changes.deleted) == (1, 1)
    assert summary.tasks == len(tasks) - 1


def test_bad_objects_are_reported_by_key_and_the_rest_is_read(tmp_path):
    tasks = [t for t in sample_tasks() if t["annotations"]]
    folder = tmp_path / "storage" / "1"
    write_objects(folder, tasks, per_task)
    (folder / "notes.txt").write_text("not json")
    (folder / "list.json").write_text("[1, 2]")
    (folder / "other.json").write_bytes(orjson.dumps({**tasks[0], "id": 999, "project": 2}))
    layout = ProjectLayout(tmp_path / "out", "1")
    record = take_project_snapshot(TargetStorageSource(f"file://{tmp_path}/storage/{{project}}"), layout)
    assert record.task_count == len(tasks) and record.counts["objects_skipped"] == 3
    lines = (layout.snapshot_dir / STORAGE_PROBLEMS).read_bytes().splitlines()
    problems = {p["key"]: p["reason"] for p in map(orjson.loads, lines)}
    assert problems["notes.txt"].startswith("not JSON")
    assert problems["list.json"] == "not a task or an annotation: a JSON list"
    assert problems["other.json"] == "a task of project 2, not 1"


def test_projects_are_the_numbered_folders(tmp_path):
    write_objects(tmp_path / "storage" / "4", sample_tasks()[:2], per_task)
    write_objects(tmp_path / "storage" / "12", sample_tasks()[2:3], per_task)
    (tmp_path / "storage" / "readme").mkdir()
    listed = TargetStorageSource(f"file://{tmp_path}/storage/{{project}}").list_projects()
    assert [(p.project_id, p.task_count) for p in listed] == [("4", 2), ("12", 1)]


def test_the_sensor_runs_a_project_whose_objects_changed(tmp_path):
    import dagster as dg

    from lsflow.defs.factory import build_label_studio_defs
    from lsflow.defs.resources import DatasetSettings, TargetStorageResource

    tasks = [t for t in sample_tasks() if t["annotations"]]
    folder = tmp_path / "storage" / "1"
    write_objects(folder, tasks, per_task)
    defs = build_label_studio_defs(name="bucket", task_source=TargetStorageResource(url=f"file://{tmp_path}/storage/{{project}}"),
                                   settings=DatasetSettings(output_root=str(tmp_path / "out")))
    sensor = defs.resolve_sensor_def("bucket_label_studio_projects")
    with dg.instance_for_test() as instance:
        def evaluate(cursor):
            return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources))

        first = evaluate(None)
        assert [r.partition_key for r in first.run_requests] == ["1"]
        assert evaluate(first.cursor).run_requests == []  # the same listing: nothing to do
        (folder / f"{tasks[0]['id']}.json").write_bytes(orjson.dumps({**tasks[0], "updated_at": "2030-01-01T00:00:00Z"}))
        moved = evaluate(first.cursor)
        assert [r.partition_key for r in moved.run_requests] == ["1"]
        assert moved.run_requests[0].run_key != first.run_requests[0].run_key
