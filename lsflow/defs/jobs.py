"""The jobs lsflow's sensor and schedule run."""

import dagster as dg

from lsflow.defs.assets import datasets, label_studio_snapshot, normalized_tasks

export_project = dg.define_asset_job(
    "export_project",
    selection=dg.AssetSelection.assets(label_studio_snapshot, normalized_tasks, datasets),
    description="Snapshot one Label Studio project, update its store and write every dataset format.",
)
