"""The Dagster Component lsflow ships: Label Studio datasets inside a user's own `dg` project.

Listed by `dg list components` (entry point `dagster_dg_cli.registry_modules` in lsflow's pyproject.toml).
A `defs.yaml` configures an instance; every attribute is in docs/dagster.md:

    type: lsflow.components.LabelStudioDatasets
    attributes:
      url: "{{ env.LABEL_STUDIO_URL }}"
      api_key_env_var: LABEL_STUDIO_API_KEY
      projects: [12, 14]
      formats: [YOLO_WITH_IMAGES, COCO]

Users who build `Definitions` in Python call `build_label_studio_defs`, re-exported here with the
resources it takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from lsflow.defs.factory import build_label_studio_defs
from lsflow.defs.resources import (
    DatasetSettings,
    ExportFileSourceResource,
    LabelStudioResource,
    TargetStorageResource,
    TaskSourceResource,
)
from lsflow.defs.schedules import DEFAULT_FULL_EXPORT_CRON
from lsflow.project.versions import KEEP_VERSIONS

__all__ = ["DatasetSettings", "ExportFileSourceResource", "LabelStudioDatasets", "LabelStudioResource",
           "TargetStorageResource", "build_label_studio_defs"]


class LabelStudioDatasets(dg.Component, dg.Model, dg.Resolvable):
    """Label Studio projects as partitioned datasets: snapshot → normalized store → one asset per format,
    with their checks, dataset versions, an export job, a change sensor and a full-export schedule."""

    name: str | None = Field(
        None, description="Tells instances apart (resources, job, sensor, schedule, partitions and the default "
        "asset key prefix are named after it). Default: the name of the folder holding this defs.yaml.")
    source: Literal["label_studio", "files", "target_storage"] = Field(
        "label_studio", description="`label_studio`: a live server, through its Snapshot API; `files`: recorded "
        "exports, `<projects_dir>/<project id>/export.json` (+ label_config.xml); `target_storage`: the objects "
        "Label Studio syncs to `storage_url`.")
    url: str | None = Field(
        None, description="The Label Studio URL, e.g. \"{{ env.LABEL_STUDIO_URL }}\". Default: $LABEL_STUDIO_URL "
        "read when a run starts.")
    api_key_env_var: str = Field(
        "LABEL_STUDIO_API_KEY", description="The environment variable holding the API key (legacy token or personal "
        "access token). Named, not templated: Dagster reads it when a run starts (dg.EnvVar), so the key never "
        "appears in YAML, run config or the UI.")
    projects_dir: str | None = Field(
        None, description="For `source: files`: the folder of recorded exports; relative to the dg project's root.")
    storage_url: str | None = Field(
        None, description="For `source: target_storage`: file://, s3://, gs:// or azure:// and the prefix Label Studio "
        "writes to, `{project}` standing for the project id. Cloud credentials from the environment.")
    storage_label_config: str | None = Field(
        None, description="For `source: target_storage`: the labeling config's file (`{project}` for the id), since "
        "target storage holds none; relative to the dg project's root.")
    storage_options: dict[str, str] = Field(
        {}, description="For `source: target_storage`: fsspec options that are not secrets, e.g. endpoint_url.")
    projects: list[int | str] | None = Field(
        None, description="Project ids, each a static partition. Unset: projects are dynamic partitions, added by "
        "the sensor (every project, or those matching `project_title_pattern`).")
    project_title_pattern: str | None = Field(
        None, description="A regular expression: the sensor adds only projects whose title matches.")
    formats: list[str] | None = Field(
        None, description="Label Studio format names (COCO, YOLO, YOLO_WITH_IMAGES, ...). Default: every format.")
    annotation_policy: str = Field(
        "all", description="Which annotations of a task are exported: all | latest | ground_truth_first | "
        "annotator:<id or email>.")
    output_root: str = Field(
        "data/lsflow", description="Where project folders go (`project-<id>/datasets/<FORMAT>/`); relative to "
        "the dg project's root.")
    media_root: str | None = Field(
        None, description="A local copy of Label Studio's media folder (holding upload/); relative to the dg "
        "project's root.")
    local_files_root: str | None = Field(
        None, description="Label Studio's LOCAL_FILES_DOCUMENT_ROOT, for /data/local-files/ media (default: that "
        "environment variable).")
    media_allowed_hosts: list[str] = Field(
        [], description="Hosts and buckets besides Label Studio that task media may be downloaded from "
        "(`host`, `host:port`, `*.example.com`, `s3://bucket[/prefix]`, `gs://...`, `azure-blob://...`).")
    writer_options: dict[str, str] = Field(
        {}, description="Format options, as `lsflow convert --option NAME=VALUE` (e.g. coco_first_category_id: \"0\").")
    keep_versions: int = Field(KEEP_VERSIONS, description="Dataset versions kept per format besides pinned ones.")
    workers: int | None = Field(None, description="Processes writing a partition's tasks; unset: one per usable core.")
    key_prefix: list[str] | None = Field(None, description="Asset key prefix. Default: [name].")
    group_name: str | None = Field(
        None, description="One asset group for all assets. Default: `label_studio` (snapshot, store) and `datasets`.")
    sensor: bool = Field(True, description="Include the sensor that exports projects whose tasks changed.")
    sensor_interval_seconds: int = Field(60, description="How often the sensor asks Label Studio.")
    schedule: bool = Field(True, description="Include the full-export schedule.")
    full_export_cron: str = Field(DEFAULT_FULL_EXPORT_CRON, description="When the full export runs.")
    automation_running: bool = Field(
        False, description="Start the sensor and schedule running; default: stopped until started in the UI.")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        def under_root(path: str) -> str:
            return str(context.project_root / Path(path))

        return build_label_studio_defs(
            task_source=self._task_source(under_root),
            settings=DatasetSettings(
                output_root=under_root(self.output_root), annotation_policy=self.annotation_policy,
                media_root=under_root(self.media_root) if self.media_root else None,
                local_files_root=self.local_files_root, media_allowed_hosts=self.media_allowed_hosts,
                writer_options=self.writer_options,
                keep_versions=self.keep_versions, workers=self.workers,
            ),
            name=self.name or context.path.name.replace("-", "_"),
            key_prefix=self.key_prefix or (),
            group_name=self.group_name,
            formats=self.formats,
            projects=self.projects,
            project_title_pattern=self.project_title_pattern,
            sensor=self.sensor,
            sensor_interval_seconds=self.sensor_interval_seconds,
            schedule=self.schedule,
            full_export_cron=self.full_export_cron,
            automation_running=self.automation_running,
        )

    def _task_source(self, under_root) -> TaskSourceResource:
        if self.source == "target_storage":
            if not self.storage_url:
                raise ValueError("source: target_storage needs storage_url, where Label Studio syncs the project's tasks")
            return TargetStorageResource(
                url=self.storage_url, storage_options=self.storage_options,
                label_config=under_root(self.storage_label_config) if self.storage_label_config else None)
        if self.source == "files":
            if not self.projects_dir:
                raise ValueError("source: files needs projects_dir, the folder of <project id>/export.json")
            return ExportFileSourceResource(projects_dir=under_root(self.projects_dir))
        return LabelStudioResource(url=self.url or dg.EnvVar("LABEL_STUDIO_URL"), api_key=dg.EnvVar(self.api_key_env_var))
