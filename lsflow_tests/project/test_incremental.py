"""Incremental re-export with recorded exports: the result equals a full export of the same state."""

import copy
import json
import random
import shutil

import pytest

from lsflow.core.formats import WRITERS
from lsflow.core.incremental import reuse
from lsflow.core.pipeline.passes import BATCH_TASKS
from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.export_file import ExportFileSource
from lsflow.sources.media import MediaResolver
from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.paths import IMAGE_PROJECT, SAMPLE_MEDIA

FORMATS = sorted(WRITERS)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "projects" / "1"
    shutil.copytree(IMAGE_PROJECT, folder)
    return folder


def sync(source, root, full=False, workers=None):
    media = MediaResolver(SAMPLE_MEDIA, cache_dir=root / "media-cache")
    layout = ProjectLayout(root, "1")
    record = take_project_snapshot(source, layout, full=full)
    summary, changes, _ = update_store(layout)
    results = build_datasets(layout, FORMATS, media, DatasetOptions(workers=workers)).results
    return record, changes, results, layout


files = dataset_files


def edit_project(folder):
    """A later state of the project: one task edited, one deleted, one added (server-style timestamps)."""
    tasks = json.loads((folder / "export.json").read_text())
    edited = next(t for t in tasks if t["id"] == 101)
    edited["annotations"][0]["result"][0]["value"]["x"] = 12.5
    edited["annotations"][0]["updated_at"] = edited["updated_at"] = "2025-11-02T10:00:00.000000Z"
    tasks = [t for t in tasks if t["id"] != 104]
    added = copy.deepcopy(next(t for t in tasks if t["id"] == 103))
    added["id"], added["inner_id"], added["updated_at"] = 500, 500, "2025-11-02T10:05:00.000000Z"
    added["data"]["image"] = "/data/upload/1/3f2a1b9c-street.jpg"
    tasks.append(added)
    (folder / "export.json").write_text(json.dumps(tasks))


def test_incremental_update_equals_a_full_export_file_by_file(project, tmp_path):
    source = ExportFileSource(project.parent)
    first, _, _, layout = sync(source, tmp_path / "incremental")
    assert first.mode == "full"
    untouched_label = next(layout.dataset_dir("YOLO").rglob("*8c1d2e3f-person.txt"))
    inode_before = untouched_label.stat().st_ino
    first_yolo = files(layout.dataset_dir("YOLO").resolve())

    edit_project(project)
    record, changes, results, layout = sync(source, tmp_path / "incremental")
    assert record.mode == "incremental" and record.deleted_task_ids == [104]
    # 101 and 500 changed; 102 was the newest task of the first snapshot, inside the watermark's
    # overlap, so it travels again and is recognised as unchanged. 103 and 105 stay home.
    assert record.task_count == 3
    assert (changes.new, changes.changed, changes.unchanged, changes.deleted) == (1, 1, 1, 1)

    _, _, full_results, full_layout = sync(source, tmp_path / "full", full=True)
    for name in FORMATS:
        assert files(results[name].path) == files(full_results[name].path), name

    # Files of untouched tasks are not rewritten; the deleted task's files are gone from the new version,
    # and the first version is still there, whole.
    yolo = layout.dataset_dir("YOLO")
    assert next(yolo.rglob("*8c1d2e3f-person.txt")).stat().st_ino == inode_before
    assert not list(yolo.rglob("*b7e8f901-road.*"))
    assert results["YOLO"].files.files_removed >= 1 and results["YOLO"].files.files_kept >= 1
    assert results["YOLO"].version.new and results["YOLO"].version.previous is not None
    assert files(layout.versions_dir("YOLO") / results["YOLO"].version.previous) == first_yolo


def test_applying_the_same_snapshot_twice_changes_nothing(project, tmp_path):
    source = ExportFileSource(project.parent)
    sync(source, tmp_path / "out")
    edit_project(project)
    sync(source, tmp_path / "out")
    layout = ProjectLayout(tmp_path / "out", "1")
    store_before = files(layout.store_dir)
    summary, changes, _ = update_store(layout)  # the same incremental snapshot again
    assert (changes.new, changes.changed) == (0, 0)
    after = files(layout.store_dir)
    assert {k: v for k, v in after.items() if k.name != "manifest.json"} == \
           {k: v for k, v in store_before.items() if k.name != "manifest.json"}


def _copy_of(task, task_id, rng):
    """A sample task under a new id, its boxes moved a little; every third keeps its image's name."""
    copied = copy.deepcopy(task)
    copied["id"] = copied["inner_id"] = task_id
    if task_id % 3:
        folder, _, name = copied["data"]["image"].rpartition("/")
        copied["data"]["image"] = f"{folder}/{task_id:05d}{name[8:]}"
    for annotation in copied["annotations"]:
        for result in annotation["result"]:
            if "x" in result.get("value", {}):
                result["value"]["x"] = round(min(result["value"]["x"] + rng.random(), 60.0), 4)
    return copied


@pytest.mark.parametrize("window", [None, (40, 8)], ids=["default-window", "small-window"])
def test_many_tasks_through_workers_and_reuse_equal_a_single_process_full_export(project, tmp_path, monkeypatch, window):
    """Above `BATCH_TASKS` tasks, formats are written by worker processes in batches and an
    incremental build copies runs of unchanged tasks' output: neither may change a byte. With a
    window of the previous index smaller than a batch, runs straddle windows and the batches being
    finished lie behind the window the next batch read."""
    if window is not None:
        monkeypatch.setattr(reuse, "_WINDOW_ROWS", window[0])
        monkeypatch.setattr(reuse, "_WINDOW_BEHIND", window[1])
    rng = random.Random(5)
    sample = json.loads((project / "export.json").read_text())
    tasks = [_copy_of(sample[n % len(sample)], 1000 + n, rng) for n in range(3 * BATCH_TASKS + 40)]
    (project / "export.json").write_text(json.dumps(tasks))
    source = ExportFileSource(project.parent)
    sync(source, tmp_path / "incremental", workers=2)

    edited = rng.sample(tasks, 40)
    for task in edited:
        if task["annotations"]:
            task["annotations"][0]["result"] = task["annotations"][0]["result"][:1]
        task["data"]["camera"] = "cam-2"
        task["updated_at"] = "2026-01-02T10:00:00.000000Z"
    deleted = {task["id"] for task in rng.sample(tasks, 10)} - {task["id"] for task in edited}
    added = [_copy_of(sample[n % len(sample)], 5000 + n, rng) for n in range(12)]
    for task in added:
        task["updated_at"] = "2026-01-02T10:05:00.000000Z"
    tasks = [task for task in tasks if task["id"] not in deleted] + added
    (project / "export.json").write_text(json.dumps(tasks))

    record, _, incremental, _ = sync(source, tmp_path / "incremental", workers=2)
    assert record.mode == "incremental" and set(record.deleted_task_ids) == deleted
    _, _, full, _ = sync(source, tmp_path / "full", full=True, workers=1)
    for name in FORMATS:
        assert files(incremental[name].path) == files(full[name].path), name
    assert incremental["YOLO"].files.files_kept > len(tasks) - 100

    record, changes, again, _ = sync(source, tmp_path / "incremental", workers=2)  # nothing changed since
    assert (changes.new, changes.changed, changes.deleted) == (0, 0, 0)
    for name in FORMATS:
        assert files(again[name].path) == files(full[name].path), name
        assert not again[name].version.new, name  # the same content: no new version


def test_each_formats_change_counts_are_against_its_own_previous_version(project, tmp_path):
    """Formats built at different times: each version's `changes` count from that format's previous version."""
    from lsflow.project.versions import diff_tables, find_version, read_tasks

    source = ExportFileSource(project.parent)
    layout = ProjectLayout(tmp_path / "out", "1")

    def build(formats):
        take_project_snapshot(source, layout)
        update_store(layout)
        return build_datasets(layout, formats, MediaResolver(SAMPLE_MEDIA, cache_dir=tmp_path / "cache")).results

    build(["COCO", "YOLO"])
    edit_project(project)
    build(["COCO"])  # YOLO's newest version stays the first build's
    tasks = json.loads((project / "export.json").read_text())
    again = next(t for t in tasks if t["id"] == 102)
    again["annotations"][0]["updated_at"] = again["updated_at"] = "2025-11-03T10:00:00.000000Z"
    (project / "export.json").write_text(json.dumps(tasks))
    results = build(["COCO", "YOLO"])
    counts = {}
    for name, result in results.items():
        manifest = json.loads((result.version.path / "lsflow_version.json").read_text())
        previous = read_tasks(find_version(layout, name, result.version.previous))
        assert manifest["changes"] == diff_tables(previous, read_tasks(find_version(layout, name, "current"))).counts()
        counts[name] = manifest["changes"]
    assert counts["COCO"] != counts["YOLO"]  # YOLO's also hold the first edit's task added and removed
