"""Resources: where tasks come from (the live server or recorded export files) and where datasets go.

`TaskSourceResource` is the interface the assets ask for; which implementation backs it is chosen
in `definitions.py` from `LSFLOW_SOURCE`.
"""

from pathlib import Path

import dagster as dg

from lsflow.core.selection import AnnotationPolicy
from lsflow.sources.base import TaskSource
from lsflow.sources.export_file import ExportFileSource
from lsflow.sources.media import LocalMedia


class TaskSourceResource(dg.ConfigurableResource):
    def open(self) -> TaskSource:
        raise NotImplementedError


class ExportFileSourceResource(TaskSourceResource):
    """Recorded exports: `<projects_dir>/<project id>/export.json` (+ `label_config.xml`)."""

    projects_dir: str = "data/sample/projects"

    def open(self) -> TaskSource:
        return ExportFileSource(Path(self.projects_dir))


class DatasetSettings(dg.ConfigurableResource):
    """Where datasets are written and how tasks become them."""

    output_root: str = "data/output"
    annotation_policy: str = "all"
    # A local copy of Label Studio's media folder (holding `upload/`), to read image sizes.
    media_root: str | None = None

    def policy(self) -> AnnotationPolicy:
        return AnnotationPolicy.parse(self.annotation_policy)

    def media(self) -> LocalMedia:
        return LocalMedia(Path(self.media_root) if self.media_root else None)
