"""An `s3://` output root on moto's S3 server (127.0.0.1): versions uploaded under immutable prefixes, the
newest switched by one conditional PUT of a pointer; a publish stopped before the switch, a reader during
the mirror and a second writer switching meanwhile."""

from __future__ import annotations

import random

import orjson
import pytest

from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.object_store import (
    POINTER_FILE,
    ObjectStoreOutput,
    ObjectStorePublishError,
    list_remote_versions,
)
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.export_file import ExportFileSource
from lsflow_tests.project.generated_project import make_task, write_project
from lsflow_tests.target_storage import moto_s3

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

BUCKET = "lsflow-output"
CREDENTIALS = {"key": "testing", "secret": "testing"}
FORMATS = ["COCO", "YOLO"]


@pytest.fixture(scope="module")
def endpoint():
    with moto_s3(BUCKET) as server:
        yield server.url


@pytest.fixture
def s3(endpoint):
    return s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True, **CREDENTIALS)


def local_files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def remote_files(s3, prefix: str) -> dict[str, bytes]:
    s3.invalidate_cache()
    keys = [key for key in s3.find(prefix) if not key.endswith(POINTER_FILE)]
    return {key[len(prefix) + 1:]: s3.cat_file(key) for key in keys}


def pointer(s3, base: str, name: str) -> dict:
    s3.invalidate_cache()
    return orjson.loads(s3.cat_file(f"{base}/datasets/{name}/{POINTER_FILE}"))


def test_versions_on_s3_switch_atomically_and_stay_immutable(s3, endpoint, tmp_path, monkeypatch):
    rng = random.Random(11)
    tasks = [make_task(task_id, rng) for task_id in range(1, 13)]
    project = tmp_path / "projects" / "1"
    write_project(project, tasks)
    source = ExportFileSource(project.parent)
    output = ObjectStoreOutput(f"s3://{BUCKET}/team-a", {"endpoint_url": endpoint, "skip_instance_cache": True,
                                                         **CREDENTIALS})
    base = f"{BUCKET}/team-a/project-1"
    layout = ProjectLayout(tmp_path / "worker", "1")  # the worker's own disk: store, reuse, local versions

    def build():
        take_project_snapshot(source, layout)
        update_store(layout)
        return build_datasets(layout, FORMATS, None, DatasetOptions(workers=1, object_store=output))

    first = build()
    v1 = {name: first.results[name].version.version_id for name in FORMATS}
    v1_files = {}
    for name in FORMATS:
        expected = local_files(layout.dataset_dir(name).resolve())  # the local build's version, every file
        current = pointer(s3, base, name)
        assert (current["version"], current["mirrored"], current["files"]) == (v1[name], True, len(expected))
        assert remote_files(s3, f"{base}/{current['prefix'].rstrip('/')}") == expected
        assert remote_files(s3, f"{base}/datasets/{name}") == expected  # the mirror
        v1_files[name] = expected

    # One task changed. The first publish stops after uploading the new version, before the switch:
    # readers still get the whole first version, through the pointer and in the mirror.
    edited = next(task for task in tasks if task["annotations"][0]["result"])
    edited["annotations"][0]["result"] = edited["annotations"][0]["result"][:1]
    edited["updated_at"] = edited["annotations"][0]["updated_at"] = "2025-11-02T10:00:00.000000Z"
    write_project(project, tasks)
    import lsflow.project.object_store as object_store

    real_put_pointer = object_store._put_pointer

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("stopped between upload and switch")

    monkeypatch.setattr(object_store, "_put_pointer", killed)
    with pytest.raises(KeyboardInterrupt):
        build()
    v2 = {name: layout.dataset_dir(name).resolve().name for name in FORMATS}
    assert v2["COCO"] != v1["COCO"]
    coco_v2_prefix = f"{base}/versions/COCO/{v2['COCO']}"
    assert remote_files(s3, coco_v2_prefix) == local_files(layout.dataset_dir("COCO").resolve())  # uploaded whole
    assert pointer(s3, base, "COCO")["version"] == v1["COCO"]
    assert remote_files(s3, f"{base}/datasets/COCO") == v1_files["COCO"]

    # The next run switches. A reader during the mirror, following the pointer, reads one whole version.
    monkeypatch.setattr(object_store, "_put_pointer", real_put_pointer)
    seen = []
    real_filesystem = ObjectStoreOutput.filesystem

    def watched(self):
        filesystem = real_filesystem(self)
        real_copy = filesystem.copy

        def copy(source_path, destination, **kwargs):
            reader = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True, **CREDENTIALS)
            current = pointer(reader, base, "COCO")
            seen.append((current["version"], remote_files(reader, f"{base}/{current['prefix'].rstrip('/')}")))
            return real_copy(source_path, destination, **kwargs)

        filesystem.copy = copy
        return filesystem

    monkeypatch.setattr(ObjectStoreOutput, "filesystem", watched)
    second = build()
    monkeypatch.setattr(ObjectStoreOutput, "filesystem", real_filesystem)
    v2_files = local_files(layout.dataset_dir("COCO").resolve())
    assert seen and all(version == v2["COCO"] and files == v2_files for version, files in seen)
    assert second.remote["COCO"].switched and second.remote["COCO"].uploaded == 0  # uploaded by the stopped run
    current = pointer(s3, base, "COCO")
    assert (current["version"], current["previous_version"], current["mirrored"]) == (v2["COCO"], v1["COCO"], True)
    assert remote_files(s3, f"{base}/datasets/COCO") == v2_files

    # Both versions are listed; the first one's objects are as they were.
    listed = list_remote_versions(output, "1", "COCO")
    assert [(item["version"], item["current"]) for item in listed] == [(v2["COCO"], True), (v1["COCO"], False)]
    assert remote_files(s3, f"{base}/versions/COCO/{v1['COCO']}") == v1_files["COCO"]

    # Another writer switches the pointer while this one uploads: this one fails, the other's stands.
    tasks[0]["annotations"][0]["result"] = []
    tasks[0]["updated_at"] = tasks[0]["annotations"][0]["updated_at"] = "2025-11-03T10:00:00.000000Z"
    write_project(project, tasks)
    other = {"version": "from-another-worker", "prefix": "versions/COCO/from-another-worker/", "mirrored": True}

    def racing(self):
        filesystem = real_filesystem(self)
        real_put = filesystem.put

        def put(*args, **kwargs):
            s3.pipe_file(f"{base}/datasets/COCO/{POINTER_FILE}", orjson.dumps(other))
            return real_put(*args, **kwargs)

        filesystem.put = put
        return filesystem

    monkeypatch.setattr(ObjectStoreOutput, "filesystem", racing)
    with pytest.raises(ObjectStorePublishError, match="another writer switched"):
        build()
    assert pointer(s3, base, "COCO") == other
