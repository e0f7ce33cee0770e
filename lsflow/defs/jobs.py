"""The job lsflow's sensor and schedule run: snapshot, store and every dataset of one project."""

from collections.abc import Mapping, Sequence

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from lsflow.defs.names import Names

# The Label Studio server a run reads from: the production run queue limits runs per value (deploy/dagster.yaml).
LABEL_STUDIO_SERVER_TAG = "lsflow/label_studio_server"


def build_export_job(names: Names, assets: Sequence[dg.AssetsDefinition],
                     tags: Mapping[str, str] | None = None) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        names.job,
        selection=dg.AssetSelection.assets(*assets),
        description="Snapshot one Label Studio project, update its store and write every dataset format.",
        tags=tags,
    )

