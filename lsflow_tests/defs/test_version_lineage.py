"""From a training materialization to the dataset version it read, and from there to the annotations."""

import os
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from lsflow.core.pipeline.versions import MANIFEST_FILE, TASKS_FILE
from lsflow.defs.assets import FORMAT_KEYS, datasets, label_studio_snapshot, normalized_tasks
from lsflow.defs.partitions import PROJECTS_PARTITION_NAME
from lsflow.defs.resources import DatasetSettings, ExportFileSourceResource
from lsflow.project.layout import ProjectLayout
from lsflow.project.versions import lineage
from lsflow_tests.paths import SAMPLE_MEDIA, SAMPLE_PROJECTS


@dg.asset(deps=[FORMAT_KEYS["YOLO"]], partitions_def=datasets.partitions_def)
def train_detector(context: dg.AssetExecutionContext, settings: DatasetSettings) -> dg.MaterializeResult:
    """What a training asset does: read the dataset through its stable path, record the version it read."""
    layout = ProjectLayout(Path(settings.output_root), context.partition_key)
    version_dir = Path(os.path.realpath(layout.dataset_dir("YOLO")))  # resolved once: the run reads one version
    labels = sum(1 for _ in version_dir.glob("labels/*/*.txt"))
    return dg.MaterializeResult(metadata={"dataset_version": version_dir.name, "label_files": labels})


def test_a_training_asset_records_the_version_it_read_and_that_version_names_its_annotations(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PROJECTS_PARTITION_NAME, ["1"])
        result = dg.materialize(
            [label_studio_snapshot, normalized_tasks, datasets, train_detector], partition_key="1", instance=instance,
            resources={"task_source": ExportFileSourceResource(projects_dir=str(SAMPLE_PROJECTS)),
                       "settings": DatasetSettings(output_root=str(tmp_path), media_root=str(SAMPLE_MEDIA))},
            selection=[dg.AssetKey("label_studio_snapshot"), dg.AssetKey("normalized_tasks"), FORMAT_KEYS["YOLO"],
                       dg.AssetKey("train_detector")],
        )
    assert result.success
    yolo = next(m for m in result.asset_materializations_for_node("datasets") if m.asset_key == FORMAT_KEYS["YOLO"])
    trained = result.asset_materializations_for_node("train_detector")[0]
    version = trained.metadata["dataset_version"].value
    # The dataset's data version is the version id, and its metadata names the version's immutable path.
    assert yolo.tags["dagster/data_version"] == version == yolo.metadata["dataset_version"].value
    version_path = Path(yolo.metadata["version_path"].value)
    assert version_path.name == version and (version_path / MANIFEST_FILE).is_file()
    assert yolo.metadata["new_version"].value is True
    # From the version to the annotations: every exported annotation of the sample, with its annotator.
    layout = ProjectLayout(tmp_path, "1")
    held = lineage(layout, "YOLO", version)
    tasks = pq.read_table(version_path / TASKS_FILE).to_pylist()
    assert {(row["task_id"], row["annotation_id"]) for row in held} == {
        (task["task_id"], annotation["id"]) for task in tasks for annotation in task["annotations"]}
    assert held and all(row["annotator"] for row in held) and all(row["split"] for row in held)
