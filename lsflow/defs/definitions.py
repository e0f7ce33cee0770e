"""`defs`: the Dagster definitions of lsflow. Only wiring; see the modules it imports.

The task source is chosen with `LSFLOW_SOURCE`: `files` (default: the recorded exports under
`LSFLOW_PROJECTS_DIR`, the embedded sample unless set) or `label_studio` (a live server at
`LABEL_STUDIO_URL`, with `LABEL_STUDIO_API_KEY`; both read when a run starts, never stored).
"""

import os

import dagster as dg

from lsflow.defs.assets import datasets, label_studio_snapshot, normalized_tasks
from lsflow.defs.resources import DatasetSettings, ExportFileSourceResource, LabelStudioResource, TaskSourceResource
from lsflow.defs.schedules import full_export
from lsflow.defs.sensors import export_project, label_studio_projects

SAMPLE_PROJECTS_DIR = "data/sample/projects"
SAMPLE_MEDIA_ROOT = "data/sample/media"


def task_source_from_environment() -> TaskSourceResource:
    kind = os.environ.get("LSFLOW_SOURCE", "files")
    if kind == "files":
        return ExportFileSourceResource(projects_dir=os.environ.get("LSFLOW_PROJECTS_DIR", SAMPLE_PROJECTS_DIR))
    if kind == "label_studio":
        return LabelStudioResource(url=dg.EnvVar("LABEL_STUDIO_URL"), api_key=dg.EnvVar("LABEL_STUDIO_API_KEY"))
    raise ValueError(f"LSFLOW_SOURCE={kind!r}: expected 'files' or 'label_studio'")


def settings_from_environment() -> DatasetSettings:
    uses_sample = os.environ.get("LSFLOW_SOURCE", "files") == "files" and "LSFLOW_PROJECTS_DIR" not in os.environ
    return DatasetSettings(
        output_root=os.environ.get("LSFLOW_OUTPUT_ROOT", "data/output"),
        annotation_policy=os.environ.get("LSFLOW_ANNOTATION_POLICY", "all"),
        media_root=os.environ.get("LSFLOW_MEDIA_ROOT", SAMPLE_MEDIA_ROOT if uses_sample else None),
        workers=int(os.environ["LSFLOW_WORKERS"]) if os.environ.get("LSFLOW_WORKERS") else None,
    )


defs = dg.Definitions(
    assets=[label_studio_snapshot, normalized_tasks, datasets],
    jobs=[export_project],
    sensors=[label_studio_projects],
    schedules=[full_export],
    resources={"task_source": task_source_from_environment(), "settings": settings_from_environment()},
)
