import json
import math

import orjson
import pyarrow.parquet as pq
import pytest

from lsflow.core.incremental.store import iter_store_tasks, read_manifest, write_store
from lsflow.sources.export_file import iter_export_tasks
from lsflow_tests.paths import IMAGE_EXPORT


@pytest.fixture
def store(tmp_path):
    summary = write_store(iter_export_tasks(IMAGE_EXPORT), tmp_path / "store", "image",
                          {"source": "test", "snapshot_id": "s-1", "md5": "abc"})
    return tmp_path / "store", summary


def test_tables_hold_every_task_annotation_and_region(store):
    directory, summary = store
    exported = json.loads(IMAGE_EXPORT.read_text())
    tasks = pq.read_table(directory / "tasks.parquet").to_pylist()
    assert [t["task_id"] for t in tasks] == [t["id"] for t in exported]
    annotations = pq.read_table(directory / "annotations.parquet").to_pylist()
    expected_annotations = sum(len(t["annotations"]) + len(t["predictions"]) for t in exported)
    assert len(annotations) == expected_annotations
    assert {a["kind"] for a in annotations if a["task_id"] == 104} == {"prediction"}
    assert [a["was_cancelled"] for a in annotations if a["annotation_id"] == 1004] == [True]
    regions = pq.read_table(directory / "regions.parquet").to_pylist()
    assert len(regions) == summary.regions == sum(
        len(a["result"]) for t in exported for a in t["annotations"] + t["predictions"])


def test_regions_are_in_pixels_with_rotation_applied(store):
    directory, _ = store
    regions = {r["region_id"]: r for r in pq.read_table(directory / "regions.parquet").to_pylist()}
    rotated = regions["r002xcccc"]
    c = math.sqrt(3) / 2
    assert rotated["shape"] == "box" and rotated["rotation"] == 30.0
    assert rotated["points_px"][:4] == pytest.approx([256, 288, 256 + 96 * c, 288 + 48])
    assert (rotated["image_width"], rotated["image_height"]) == (640, 480)
    assert regions["r005xffff"]["shape"] is None
    assert regions["r005xffff"]["no_shape_reason"] == "'choices' region has no image geometry"


def test_manifest_records_origin_and_counts(store):
    directory, summary = store
    manifest = read_manifest(directory)
    assert manifest["snapshot_id"] == "s-1" and manifest["md5"] == "abc" and manifest["source"] == "test"
    assert manifest["task_count"] == len(json.loads(IMAGE_EXPORT.read_text()))
    assert manifest["max_updated_at"] == "2025-10-03T11:21:30.000000Z"
    assert manifest["content_digest"] == summary.content_digest


def test_tasks_read_back_equal_the_export_but_for_the_export_time(store):
    directory, _ = store
    exported = json.loads(IMAGE_EXPORT.read_text())
    (aged,) = [p for t in exported for p in t["predictions"] if "created_ago" in p]
    del aged["created_ago"]  # "1 month": how long ago, at the moment of the export
    assert [t.raw for t in iter_store_tasks(directory)] == exported


def test_a_task_that_only_aged_has_the_same_content(tmp_path):
    tasks = json.loads(IMAGE_EXPORT.read_text())

    def digest(name):
        path = tmp_path / f"{name}.json"
        path.write_bytes(orjson.dumps(tasks))
        return write_store(iter_export_tasks(path), tmp_path / name, "image", {}).content_digest

    before = digest("before")
    (aged,) = [p for t in tasks for p in t["predictions"] if "created_ago" in p]
    aged["created_ago"] = "2\xa0months"
    assert digest("after") == before


def test_content_digest_moves_only_when_content_moves(tmp_path):
    def digest(tasks):
        path = tmp_path / "export.json"
        path.write_bytes(orjson.dumps(tasks))
        return write_store(iter_export_tasks(path), tmp_path / f"s{len(list(tmp_path.iterdir()))}", "image", {}).content_digest

    tasks = json.loads(IMAGE_EXPORT.read_text())
    first = digest(tasks)
    assert digest(tasks) == first
    tasks[0]["annotations"][0]["result"][0]["value"]["x"] += 1
    assert digest(tasks) != first
