"""Target storage written by a real Label Studio 1.23.2, to a folder and to moto's S3, read as a task source:
the datasets equal those of a snapshot of the same project (annotated tasks: target storage holds no
others), and after edits, deletions and a new annotation only the changed objects are read again.

Both of Label Studio's layouts: one object per annotation (its default) and one per task
(`FUTURE_SAVE_TASK_TO_STORAGE=true`); docs/target-storage.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson
import pytest

from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.label_studio import LabelStudioSource, SnapshotOptions, TaskFilter
from lsflow.sources.media import MediaResolver
from lsflow.sources.target_storage import TargetStorageSource
from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.live_projects import build_image_project
from lsflow_tests.target_storage import (
    TASK_FORMAT_ENV,
    create_local_target,
    create_s3_target,
    label_studio_with_env,
    local_files_env,
    moto_s3,
)

FORMATS = ["COCO", "YOLO", "VOC", "JSON_MIN", "CSV"]


@pytest.fixture(scope="module", params=["per annotation", "per task"])
def storage_server(request, tmp_path_factory):
    if os.environ.get("LSFLOW_SKIP_LIVE") == "1":
        pytest.skip("LSFLOW_SKIP_LIVE=1: real Label Studio tests skipped")
    base = tmp_path_factory.mktemp("ls-storage")
    documents = base / "documents"
    documents.mkdir()
    env = {**local_files_env(documents), **(TASK_FORMAT_ENV if request.param == "per task" else {}),
           # Label Studio refuses storage endpoints on loopback addresses (SSRF protection); moto's S3 is one.
           "SSRF_PROTECTION_ENABLED": "false"}
    # A bucket per layout: moto keeps its buckets per process, across servers.
    with label_studio_with_env(base / "server", env) as server, moto_s3(f"target-{request.param.replace(' ', '-')}") as s3:
        yield request.param, server, s3, documents


def without_dataset_date(files: dict[Path, bytes]) -> dict[Path, bytes]:
    """The one documented difference: a dataset's date (COCO `info.date_created`, data.yaml's `date_created`) is
    the newest task change, and target storage keeps a task's `updated_at` as of its object's last write: a
    deleted annotation moves it on the server, not in storage."""
    return {path: re.sub(rb'("date_created": ?)"[^"]*"', rb'\1""', body) for path, body in files.items()}


def listing(source: TargetStorageSource, project_id: int) -> dict[str, str]:
    return {o.key: o.fingerprint for o in source._list(str(project_id))}


def task_of(body: bytes) -> int:
    value = orjson.loads(body)
    return value["task"]["id"] if "task" in value and isinstance(value["task"], dict) else value["id"]


def test_target_storage_gives_the_snapshots_datasets_and_rereads_only_changed_objects(storage_server, tmp_path):
    layout_name, server, s3, documents = storage_server
    project = build_image_project(server, f"target storage {layout_name}")
    pid = project.id
    config = tmp_path / "label_config.xml"
    config.write_text(project.label_config)
    create_local_target(server, pid, documents / "exports" / str(pid))
    create_s3_target(server, pid, s3, f"exports/{pid}")
    sources = {
        "folder": TargetStorageSource(f"file://{documents}/exports/{{project}}", config),
        "s3": TargetStorageSource(f"s3://{s3.bucket}/exports/{{project}}", config, s3.storage_options()),
    }
    # Target storage holds annotated tasks only: the snapshot compared with it is of those.
    api = LabelStudioSource(server.url, server.legacy_token, SnapshotOptions(TaskFilter(only_with_annotations=True)))

    def build(source, root: Path) -> tuple[ProjectLayout, dict]:
        layout = ProjectLayout(root, str(pid))
        record = take_project_snapshot(source, layout, full=source is api)
        update_store(layout)
        with MediaResolver(media_root=server.media_dir) as media:
            build_datasets(layout, FORMATS, media, DatasetOptions())
        return layout, record.counts

    def compare(round_name: str) -> dict[str, dict]:
        reference, _ = build(api, tmp_path / f"api-{round_name}")
        counts = {}
        for name, source in sources.items():
            layout, counts[name] = build(source, tmp_path / name)  # the same root each round: incremental
            for format_name in FORMATS:
                ours = without_dataset_date(dataset_files(layout.dataset_dir(format_name).resolve()))
                theirs = without_dataset_date(dataset_files(reference.dataset_dir(format_name).resolve()))
                assert ours == theirs, f"{name}, {format_name}, {round_name}: {sorted(set(ours) ^ set(theirs))}"
        return counts

    first = compare("first")
    before = {name: listing(source, pid) for name, source in sources.items()}
    for name, counts in first.items():
        assert counts["objects_read"] == counts["objects_listed"] == len(before[name]) > 0

    # Changes as people make them: an annotation edited (on the task two annotators labelled), a task's only
    # annotation deleted (the cancelled one), a new one on a task nobody had labelled. (Deleting one of several
    # annotations of a task is left out: in the per-task layout Label Studio then deletes the task's whole
    # object, docs/target-storage.md.)
    edited = server.client.annotations.list(id=project.task_ids[1])[0]
    (removed,) = server.client.tasks.get(id=project.task_ids[2]).annotations  # the list leaves cancelled ones out
    moved = [dict(r, value={**r["value"], "x": r["value"]["x"] + 5}) if r["type"] == "rectanglelabels" else r
             for r in edited.result]
    server.client.annotations.update(edited.id, result=moved)
    server.client.annotations.delete(removed["id"] if isinstance(removed, dict) else removed.id)
    unlabelled = project.task_ids[4]
    size = project.sizes[unlabelled]
    server.annotate(unlabelled, [{"id": "new1", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
                                  "original_width": size[0], "original_height": size[1],
                                  "value": {"x": 5, "y": 5, "width": 20, "height": 20, "rotation": 0,
                                            "rectanglelabels": ["Car"]}}])
    second = compare("second")
    for name, source in sources.items():
        after = listing(source, pid)
        changed = {key for key, value in after.items() if before[name].get(key) != value}
        touched = {task_of(source.filesystem.cat_file(f"{source._prefix(str(pid))}/{key}")) for key in changed}
        touched |= {project.task_ids[2]}  # the deleted annotation's task
        siblings = {key for key in set(after) - changed
                    if task_of(source.filesystem.cat_file(f"{source._prefix(str(pid))}/{key}")) in touched}
        counts = second[name]
        assert counts["objects_read"] == len(changed) + len(siblings) < counts["objects_listed"], (name, counts)
        assert counts["objects_changed"] == len(changed) and counts["objects_skipped"] == 0
