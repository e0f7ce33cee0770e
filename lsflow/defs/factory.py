"""`build_label_studio_defs`: lsflow's assets, checks, job, sensor and schedule for a user's own `Definitions`.

The Component (`lsflow.components.LabelStudioDatasets`) builds its definitions through this function,
and the standalone code location (`lsflow.definitions`) is its unnamed instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg

from lsflow.defs.assets import build_assets
from lsflow.defs.jobs import build_export_job
from lsflow.defs.names import STANDALONE, Names
from lsflow.defs.partitions import project_partitions
from lsflow.defs.resources import DatasetSettings, TaskSourceResource
from lsflow.defs.schedules import DEFAULT_FULL_EXPORT_CRON, build_full_export_schedule
from lsflow.defs.sensors import build_projects_sensor


def build_label_studio_defs(
    *,
    task_source: TaskSourceResource,
    settings: DatasetSettings,
    name: str = "",
    key_prefix: Sequence[str] = (),
    group_name: str | None = None,
    formats: Sequence[str] | None = None,
    projects: Sequence[str | int] | None = None,
    project_title_pattern: str | None = None,
    sensor: bool = True,
    sensor_interval_seconds: int = 60,
    schedule: bool = True,
    full_export_cron: str = DEFAULT_FULL_EXPORT_CRON,
    automation_running: bool = False,
    run_tags: Mapping[str, str] | None = None,
) -> dg.Definitions:
    """Label Studio projects → datasets, as definitions to merge into a user's own.

    - `task_source`: `LabelStudioResource(url=dg.EnvVar("LABEL_STUDIO_URL"), api_key=dg.EnvVar("LABEL_STUDIO_API_KEY"))`
      or `ExportFileSourceResource(projects_dir=...)`; `settings`: output root, annotation policy, media, versions kept.
    - `name` tells instances apart (resources, job, sensor, schedule, partitions are prefixed with it);
      `key_prefix` (default: `[name]`) and `group_name` place the assets. Unnamed: lsflow's standalone names.
    - `formats`: Label Studio format names (default: every format lsflow writes).
    - `projects`: project ids, each a static partition; unset: dynamic partitions, added by the sensor
      for every project whose title matches `project_title_pattern` (or by `lsflow partitions add`).
    - `sensor` / `schedule`: the change sensor and the full-export schedule, included or not; they start
      stopped unless `automation_running`.
    - `run_tags`: tags of every run of the job (its sensor's, schedule's and backfills' runs), e.g.
      `LABEL_STUDIO_SERVER_TAG` for the run queue's per-server limit (deploy/).
    """
    names = Names(name=name, key_prefix=tuple(key_prefix), group_name=group_name)
    project_ids = [str(p) for p in projects] if projects else None
    if project_ids:
        partitions_def: dg.PartitionsDefinition = dg.StaticPartitionsDefinition(project_ids)
    elif names == STANDALONE:
        partitions_def = project_partitions
    else:
        partitions_def = dg.DynamicPartitionsDefinition(name=names.partitions)

    assets = build_assets(names, partitions_def, formats)
    job = build_export_job(names, assets, run_tags)
    sensors = [build_projects_sensor(
        names, job, partitions_def, project_ids=project_ids, title_pattern=project_title_pattern,
        minimum_interval_seconds=sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING if automation_running else dg.DefaultSensorStatus.STOPPED,
    )] if sensor else []
    schedules = [build_full_export_schedule(
        names, job, partitions_def, cron_schedule=full_export_cron,
        default_status=dg.DefaultScheduleStatus.RUNNING if automation_running else dg.DefaultScheduleStatus.STOPPED,
    )] if schedule else []
    return dg.Definitions(
        assets=assets, jobs=[job], sensors=sensors, schedules=schedules,
        resources={names.task_source: task_source, names.settings: settings},
    )
