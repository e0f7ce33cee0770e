"""A periodic full export of every project partition, a safety net beside the change sensor.

Full (run tag `lsflow/full_export=true`), not incremental: it re-reads every task, so whatever an
incremental snapshot could not see (e.g. a change to the label config) is picked up too.
Cron from `LSFLOW_FULL_EXPORT_CRON` (default: daily at 02:00); stopped until started in the UI.
"""

from __future__ import annotations

import os

import dagster as dg

from lsflow.defs.assets import FULL_EXPORT_TAG
from lsflow.defs.jobs import export_project
from lsflow.defs.partitions import PROJECTS_PARTITION_NAME

FULL_EXPORT_CRON_ENV = "LSFLOW_FULL_EXPORT_CRON"


@dg.schedule(
    job=export_project,
    cron_schedule=os.environ.get(FULL_EXPORT_CRON_ENV, "0 2 * * *"),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Full export of every project partition.",
)
def full_export(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    return [
        dg.RunRequest(partition_key=project_id, run_key=f"full:{project_id}:{day}", tags={FULL_EXPORT_TAG: "true"})
        for project_id in context.instance.get_dynamic_partitions(PROJECTS_PARTITION_NAME)
    ]
