"""examples/label_studio_training, a user's own dg project: it loads, and its whole graph materializes
on the embedded sample, the training asset recording the dataset version it trained on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from lsflow.core.pipeline.versions import TASKS_FILE
from lsflow.project.layout import ProjectLayout
from lsflow.project.versions import lineage
from lsflow_tests.paths import REPO_ROOT, SAMPLE_MEDIA, SAMPLE_PROJECTS

EXAMPLE = REPO_ROOT / "examples" / "label_studio_training"
TOOLS = Path(sys.executable).parent
DATASET = dg.AssetKey(["label_studio", "dataset_yolo_with_images"])


def copy_example(target: Path) -> Path:
    """The example, outside the repository, reading the repository's sample by absolute path."""
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "*.egg-info", "__pycache__"))
    defs_yaml = target / "src" / "label_studio_training" / "defs" / "label_studio" / "defs.yaml"
    text = defs_yaml.read_text()
    text = text.replace("../../data/sample/projects", str(SAMPLE_PROJECTS)).replace("../../data/sample/media", str(SAMPLE_MEDIA))
    defs_yaml.write_text(text)
    return target


def example_env(project: Path, dagster_home: Path) -> dict[str, str]:
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # The copy's package comes before the installed (editable) one, which points into the repository.
    return {**os.environ, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(project / "src")}


def test_dg_check_defs_validates_the_component_yaml_and_loads_the_definitions(tmp_path):
    project = copy_example(tmp_path / "example")
    result = subprocess.run([str(TOOLS / "dg"), "check", "defs"], cwd=project, env=example_env(project, tmp_path / "home"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_the_whole_graph_materializes_and_the_model_names_the_dataset_version_it_trained_on(tmp_path):
    project = copy_example(tmp_path / "example")
    env = example_env(project, tmp_path / "home")
    run = subprocess.run([str(TOOLS / "dg"), "launch", "--assets", "*", "--partition", "1"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "RUN_SUCCESS" in run.stdout + run.stderr, (run.stdout + run.stderr)[-4000:]

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

