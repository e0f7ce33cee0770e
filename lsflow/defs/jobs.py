"""The job lsflow's sensor and schedule run: snapshot, store and every dataset of one project."""

from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from lsflow.defs.names import Names


def build_export_job(names: Names, assets: Sequence[dg.AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        names.job,
        selection=dg.AssetSelection.assets(*assets),
        description="Snapshot one Label Studio project, update its store and write every dataset format.",
    )

