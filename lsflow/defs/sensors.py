"""Label Studio projects → partitions, and a run for each project whose tasks moved.

The sensor lists the source's projects (optionally only titles matching `LSFLOW_PROJECT_TITLE_PATTERN`,
a regular expression), adds the new ones as dynamic partitions and requests a run of `export_project`
for every project whose task count or newest task change differs from what its cursor remembers.
"""

from __future__ import annotations

import json
import os
import re

import dagster as dg

from lsflow.defs.jobs import export_project
from lsflow.defs.partitions import PROJECTS_PARTITION_NAME, project_partitions
from lsflow.defs.resources import TaskSourceResource
from lsflow.sources.base import ProjectInfo

TITLE_PATTERN_ENV = "LSFLOW_PROJECT_TITLE_PATTERN"

def _fingerprint(project: ProjectInfo) -> str:
    return f"{project.task_count}|{project.changed_at}"


def projects_wanted(projects: list[ProjectInfo], title_pattern: str | None) -> list[ProjectInfo]:
    if not title_pattern:
        return projects
    pattern = re.compile(title_pattern)
    return [p for p in projects if pattern.search(p.title)]


@dg.sensor(
    job=export_project,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Adds Label Studio projects as partitions and exports each project whose tasks changed "
    f"(title filter: ${TITLE_PATTERN_ENV}, a regular expression).",
)
def label_studio_projects(context: dg.SensorEvaluationContext, task_source: TaskSourceResource) -> dg.SensorResult:
    projects = projects_wanted(task_source.open().list_projects(), os.environ.get(TITLE_PATTERN_ENV))
    seen = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(PROJECTS_PARTITION_NAME))
    new = [p.project_id for p in projects if p.project_id not in known]
    moved = [p for p in projects if seen.get(p.project_id) != _fingerprint(p)]
    context.log.info(f"{len(projects)} projects, {len(new)} new partitions, {len(moved)} with changes")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=p.project_id, run_key=f"{p.project_id}:{_fingerprint(p)}")
            for p in moved
        ],
        dynamic_partitions_requests=[project_partitions.build_add_request(new)] if new else [],
        cursor=json.dumps({**seen, **{p.project_id: _fingerprint(p) for p in projects}}, sort_keys=True),
    )
