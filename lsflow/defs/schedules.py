"""A periodic full export of every project partition, a safety net beside the change sensor.

Full (run tag `lsflow/full_export=true`), not incremental: it re-reads every task, so whatever an
incremental snapshot could not see (e.g. a change to the label config) is picked up too.
The standalone code location's cron comes from `LSFLOW_FULL_EXPORT_CRON` (default: daily at 02:00);
schedules are stopped until started in the UI unless configured otherwise.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from lsflow.defs.assets import FULL_EXPORT_TAG
from lsflow.defs.names import Names

FULL_EXPORT_CRON_ENV = "LSFLOW_FULL_EXPORT_CRON"
DEFAULT_FULL_EXPORT_CRON = "0 2 * * *"


def build_full_export_schedule(
    names: Names, job: UnresolvedAssetJobDefinition, partitions_def: dg.PartitionsDefinition, *,
    cron_schedule: str = DEFAULT_FULL_EXPORT_CRON,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=names.schedule,
        job=job,
        cron_schedule=cron_schedule,
        default_status=default_status,
        description="Full export of every project partition.",
    )
    def full_export(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
        return [
            dg.RunRequest(partition_key=project_id, run_key=f"full:{project_id}:{day}", tags={FULL_EXPORT_TAG: "true"})
            for project_id in partitions_def.get_partition_keys(dynamic_partitions_store=context.instance)
        ]

    return full_export

