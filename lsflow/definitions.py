"""lsflow's Dagster definitions, the module Dagster loads: `dagster dev -m lsflow.definitions`.

The standalone code location: `build_label_studio_defs` with lsflow's own names, configured by
environment variables (see `lsflow.defs.resources`). Inside a user's project, use the Component
(`lsflow.components.LabelStudioDatasets`) or call `build_label_studio_defs` there (docs/dagster.md).
"""

import os

import dagster as dg

from lsflow.defs.factory import build_label_studio_defs
from lsflow.defs.resources import settings_from_environment, task_source_from_environment
from lsflow.defs.schedules import DEFAULT_FULL_EXPORT_CRON, FULL_EXPORT_CRON_ENV


@dg.definitions
def defs() -> dg.Definitions:
    return build_label_studio_defs(
        task_source=task_source_from_environment(),
        settings=settings_from_environment(),
        full_export_cron=os.environ.get(FULL_EXPORT_CRON_ENV, DEFAULT_FULL_EXPORT_CRON),
    )
