"""A project built in shards (bounded task-id ranges, each its own pass, merged per format) equals, file by
file, the same project built in one pass: first build, and after an edit, a deletion and new tasks."""

import json
import random
import shutil

import pytest

from lsflow.core.formats import WRITERS
from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.export_file import ExportFileSource
from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.project.generated_project import make_task, write_project

# The formats written task by task (the ones shards build) that an image-and-choices config fills.
FORMATS = ["COCO", "CSV", "JSON", "JSON_MIN", "VOC", "YOLO", "YOLO_OBB"]
SHARD_SIZE = 300
def build(source: ExportFileSource, root, shard_size, full=False):
    layout = ProjectLayout(root, "1")
    take_project_snapshot(source, layout, full=full)
    update_store(layout)
    results = build_datasets(layout, FORMATS, None, DatasetOptions(workers=2, shard_size=shard_size)).results
    return layout, {name: dataset_files(result.path.resolve()) for name, result in results.items()}


def assert_same(sharded: dict, single: dict) -> None:
    assert sorted(sharded) == sorted(single) == FORMATS
    for name in FORMATS:
        assert sorted(sharded[name]) == sorted(single[name]), name
        for path, data in single[name].items():
            assert sharded[name][path] == data, f"{name}: {path}"


def test_sharded_build_equals_one_pass_file_by_file(tmp_path):
    assert all(WRITERS[name].per_task for name in FORMATS)
    rng = random.Random(5)
    # 1 200 tasks, ids 3…1 202 with every 13th missing: shards [0,300) … [900,1200), [1200,1500).
    ids = [task_id for task_id in range(3, 1203) if task_id % 13]
    tasks = [make_task(task_id, rng) for task_id in ids]
    folder = tmp_path / "projects" / "1"
    write_project(folder, tasks)
    source = ExportFileSource(tmp_path / "projects")

    layout, sharded = build(source, tmp_path / "sharded", SHARD_SIZE)
    _, single = build(source, tmp_path / "single", None)
    assert sorted(p.name for p in layout.shards_dir.iterdir()) == [
        "0-300", "1200-1500", "300-600", "600-900", "900-1200"]
    assert_same(sharded, single)
    # Independently of the code: every task's image in COCO, numbered annotations 1…n, the shared name
    # apart from the second task on (tasks 7, 457, 907 share "shared.jpg").
    coco = json.loads(sharded["COCO"][next(p for p in sharded["COCO"] if p.name == "result.json")])
    sized = [task["id"] for task in tasks if any("original_width" in r for r in task["annotations"][0]["result"])]
    assert [image["id"] for image in coco["images"]] == sized
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    shared = sorted(path.name for path in sharded["YOLO"] if path.name.startswith("shared"))
    assert shared == ["shared.txt", "shared__task457.txt", "shared__task907.txt"]
    report = json.loads(sharded["COCO"][next(p for p in sharded["COCO"] if p.name == "lsflow_report.json")])
    assert report["tasks"] == len(ids)
    assert report["dropped_by_reason"]  # the "Bus" boxes, reported in the merged report too

    # Later: task 620 edited (shard 600-900), every task of 300-600 deleted, tasks added past the end.
    untouched = layout.dataset_dir("YOLO").resolve() / "labels"
    untouched_file = next(untouched.rglob("img5.txt"))
    inode = untouched_file.stat().st_ino
    edited = next(task for task in tasks if task["id"] == 620)
    edited["annotations"][0]["result"] = [{**edited["annotations"][0]["result"][0], "value": {
        "x": 5.0, "y": 5.0, "width": 10.0, "height": 10.0, "rotation": 0, "rectanglelabels": ["Car"]}}] \
        if edited["annotations"][0]["result"] else []
    edited["updated_at"] = edited["annotations"][0]["updated_at"] = "2025-11-02T10:00:00.000000Z"
    tasks = [task for task in tasks if not 300 <= task["id"] < 600]
    tasks += [make_task(task_id, rng) for task_id in range(1203, 1520)]
    write_project(folder, tasks)

    layout, sharded = build(source, tmp_path / "sharded", SHARD_SIZE, full=True)
    shutil.rmtree(tmp_path / "single")
    _, single = build(source, tmp_path / "single", None)
    assert sorted(p.name for p in layout.shards_dir.iterdir()) == [
        "0-300", "1200-1500", "1500-1800", "600-900", "900-1200"]
    assert_same(sharded, single)
    # The untouched task's label file of the new version is the very file of the first (reused, linked).
    assert next((layout.dataset_dir("YOLO").resolve() / "labels").rglob("img5.txt")).stat().st_ino == inode


def test_the_plan_is_kept_for_the_store_as_it_is_and_made_again_when_it_changes(tmp_path):
    from lsflow.core.pipeline.shards import cached_store_plan, store_plan

    rng = random.Random(9)
    tasks = [make_task(task_id, rng) for task_id in range(1, 40)]
    write_project(tmp_path / "projects" / "1", tasks)
    layout = ProjectLayout(tmp_path / "out", "1")
    take_project_snapshot(ExportFileSource(tmp_path / "projects"), layout)
    update_store(layout)
    cache = tmp_path / "plan.json"
    first = cached_store_plan(layout.store_dir, 10, cache)
    assert first == store_plan(layout.store_dir, 10) and [s.name for s in first.shards] == [
        "0-10", "10-20", "20-30", "30-40"]
    # Kept: the same plan again without reading the tasks.
    moved = layout.store_dir / "tasks.parquet"
    moved.rename(tmp_path / "tasks.parquet")
    assert cached_store_plan(layout.store_dir, 10, cache) == first
    with pytest.raises(OSError):  # another shard size is not the kept plan: the tasks are read again
        cached_store_plan(layout.store_dir, 20, cache)
    (tmp_path / "tasks.parquet").rename(moved)
    assert [s.name for s in cached_store_plan(layout.store_dir, 20, cache).shards] == ["0-20", "20-40"]
    # A store update (task 15 edited) rewrites the manifest: the plan is made again, shard 10-20's digest moves.
    tasks[14]["annotations"][0]["result"] = []
    tasks[14]["updated_at"] = "2025-11-02T10:00:00.000000Z"
    write_project(tmp_path / "projects" / "1", tasks)
    take_project_snapshot(ExportFileSource(tmp_path / "projects"), layout)
    update_store(layout)
    again = cached_store_plan(layout.store_dir, 10, cache)
    assert [a.digest == b.digest for a, b in zip(first.shards, again.shards)] == [True, False, True, True]


def test_other_code_builds_every_shard_again(tmp_path, monkeypatch):
    """Shards built by other code are not current, as the reuse index would not reuse their tasks either:
    a merge never mixes shards of two versions of the writers."""
    import lsflow.project.datasets as datasets

    rng = random.Random(11)
    write_project(tmp_path / "projects" / "1", [make_task(task_id, rng) for task_id in range(1, 40)])
    layout, _ = build(ExportFileSource(tmp_path / "projects"), tmp_path / "out", 10)
    options = DatasetOptions(workers=1, shard_size=10)
    assert datasets.pending_shards(layout, ["YOLO"], options).shards == []
    monkeypatch.setattr(datasets, "code_digest", lambda: "other code")
    assert [s.name for s in datasets.pending_shards(layout, ["YOLO"], options).shards] == [
        "0-10", "10-20", "20-30", "30-40"]
