"""The annotator_agreement asset: a project's store with three annotators → agreement/ and UI metadata."""

from __future__ import annotations

import dagster as dg
import pytest

from lsflow.core.incremental.store import write_store
from lsflow.core.model.task import Task
from lsflow.defs.factory import build_label_studio_defs
from lsflow.defs.resources import DatasetSettings, ExportFileSourceResource
from lsflow.project.layout import ProjectLayout
from lsflow_tests.paths import SAMPLE_PROJECTS
from lsflow_tests.test_cli_consensus import _export


def test_annotator_agreement_materializes_the_report_and_its_tables(tmp_path):
    # The store as normalized_tasks leaves it; the asset reads nothing else.
    layout = ProjectLayout(tmp_path, "7")
    write_store((Task.from_dict(raw) for raw in _export()[:2]), layout.store_dir, "image", {})
    defs = build_label_studio_defs(task_source=ExportFileSourceResource(projects_dir=str(SAMPLE_PROJECTS)),
                                   settings=DatasetSettings(output_root=str(tmp_path)), name="agr", projects=["7"])
    key = dg.AssetKey(["agr", "annotator_agreement"])
    with dg.instance_for_test() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            partition_key="7", instance=instance, asset_selection=[key])
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    # The hand-computed numbers of lsflow_tests/test_cli_agreement.py: 4 matched of 14 regions.
    assert metadata["region_f1"].value == pytest.approx(8 / 14)
    by_class = {row.data["class"]: row.data["f1"] for row in metadata["regions_by_class"].value.records}
    assert by_class == {"bird": 0.0, "cat": pytest.approx(1.0), "dog": pytest.approx(0.5)}
    pairs = {row.data["annotator_pair"]: row.data["f1"] for row in metadata["regions_by_pair"].value.records}
    assert pairs["alice@example.com / bob@example.com"] == pytest.approx(4 / 6)
    (time,) = metadata["classifications"].value.records
    assert time.data["krippendorff_alpha"] == pytest.approx(-1 / 3) and time.data["fleiss_kappa"] is None
    assert (layout.agreement_dir / "agreement.json").is_file()
    assert "## Classifications" in metadata["report_preview"].value
