"""Resources: where tasks come from (the live server or recorded export files) and where datasets go.

`TaskSourceResource` is the interface the assets ask for; which implementation backs it is chosen
in `definitions.py` from `LSFLOW_SOURCE`.
"""

from pathlib import Path

import dagster as dg

from lsflow.core.selection import AnnotationPolicy
from lsflow.sources.base import TaskSource
from lsflow.sources.export_file import ExportFileSource
from lsflow.sources.media import MediaResolver
from lsflow.sources.media_download import DownloadLimits

_DEFAULT_LIMITS = DownloadLimits()


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
    # Task media: Label Studio's URL and token come from LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY (never
    # config, so the token stays out of the UI), the local-files root from LOCAL_FILES_DOCUMENT_ROOT
    # unless set here. Downloads go to the cache only from Label Studio and the allowed hosts/buckets
    # (`host`, `host:port`, `*.example.com`, `s3://bucket[/prefix]`, `gs://…`, `azure-blob://…`).
    local_files_root: str | None = None
    media_allowed_hosts: list[str] = []
    media_cache_dir: str | None = None  # default: $LSFLOW_MEDIA_CACHE or ~/.cache/lsflow/media
    media_max_bytes: int = _DEFAULT_LIMITS.max_bytes
    media_timeout_seconds: float = _DEFAULT_LIMITS.timeout_seconds
    media_download_workers: int = _DEFAULT_LIMITS.workers

    def policy(self) -> AnnotationPolicy:
        return AnnotationPolicy.parse(self.annotation_policy)

    def media(self) -> MediaResolver:
        limits = DownloadLimits(max_bytes=self.media_max_bytes, timeout_seconds=self.media_timeout_seconds,
                                workers=self.media_download_workers)
        return MediaResolver.from_environment(
            media_root=Path(self.media_root) if self.media_root else None,
            local_files_root=self.local_files_root,
            allowed=self.media_allowed_hosts,
            cache_dir=self.media_cache_dir,
            limits=limits,
        )
