"""A project built in shards (bounded task-id ranges, each its own pass, merged per format) equals, file by
file, the same project built in one pass: first build, and after an edit, a deletion and new tasks."""

import json
import random
import shutil

from lsflow.core.formats import WRITERS
from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.export_file import ExportFileSource
from lsflow_tests.dataset_files import dataset_files

# The formats written task by task (the ones shards build) that an image-and-choices config fills.
FORMATS = ["COCO", "CSV", "JSON", "JSON_MIN", "VOC", "YOLO", "YOLO_OBB"]
SHARD_SIZE = 300
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Car"/><Label value="Person"/></RectangleLabels>
  <PolygonLabels name="outline" toName="image"><Label value="Road"/></PolygonLabels>
  <Choices name="weather" toName="image"><Choice value="sunny"/><Choice value="rainy"/></Choices>
</View>
"""


def make_task(task_id: int, rng: random.Random) -> dict:
    width, height = rng.choice([(640, 480), (1280, 720)])
    results = []
    for number in range(rng.randint(0, 3)):
        results.append({"original_width": width, "original_height": height, "image_rotation": 0,
                        "value": {"x": rng.uniform(0, 90), "y": rng.uniform(0, 90), "width": rng.uniform(1, 20),
                                  "height": rng.uniform(1, 20), "rotation": rng.choice([0, 0, 0, 30]),
                                  # "Bus" is not a class of the config: a dropped region, with its reason
                                  "rectanglelabels": [rng.choice(["Car", "Person", "Person", "Bus"])]},
                        "id": f"r{task_id}x{number}", "from_name": "label", "to_name": "image",
                        "type": "rectanglelabels", "origin": "manual"})
    if rng.random() < 0.3:
        results.append({"original_width": width, "original_height": height, "image_rotation": 0,
                        "value": {"points": [[10, 10], [60, 12], [40, 70]], "closed": True, "polygonlabels": ["Road"]},
                        "id": f"p{task_id}", "from_name": "outline", "to_name": "image", "type": "polygonlabels",
                        "origin": "manual"})
    if rng.random() < 0.5:
        results.append({"value": {"choices": [rng.choice(["sunny", "rainy"])]}, "id": f"c{task_id}",
                        "from_name": "weather", "to_name": "image", "type": "choices", "origin": "manual"})
    stamp = f"2025-10-{1 + task_id % 28:02d}T09:00:00.000000Z"
    annotation = {"id": task_id * 10, "completed_by": 1 + task_id % 3, "result": results,
                  "was_cancelled": task_id % 97 == 0, "ground_truth": False, "created_at": stamp,
                  "updated_at": stamp, "lead_time": 1.5, "task": task_id}
    # Some images share a file name across the whole project (and so across shards): one pass names the
    # later tasks' images apart (`__task<id>`), and so must the shards.
    image = f"/data/upload/1/{'shared' if task_id % 450 == 7 else f'img{task_id}'}.jpg"
    return {"id": task_id, "data": {"image": image, "city": rng.choice(["Oslo", "Lima"])},
            "annotations": [annotation], "predictions": [], "created_at": stamp, "updated_at": stamp,
            "inner_id": task_id, "project": 1}


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
    folder.mkdir(parents=True)
    (folder / "label_config.xml").write_text(CONFIG)
    (folder / "export.json").write_text(json.dumps(tasks))
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
    (folder / "export.json").write_text(json.dumps(tasks))

    layout, sharded = build(source, tmp_path / "sharded", SHARD_SIZE, full=True)
    shutil.rmtree(tmp_path / "single")
    _, single = build(source, tmp_path / "single", None)
    assert sorted(p.name for p in layout.shards_dir.iterdir()) == [
        "0-300", "1200-1500", "1500-1800", "600-900", "900-1200"]
    assert_same(sharded, single)
    # The untouched task's label file of the new version is the very file of the first (reused, linked).
    assert next((layout.dataset_dir("YOLO").resolve() / "labels").rglob("img5.txt")).stat().st_ino == inode
