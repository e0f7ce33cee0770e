"""lsflow's Dagster definitions, the module Dagster loads: `dagster dev -m lsflow.definitions`.

Only wiring; see `lsflow.defs` for the assets, checks, resources, jobs, sensors and schedules.
"""

import dagster as dg

from lsflow.defs.assets import datasets, label_studio_snapshot, normalized_tasks
from lsflow.defs.jobs import export_project
from lsflow.defs.resources import settings_from_environment, task_source_from_environment
from lsflow.defs.schedules import full_export
from lsflow.defs.sensors import label_studio_projects


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[label_studio_snapshot, normalized_tasks, datasets],
        jobs=[export_project],
        sensors=[label_studio_projects],
        schedules=[full_export],
        resources={"task_source": task_source_from_environment(), "settings": settings_from_environment()},
    )
