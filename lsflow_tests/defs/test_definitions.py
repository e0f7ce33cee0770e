"""The Dagster graph: lineage that must not be cut by a refactor, and a real run of the sample."""

import dagster as dg
import pytest

from lsflow.core.formats import WRITERS
from lsflow.definitions import defs
from lsflow.defs.assets import datasets, label_studio_snapshot, normalized_tasks
from lsflow.defs.partitions import PROJECTS_PARTITION_NAME
from lsflow.defs.resources import DatasetSettings, ExportFileSourceResource, settings_from_environment
from lsflow_tests.paths import SAMPLE_MEDIA, SAMPLE_PROJECTS


def test_the_definitions_module_gives_the_definitions():
    assert isinstance(defs(), dg.Definitions)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LSFLOW_WORKERS", "3")
    monkeypatch.setenv("LSFLOW_ANNOTATION_POLICY", "latest")
    settings = settings_from_environment()
    assert (settings.workers, settings.annotation_policy) == (3, "latest")
    monkeypatch.delenv("LSFLOW_WORKERS")
    assert settings_from_environment().workers is None  # one process a usable core

# The formats an image project's label config cannot fill.
IMAGE_PROJECT_SKIPS = {"CONLL2003", "SPACY", "ASR_MANIFEST", "MOT", "YOLO_VIDEO", "YOLO_OBB_VIDEO", "COCO_VIDEO",
                       "VIDEO_SEGMENTS", "AUDIO_SEGMENTS", "RTTM", "TIMESERIES_PARQUET"}


def test_every_format_is_an_asset_downstream_of_the_store_with_its_checks():
    graph = defs().resolve_asset_graph()
    snapshot, store = dg.AssetKey("label_studio_snapshot"), dg.AssetKey("normalized_tasks")
    shards = dg.AssetKey("dataset_shards")
    assert graph.get(store).parent_keys == {snapshot}
    assert graph.get(shards).parent_keys == {store}
    for name, writer in WRITERS.items():
        key = dg.AssetKey(f"dataset_{name.lower()}")
        assert graph.get(key).parent_keys == {store, shards}
        checks = {check.name for check in graph.get_check_keys_for_assets({key})}
        assert checks == {"region_accounting"} | {spec.name for spec in writer.checks}


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PROJECTS_PARTITION_NAME, ["1"])
        yield instance


def test_sample_partition_materializes_with_every_check_passing(instance, tmp_path):
    result = dg.materialize(
        [label_studio_snapshot, normalized_tasks, datasets],
        partition_key="1",
        instance=instance,
        resources={
            "task_source": ExportFileSourceResource(projects_dir=str(SAMPLE_PROJECTS)),
            "settings": DatasetSettings(output_root=str(tmp_path), media_root=str(SAMPLE_MEDIA)),
        },
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    # An image project: the text, audio, video and time-series formats are skipped, every other one
    # materialized and checked.
    skipped = IMAGE_PROJECT_SKIPS
    assert len(evaluations) == sum(len(w.checks) + 1 for n, w in WRITERS.items() if n not in skipped)
    materialized = {m.asset_key for m in result.asset_materializations_for_node("datasets")}
    assert materialized == {dg.AssetKey(f"dataset_{n.lower()}") for n in WRITERS if n not in skipped}

    snapshot_metadata = result.asset_materializations_for_node("label_studio_snapshot")[0].metadata
    assert snapshot_metadata["task_count"].value >= 5 and len(snapshot_metadata["md5"].value) == 32
    coco = next(m for m in result.asset_materializations_for_node("datasets")
                if m.asset_key == dg.AssetKey("dataset_coco"))
    assert coco.metadata["regions_written"].value > 0
    assert coco.metadata["snapshot_id"].value == snapshot_metadata["snapshot_id"].value
    assert (tmp_path / "project-1" / "datasets" / "COCO" / "result.json").is_file()


def test_unchanged_snapshot_gives_the_same_data_versions(instance, tmp_path):
    resources = {
        "task_source": ExportFileSourceResource(projects_dir=str(SAMPLE_PROJECTS)),
        "settings": DatasetSettings(output_root=str(tmp_path)),
    }

    store_metadata = []

    def versions():
        result = dg.materialize([label_studio_snapshot, normalized_tasks, datasets], partition_key="1",
                                instance=instance, resources=resources)
        store_metadata.append({k: v.value for k, v in
                               result.asset_materializations_for_node("normalized_tasks")[0].metadata.items()})
        return {m.asset_key: m.tags.get("dagster/data_version") for m in
                (e.event_specific_data.materialization for e in result.get_asset_materialization_events())}

    first = versions()
    assert len(first) == 2 + len(WRITERS) - len(IMAGE_PROJECT_SKIPS) and all(first.values())
    second = versions()
    counts = ("mode", "new_tasks", "changed_tasks", "deleted_tasks")
    assert [tuple(m[k] for k in counts) for m in store_metadata] == [("full", 8, 0, 0), ("incremental", 0, 0, 0)]
    assert store_metadata[1]["unchanged_tasks"] >= 1  # the newest task, inside the watermark's overlap
    # The second snapshot holds only the tasks changed since the first (incremental); the store and
    # every dataset built from it are the same, so nothing downstream has a reason to run again.
    snapshot = dg.AssetKey("label_studio_snapshot")
    assert {k: v for k, v in second.items() if k != snapshot} == {k: v for k, v in first.items() if k != snapshot}


def test_partitions_add_registers_the_source_projects_once(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from lsflow.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("LSFLOW_PROJECTS_DIR", str(SAMPLE_PROJECTS))
    first = CliRunner().invoke(main, ["partitions", "add"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, ["partitions", "add", "1"])
    assert "(new: none)" in again.output
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        registered = instance.get_dynamic_partitions(PROJECTS_PARTITION_NAME)
    assert "1" in registered
    assert sorted(registered) == sorted(p.name for p in SAMPLE_PROJECTS.iterdir() if (p / "export.json").is_file())


def test_a_failing_non_blocking_check_warns_and_a_blocking_one_errs():
    from lsflow.core.formats.base import CheckOutcome
    from lsflow.defs.metadata import check_result

    key = dg.AssetKey("dataset_yolo")
    layout = check_result(key, CheckOutcome("ultralytics_layout", False, ["the val split has no images"]), "YOLO")
    rows = check_result(key, CheckOutcome("yolo_rows_valid", False, ["x"]), "YOLO")
    assert layout.severity == dg.AssetCheckSeverity.WARN
    assert rows.severity == dg.AssetCheckSeverity.ERROR
