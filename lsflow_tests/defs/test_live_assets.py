"""The Dagster assets of image, text and audio project partitions, materialized from a real Label Studio
with every registered format; both kinds of token."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from pycocotools.coco import COCO

from lsflow.core.formats import WRITERS
from lsflow.core.model.label_config import LabelConfig
from lsflow.defs.assets import FORMAT_KEYS, datasets, label_studio_snapshot, normalized_tasks
from lsflow.defs.partitions import PROJECTS_PARTITION_NAME
from lsflow.defs.resources import DatasetSettings, LabelStudioResource


def materialize(label_studio, project, output_root, api_key: str) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PROJECTS_PARTITION_NAME, [str(project.id)])
        return dg.materialize(
            [label_studio_snapshot, normalized_tasks, datasets],
            partition_key=str(project.id),
            instance=instance,
            resources={
                "task_source": LabelStudioResource(url=label_studio.url, api_key=api_key),
                "settings": DatasetSettings(output_root=str(output_root), media_root=str(label_studio.media_dir)),
            },
        )


def assert_every_format_passed(result: dg.ExecuteInProcessResult, project, includes: set[str],
                               excludes: set[str] = frozenset()) -> dict[str, dict]:
    """Every registered format that applies to the project's label config materialized (a sample of
    them named by hand: `includes`, and of the ones that cannot apply: `excludes`), all checks passed,
    every region accounted for."""
    assert result.success
    config = LabelConfig.parse(project.label_config)
    applicable = {name for name, writer in WRITERS.items() if writer.not_applicable(config) is None}
    assert includes <= applicable and not excludes & applicable
    by_key = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("datasets")}
    assert set(by_key) == {FORMAT_KEYS[name] for name in applicable}
    evaluations = result.get_asset_check_evaluations()
    assert [(e.asset_key.to_user_string(), e.check_name, e.metadata) for e in evaluations if not e.passed] == []
    assert len(evaluations) == sum(len(WRITERS[name].checks) + 1 for name in applicable)
    for name in applicable:
        metadata = by_key[FORMAT_KEYS[name]]
        written, dropped = metadata["regions_written"].value, metadata["regions_dropped"].value
        assert written + dropped == project.regions, name
        assert metadata["tasks"].value == len(project.task_ids), name
    return {name: by_key[FORMAT_KEYS[name]] for name in applicable}


def assert_snapshot_metadata(result: dg.ExecuteInProcessResult, project, output_root) -> None:
    """What the Dagster UI shows for the snapshot: its id, task count and md5 (of the file on disk)."""
    metadata = result.asset_materializations_for_node("label_studio_snapshot")[0].metadata
    export = output_root / f"project-{project.id}" / "snapshot" / "export.json"
    assert metadata["snapshot_id"].value.isdigit()
    assert metadata["task_count"].value == len(project.task_ids)
    assert metadata["md5"].value == hashlib.md5(export.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["legacy", "personal"])
def test_image_project_partition_gives_every_dataset(label_studio, image_project, tmp_path, kind):
    api_key = label_studio.legacy_token if kind == "legacy" else label_studio.personal_token
    result = materialize(label_studio, image_project, tmp_path, api_key)
    formats = assert_every_format_passed(result, image_project, {"COCO", "YOLO", "VOC", "JSON"}, {"CONLL2003"})
    assert_snapshot_metadata(result, image_project, tmp_path)
    assert formats["COCO"]["annotations_exported"].value == image_project.annotations

    coco = COCO(str(tmp_path / f"project-{image_project.id}" / "datasets" / "COCO" / "result.json"))
    images = {image["id"]: image for image in coco.dataset["images"]}
    assert {task: (image["width"], image["height"]) for task, image in images.items()} == image_project.sizes
    categories = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    by_region = {a["label_studio"]["region"]: a for a in coco.dataset["annotations"]}
    for region, (task, label, box) in image_project.boxes.items():
        annotation = by_region[region]
        assert annotation["image_id"] == task and categories[annotation["category_id"]] == label
        assert annotation["bbox"] == pytest.approx(box, abs=1e-6)
    assert not {"pcar1", "pcar5"} & set(by_region)  # predictions are not training labels


def test_text_project_partition_gives_every_dataset(label_studio, text_project, tmp_path):
    result = materialize(label_studio, text_project, tmp_path, label_studio.personal_token)
    assert_every_format_passed(result, text_project, {"CONLL2003", "JSON", "CSV"}, {"COCO", "YOLO"})
    assert_snapshot_metadata(result, text_project, tmp_path)


def test_audio_project_partition_gives_every_dataset(label_studio, audio_project, tmp_path):
    result = materialize(label_studio, audio_project, tmp_path, label_studio.legacy_token)
    assert_every_format_passed(result, audio_project, {"ASR_MANIFEST", "JSON"}, {"COCO", "CONLL2003"})
    assert_snapshot_metadata(result, audio_project, tmp_path)


def test_missing_project_fails_the_run_at_once_with_the_servers_answer(label_studio, tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PROJECTS_PARTITION_NAME, ["999999"])
        result = dg.materialize(
            [label_studio_snapshot, normalized_tasks, datasets], partition_key="999999", instance=instance,
            resources={"task_source": LabelStudioResource(url=label_studio.url, api_key=label_studio.legacy_token),
                       "settings": DatasetSettings(output_root=str(tmp_path))},
            raise_on_error=False,
        )
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "has no project 999999 (404)" in failure.event_specific_data.error.message
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # failed at once
    assert not (tmp_path / "project-999999" / "snapshot").exists()
    assert not (tmp_path / "project-999999" / "datasets").exists()


def test_dagster_command_line_materializes_a_live_partition_configured_by_the_environment(label_studio, image_project,
                                                                                       tmp_path):
    """`LSFLOW_SOURCE=label_studio`, the URL and key from the environment, never echoed."""
    (tmp_path / "home").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "LSFLOW_SOURCE": "label_studio",
           "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.personal_token,
           "LSFLOW_OUTPUT_ROOT": str(tmp_path / "out")}
    tools = Path(sys.executable).parent
    added = subprocess.run([str(tools / "lsflow"), "partitions", "add"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert added.returncode == 0, added.stderr
    assert str(image_project.id) in added.stdout.split("(new:")[1]  # every project of the server, listed live
    run = subprocess.run(
        [str(tools / "dagster"), "asset", "materialize", "-m", "lsflow.definitions", "--partition", str(image_project.id),
         "--select", "label_studio_snapshot,normalized_tasks,dataset_coco"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out" / f"project-{image_project.id}" / "datasets" / "COCO" / "result.json").is_file()
    assert label_studio.personal_token not in run.stdout + run.stderr
