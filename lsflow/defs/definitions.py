"""`defs`: the Dagster definitions of lsflow. Only wiring; see the modules it imports.

The task source is chosen with `LSFLOW_SOURCE`: `files` (default: the recorded exports under
`LSFLOW_PROJECTS_DIR`, the embedded sample unless set).
"""

import os

import dagster as dg

from lsflow.defs.assets import datasets, label_studio_snapshot, normalized_tasks
from lsflow.defs.resources import DatasetSettings, ExportFileSourceResource, TaskSourceResource

SAMPLE_PROJECTS_DIR = "data/sample/projects"
SAMPLE_MEDIA_ROOT = "data/sample/media"


def task_source_from_environment() -> TaskSourceResource:
    kind = os.environ.get("LSFLOW_SOURCE", "files")
    if kind == "files":
        return ExportFileSourceResource(projects_dir=os.environ.get("LSFLOW_PROJECTS_DIR", SAMPLE_PROJECTS_DIR))
    raise ValueError(f"LSFLOW_SOURCE={kind!r}: expected 'files'")


def settings_from_environment() -> DatasetSettings:
    uses_sample = os.environ.get("LSFLOW_SOURCE", "files") == "files" and "LSFLOW_PROJECTS_DIR" not in os.environ
    return DatasetSettings(
        output_root=os.environ.get("LSFLOW_OUTPUT_ROOT", "data/output"),
        annotation_policy=os.environ.get("LSFLOW_ANNOTATION_POLICY", "all"),
        media_root=os.environ.get("LSFLOW_MEDIA_ROOT", SAMPLE_MEDIA_ROOT if uses_sample else None),
    )


defs = dg.Definitions(
    assets=[label_studio_snapshot, normalized_tasks, datasets],
    resources={"task_source": task_source_from_environment(), "settings": settings_from_environment()},
)
