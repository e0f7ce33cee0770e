"""Label Studio projects → partitions, and a run for each project whose tasks moved.

The sensor lists the source's projects (only the configured ids, or only titles matching a regular
expression: `LSFLOW_PROJECT_TITLE_PATTERN` for the standalone code location), adds the new ones as
dynamic partitions and requests a run of the export job for every project whose task count or newest
task change differs from what its cursor remembers.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from lsflow.defs.names import Names
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


def build_projects_sensor(
    names: Names, job: UnresolvedAssetJobDefinition, partitions_def: dg.PartitionsDefinition, *,
    project_ids: Sequence[str] | None = None, title_pattern: str | None = None,
    minimum_interval_seconds: int = 60, default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """`project_ids` set: those projects only (static partitions); else every project whose title matches
    `title_pattern` (unset: `$LSFLOW_PROJECT_TITLE_PATTERN`, read at each evaluation), added as partitions."""
    dynamic = isinstance(partitions_def, dg.DynamicPartitionsDefinition)
    wanted_ids = set(project_ids or ())
    pattern_source = "the configured project ids" if project_ids else \
        (f"title pattern {title_pattern!r}" if title_pattern else f"title filter: ${TITLE_PATTERN_ENV}, a regular expression")

    def label_studio_projects(context: dg.SensorEvaluationContext, **resources: TaskSourceResource) -> dg.SensorResult:
        task_source = resources[names.task_source]
        listed = task_source.open().list_projects()
        if wanted_ids:
            projects = [p for p in listed if p.project_id in wanted_ids]
        else:
            projects = projects_wanted(listed, title_pattern or os.environ.get(TITLE_PATTERN_ENV))
        seen = json.loads(context.cursor) if context.cursor else {}
        new: list[str] = []
        if dynamic:
            known = set(context.instance.get_dynamic_partitions(partitions_def.name))  # type: ignore[attr-defined]
            new = [p.project_id for p in projects if p.project_id not in known]
        moved = [p for p in projects if seen.get(p.project_id) != _fingerprint(p)]
        context.log.info(f"{len(projects)} projects, {len(new)} new partitions, {len(moved)} with changes")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(partition_key=p.project_id, run_key=f"{p.project_id}:{_fingerprint(p)}")
                for p in moved
            ],
            dynamic_partitions_requests=[partitions_def.build_add_request(new)] if new else [],  # type: ignore[attr-defined]
            cursor=json.dumps({**seen, **{p.project_id: _fingerprint(p) for p in projects}}, sort_keys=True),
        )

    # Dagster hands a sensor the resources its parameters name; this instance's source is named after it.
    label_studio_projects.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=dg.SensorEvaluationContext),
        inspect.Parameter(names.task_source, inspect.Parameter.KEYWORD_ONLY, annotation=TaskSourceResource),
    ])
    return dg.sensor(
        name=names.sensor,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Adds Label Studio projects as partitions and exports each project whose tasks changed ({pattern_source}).",
    )(label_studio_projects)

