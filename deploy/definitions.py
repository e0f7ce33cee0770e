"""The production code location: lsflow's standalone definitions, every step run on a Celery worker.

The code server loads this file (`dagster code-server start -f deploy/definitions.py`, docs/deploy.md);
the Celery workers import it again for each step, so they need the same code, environment and
DAGSTER_HOME. The task source and settings come from the environment as in `lsflow.definitions`;
`LSFLOW_FORMATS` (comma-separated Label Studio format names) narrows the formats written.
"""

import os

import dagster as dg
from dagster_celery import celery_executor

from lsflow.defs.factory import build_label_studio_defs
from lsflow.defs.jobs import LABEL_STUDIO_SERVER_TAG
from lsflow.defs.resources import SAMPLE_PROJECTS_DIR, settings_from_environment, task_source_from_environment
from lsflow.defs.schedules import DEFAULT_FULL_EXPORT_CRON, FULL_EXPORT_CRON_ENV

# Steps go to the workers listening on this broker (Redis); they return their events through the backend.
CELERY = celery_executor.configured(
    {"broker": {"env": "LSFLOW_CELERY_BROKER"}, "backend": {"env": "LSFLOW_CELERY_BACKEND"}}, name="celery"
)


def label_studio_server() -> str:
    """Where this location's tasks come from, a run tag the run queue limits per value (never a token)."""
    source = os.environ.get("LSFLOW_SOURCE", "files")
    if source == "label_studio":
        return os.environ["LABEL_STUDIO_URL"]
    if source == "target_storage":
        return os.environ["LSFLOW_STORAGE_URL"]
    return "files:" + os.path.abspath(os.environ.get("LSFLOW_PROJECTS_DIR", SAMPLE_PROJECTS_DIR))


@dg.definitions
def defs() -> dg.Definitions:
    formats = [name.strip() for name in os.environ.get("LSFLOW_FORMATS", "").split(",") if name.strip()]
    lsflow_defs = build_label_studio_defs(
        task_source=task_source_from_environment(),
        settings=settings_from_environment(),
        formats=formats or None,
        full_export_cron=os.environ.get(FULL_EXPORT_CRON_ENV, DEFAULT_FULL_EXPORT_CRON),
        run_tags={LABEL_STUDIO_SERVER_TAG: label_studio_server()},
    )
    return dg.Definitions.merge(lsflow_defs, dg.Definitions(executor=CELERY))
