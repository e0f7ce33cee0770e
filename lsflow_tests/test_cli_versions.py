"""`lsflow versions`: list, diff, lineage, pins and retention of a project's dataset versions."""

import json
import shutil

import pytest
from click.testing import CliRunner

from lsflow.cli import main
from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.project.versions import annotator_of
from lsflow.sources.export_file import ExportFileSource
from lsflow.sources.media import MediaResolver
from lsflow_tests.paths import IMAGE_PROJECT, SAMPLE_MEDIA
from lsflow_tests.project.test_incremental import edit_project

FORMAT = "YOLO"  # splits its tasks, so regions per split are train/val/test, not "all"


def build(source, root, layout=None):
    layout = layout or ProjectLayout(root, "1")
    take_project_snapshot(source, layout)
    update_store(layout)
    built = build_datasets(layout, [FORMAT], MediaResolver(SAMPLE_MEDIA, cache_dir=root / "media-cache"),
                           DatasetOptions(workers=1))
    return built.results[FORMAT].version.version_id


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Version 1 of the sample project, then version 2 after editing task 101, deleting 104, adding 500."""
    tmp = tmp_path_factory.mktemp("versions")
    project = tmp / "projects" / "1"
    shutil.copytree(IMAGE_PROJECT, project)
    source, out = ExportFileSource(project.parent), tmp / "out"
    first_export = json.loads((project / "export.json").read_text())
    v1 = build(source, out)
    edit_project(project)
    v2 = build(source, out)
    assert v1 != v2
    return {"out": out, "v1": v1, "v2": v2, "first_export": first_export,
            "second_export": json.loads((project / "export.json").read_text())}


def run(built, *args, code=0):
    result = CliRunner().invoke(main, ["versions", *args, "--root", str(built["out"])])
    assert result.exit_code == code, result.output
    return result


def as_json(built, *args):
    return json.loads(run(built, *args, "--json").output)


def test_list_shows_both_versions_newest_first_with_their_changes(built):
    listed = as_json(built, "list", "1", "yolo")
    assert listed["format"] == FORMAT
    newest, oldest = listed["versions"]
    assert (newest["version"], oldest["version"]) == (built["v2"], built["v1"])
    assert (newest["current"], oldest["current"]) == (True, False)
    assert not newest["pinned"] and not oldest["pinned"]
    assert oldest["changes"] is None and newest["previous_version"] == built["v1"]
    assert newest["tasks"] == oldest["tasks"] == 8  # one task deleted, one added
    assert set(newest["regions_per_split"]) <= {"train", "val", "test"} and sum(newest["regions_per_split"].values()) > 0

    text = run(built, "list", "1", FORMAT).output
    assert built["v1"] in text and built["v2"] in text and "current" in text


def test_list_shows_the_changes_from_the_previous_version(built):
    newest = as_json(built, "list", "1", FORMAT)["versions"][0]
    assert newest["changes"] == {"tasks_added": 1, "tasks_removed": 1, "tasks_changed": 1,
                                 "annotations_added": 1, "annotations_removed": 0, "annotations_edited": 1}
    assert "tasks +1 -1 ~1, annotations +1 -0 ~1" in run(built, "list", "1", FORMAT).output


def test_diff_reports_the_tasks_and_annotations_changed(built):
    diff = as_json(built, "diff", "1", FORMAT, built["v1"][:8], "current")
    assert (diff["from"], diff["to"]) == (built["v1"], built["v2"])
    assert (diff["tasks_added"], diff["tasks_removed"], diff["tasks_changed"]) == ([500], [104], [101])
    edited = next(t for t in built["second_export"] if t["id"] == 101)["annotations"][0]
    added = [a for a in next(t for t in built["second_export"] if t["id"] == 500)["annotations"]
             if not a["was_cancelled"]]
    assert diff["annotations_edited"] == [{"task_id": 101, "annotation_id": edited["id"],
                                           "annotator": annotator_of(edited["completed_by"]),
                                           "updated_at": edited["updated_at"]}]
    assert [(a["task_id"], a["annotation_id"], a["annotator"]) for a in diff["annotations_added"]] == \
           [(500, a["id"], annotator_of(a["completed_by"])) for a in added]
    assert diff["annotations_removed"] == []  # task 104 had no annotations
    for row in diff["classes"]:
        assert row["before"] == diff["classes_before"].get(row["split"], {}).get(row["class"], 0)
        assert row["delta"] == row["after"] - row["before"]

    text = run(built, "diff", "1", FORMAT, built["v1"], built["v2"]).output
    assert "tasks added (1): 500" in text and "tasks removed (1): 104" in text and "tasks changed (1): 101" in text
    assert "SPLIT" in text and "DELTA" in text


def test_lineage_names_the_annotations_of_a_task_as_in_the_export(built):
    lineage = as_json(built, "lineage", "1", FORMAT, built["v1"], "--task", "101")
    task = next(t for t in built["first_export"] if t["id"] == 101)
    expected = [(101, a["id"], annotator_of(a["completed_by"]), a["updated_at"], a["ground_truth"])
                for a in task["annotations"] if not a["was_cancelled"]]
    assert [(r["task_id"], r["annotation_id"], r["annotator"], r["updated_at"], r["ground_truth"])
            for r in lineage["annotations"]] == expected
    assert lineage["version"] == built["v1"] and all(r["split"] in {"train", "val", "test"} for r in lineage["annotations"])

    result = run(built, "lineage", "1", FORMAT, built["v1"], "--task", "999999", code=1)
    assert "task 999999 is not in version" in result.output


def test_unknown_version_project_or_format_fails_with_a_message(built):
    result = run(built, "lineage", "1", FORMAT, "nope", code=1)
    assert "project 1 YOLO: 'nope' is not a version of it" in result.output
    assert "no project folder" in run(built, "list", "42", FORMAT, code=1).output
    assert "1 COCO: no versions" in run(built, "list", "1", "COCO", code=1).output
    result = CliRunner().invoke(main, ["versions", "list", "1", FORMAT, "--root", str(built["out"]),
                                       "--path", str(built["out"])])
    assert result.exit_code == 2 and "mutually exclusive" in result.output


def test_a_pinned_version_survives_pruning_and_an_unpinned_one_does_not(built, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(built["out"], out, symlinks=True)
    copy = {**built, "out": out}
    run(copy, "pin", "1", FORMAT, built["v1"][:10])
    assert [v["pinned"] for v in as_json(copy, "list", "1", FORMAT)["versions"]] == [False, True]
    assert as_json(copy, "prune", "1", FORMAT, "--keep", "1")["removed"] == []
    assert [v["version"] for v in as_json(copy, "list", "1", FORMAT)["versions"]] == [built["v2"], built["v1"]]

    run(copy, "unpin", "1", FORMAT, built["v1"])
    result = run(copy, "prune", "1", FORMAT, "--keep", "1")
    assert built["v1"] in result.output
    assert [v["version"] for v in as_json(copy, "list", "1", FORMAT)["versions"]] == [built["v2"]]
    assert (ProjectLayout(out, "1").dataset_dir(FORMAT) / "data.yaml").is_file()  # the current one is whole


def test_an_export_folder_is_read_with_path(tmp_path):
    project = tmp_path / "projects" / "1"
    shutil.copytree(IMAGE_PROJECT, project)
    folder = tmp_path / "export"
    version = build(ExportFileSource(project.parent), tmp_path, ProjectLayout.for_export_path(folder, "1"))
    result = CliRunner().invoke(main, ["versions", "list", "1", FORMAT, "--path", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    assert [v["version"] for v in json.loads(result.output)["versions"]] == [version]
