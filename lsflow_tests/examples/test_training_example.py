"""examples/label_studio_training, a user's own dg project: it loads, and its whole graph materializes
on the embedded sample, the training asset recording the dataset version it trained on."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from lsflow.core.pipeline.versions import TASKS_FILE
from lsflow.project.layout import ProjectLayout
from lsflow.project.versions import lineage
from lsflow_tests.dg_project import copy_example, launch_everything, project_env, run_dg

DATASET = dg.AssetKey(["label_studio", "dataset_yolo_with_images"])


def test_dg_check_defs_validates_the_component_yaml_and_loads_the_definitions(tmp_path):
    project = copy_example(tmp_path / "example")
    result = run_dg(project, project_env(project, tmp_path / "home"), "check", "defs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_the_whole_graph_materializes_and_the_model_names_the_dataset_version_it_trained_on(tmp_path):
    project = copy_example(tmp_path / "example")
    env = project_env(project, tmp_path / "home")
    launch_everything(project, env, "1")

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        def newest(key: dg.AssetKey) -> dict:
            (record,) = instance.fetch_materializations(key, limit=1).records
            return {k: v.value for k, v in record.asset_materialization.metadata.items()}

        dataset = newest(DATASET)
        trained = newest(dg.AssetKey("crop_classifier"))
        coco = newest(dg.AssetKey(["label_studio", "dataset_coco"]))
    # The model records the exact, immutable version it read: the dataset asset's version.
    assert trained["dataset_versions"] == {"1": dataset["dataset_version"]}
    version_path = Path(trained["dataset_paths"]["1"])
    assert version_path == Path(dataset["version_path"]) and version_path.is_relative_to(project)
    assert coco["regions_written"] > 0
    # A real fit: every class of the sample's boxes, crops from the train split, seconds not minutes.
    assert trained["classes"] == ["Car", "Person", "Road"]
    assert trained["train_crops"] > 0 and trained["held_out_crops"] > 0
    assert 0 < trained["training_seconds"] < 60
    assert Path(trained["model"]).is_file() and Path(trained["model"]).is_relative_to(project)
    print(f"crop_classifier trained in {trained['training_seconds']} s on version {dataset['dataset_version']}")

    # From the version the model names to the annotations it holds.
    held = lineage(ProjectLayout(project / "data" / "lsflow", "1"), "YOLO_WITH_IMAGES", dataset["dataset_version"])
    tasks = pq.read_table(version_path / TASKS_FILE).to_pylist()
    assert held and {(row["task_id"], row["annotation_id"]) for row in held} == {
        (task["task_id"], annotation["id"]) for task in tasks for annotation in task["annotations"]}
    assert json.loads((version_path / "lsflow_version.json").read_text())["format"] == "YOLO_WITH_IMAGES"

