"""Resources: where tasks come from (the live server or recorded export files) and where datasets go.

`TaskSourceResource` is the interface the assets ask for; which implementation backs it is chosen
from `LSFLOW_SOURCE` (`task_source_from_environment`): `files` (default: the recorded exports under
`LSFLOW_PROJECTS_DIR`, the embedded sample unless set) or `label_studio` (a live server at
`LABEL_STUDIO_URL`, with `LABEL_STUDIO_API_KEY`; both read when a run starts, never stored) or
`target_storage` (the objects Label Studio syncs to `LSFLOW_STORAGE_URL`, labeling configs from the
`LSFLOW_STORAGE_LABEL_CONFIG` file pattern).
"""

import os
from enum import StrEnum
from pathlib import Path
from typing import cast

import dagster as dg

from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.pipeline.shards import SHARD_SIZE
from lsflow.project.object_store import ObjectStoreOutput, is_object_store
from lsflow.project.versions import KEEP_VERSIONS
from lsflow.sources.base import TaskSource
from lsflow.sources.export_file import ExportFileSource
from lsflow.sources.label_studio import (
    AnnotationFilter,
    LabelStudioSource,
    Serialization,
    SnapshotOptions,
    TaskFilter,
    Timing,
)
from lsflow.sources.media import MediaResolver
from lsflow.sources.media_download import DownloadLimits
from lsflow.sources.target_storage import TargetStorageSource

_DEFAULT_LIMITS = DownloadLimits()


class TaskSourceResource(dg.ConfigurableResource):
    def open(self) -> TaskSource:
        raise NotImplementedError

    def server_url(self) -> str | None:
        """The Label Studio the tasks come from, named in each dataset version's manifest (never a token)."""
        return None


class ExportFileSourceResource(TaskSourceResource):
    """Recorded exports: `<projects_dir>/<project id>/export.json` (+ `label_config.xml`)."""

    projects_dir: str = "data/sample/projects"

    def open(self) -> TaskSource:
        return ExportFileSource(Path(self.projects_dir))


_SNAPSHOT = SnapshotOptions()
_TIMING = Timing()


class FilterMode(StrEnum):
    only = "only"
    exclude = "exclude"


class TaskFilterOptions(dg.Config):
    """Which tasks a snapshot holds; `only`/`exclude` or unset for each condition."""

    view: int | None = _SNAPSHOT.task_filter.view  # a Data Manager tab whose filters apply
    # TaskFilter holds these as plain "only" / "exclude" / None: FilterMode's values (a StrEnum).
    finished: FilterMode | None = cast("FilterMode | None", _SNAPSHOT.task_filter.finished)
    annotated: FilterMode | None = cast("FilterMode | None", _SNAPSHOT.task_filter.annotated)
    skipped: FilterMode | None = cast("FilterMode | None", _SNAPSHOT.task_filter.skipped)
    only_with_annotations: bool = _SNAPSHOT.task_filter.only_with_annotations


class AnnotationFilterOptions(dg.Config):
    """Which annotations a snapshot holds (default: all; the annotation policy chooses later)."""

    usual: bool = _SNAPSHOT.annotation_filter.usual
    ground_truth: bool = _SNAPSHOT.annotation_filter.ground_truth
    skipped: bool = _SNAPSHOT.annotation_filter.skipped


class SerializationOptions(dg.Config):
    predictions: bool = _SNAPSHOT.serialization.predictions  # full predictions, not only their ids
    drafts: bool = _SNAPSHOT.serialization.drafts
    annotation_history: bool = _SNAPSHOT.serialization.annotation_history
    annotator_details: bool = _SNAPSHOT.serialization.annotator_details


class LabelStudioResource(TaskSourceResource):
    """A live Label Studio server, through its Snapshot API.

    `url` and `api_key` come from `dg.EnvVar("LABEL_STUDIO_URL")` / `dg.EnvVar("LABEL_STUDIO_API_KEY")`
    (see definitions.py), so the key never appears in config or run metadata. The key may be a
    personal access token or a legacy token.
    """

    url: str
    api_key: str
    request_timeout_seconds: float = _TIMING.request_timeout
    poll_interval_seconds: float = _TIMING.poll_interval
    poll_backoff: float = _TIMING.poll_backoff
    max_poll_interval_seconds: float = _TIMING.max_poll_interval
    max_wait_seconds: float = _TIMING.max_wait
    retries: int = _TIMING.retries
    retry_delay_seconds: float = _TIMING.retry_delay
    task_filter_options: TaskFilterOptions = TaskFilterOptions()
    annotation_filter_options: AnnotationFilterOptions = AnnotationFilterOptions()
    serialization_options: SerializationOptions = SerializationOptions()

    def server_url(self) -> str | None:
        return self.url

    def open(self) -> LabelStudioSource:
        options = SnapshotOptions(
            TaskFilter(**self.task_filter_options.model_dump(mode="json")),
            AnnotationFilter(**self.annotation_filter_options.model_dump()),
            Serialization(**self.serialization_options.model_dump()),
        )
        timing = Timing(
            request_timeout=self.request_timeout_seconds, poll_interval=self.poll_interval_seconds,
            poll_backoff=self.poll_backoff, max_poll_interval=self.max_poll_interval_seconds,
            max_wait=self.max_wait_seconds, retries=self.retries, retry_delay=self.retry_delay_seconds,
        )
        return LabelStudioSource(self.url, self.api_key, options, timing)


class TargetStorageResource(TaskSourceResource):
    """Label Studio's target storage: the per-task (or per-annotation) JSON objects it syncs to a folder or bucket.

    `url` is `file://`, `s3://`, `gs://` or `azure://` and the prefix, with `{project}` for the project id
    (docs/target-storage.md). Cloud credentials come from the environment, as the cloud SDKs read them.
    """

    url: str
    # Target storage holds no labeling config: a file per project, `{project}` standing for its id.
    label_config: str | None = None
    # fsspec options of the backend that are not secrets, e.g. {"endpoint_url": "http://minio:9000"}.
    storage_options: dict[str, str] = {}

    def open(self) -> TargetStorageSource:
        return TargetStorageSource(self.url, self.label_config, dict(self.storage_options))


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
    # Format options, as `lsflow convert --option NAME=VALUE` (e.g. csv_multi_value_separator).
    writer_options: dict[str, str] = {}
    # Processes writing a partition's tasks; unset: one a usable core.
    workers: int | None = None
    # Dataset versions kept per format besides the pinned ones and the current one.
    keep_versions: int = KEEP_VERSIONS
    # A project of more tasks than this is built in shards of this many task ids, then merged; None: never.
    shard_size: int | None = SHARD_SIZE
    # With an object-store output_root (`s3://bucket/prefix`, any fsspec URL), where this worker keeps a
    # project's snapshot, store, reuse index and local versions (default $LSFLOW_WORK_ROOT, else
    # data/work), and fsspec options for the store (credentials stay in the environment).
    work_root: str | None = None
    output_storage_options: dict[str, str] = {}

    def layout_root(self) -> Path:
        """Where the project's folders are built: the output root, or the work root for an object store."""
        if is_object_store(self.output_root):
            return Path(self.work_root or os.environ.get("LSFLOW_WORK_ROOT") or "data/work")
        return Path(self.output_root)

    def object_store(self) -> ObjectStoreOutput | None:
        return ObjectStoreOutput(self.output_root, dict(self.output_storage_options)) \
            if is_object_store(self.output_root) else None

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


SAMPLE_PROJECTS_DIR = "data/sample/projects"
SAMPLE_MEDIA_ROOT = "data/sample/media"


def task_source_from_environment() -> TaskSourceResource:
    kind = os.environ.get("LSFLOW_SOURCE", "files")
    if kind == "files":
        return ExportFileSourceResource(projects_dir=os.environ.get("LSFLOW_PROJECTS_DIR", SAMPLE_PROJECTS_DIR))
    if kind == "label_studio":
        return LabelStudioResource(url=dg.EnvVar("LABEL_STUDIO_URL"), api_key=dg.EnvVar("LABEL_STUDIO_API_KEY"))
    if kind == "target_storage":
        return TargetStorageResource(url=os.environ["LSFLOW_STORAGE_URL"],
                                     label_config=os.environ.get("LSFLOW_STORAGE_LABEL_CONFIG"))
    raise ValueError(f"LSFLOW_SOURCE={kind!r}: expected 'files', 'label_studio' or 'target_storage'")


def settings_from_environment() -> DatasetSettings:
    uses_sample = os.environ.get("LSFLOW_SOURCE", "files") == "files" and "LSFLOW_PROJECTS_DIR" not in os.environ
    return DatasetSettings(
        output_root=os.environ.get("LSFLOW_OUTPUT_ROOT", "data/output"),
        annotation_policy=os.environ.get("LSFLOW_ANNOTATION_POLICY", "all"),
        media_root=os.environ.get("LSFLOW_MEDIA_ROOT", SAMPLE_MEDIA_ROOT if uses_sample else None),
        workers=int(os.environ["LSFLOW_WORKERS"]) if os.environ.get("LSFLOW_WORKERS") else None,
        keep_versions=int(os.environ.get("LSFLOW_KEEP_VERSIONS") or KEEP_VERSIONS),
        shard_size=int(os.environ["LSFLOW_SHARD_SIZE"]) if os.environ.get("LSFLOW_SHARD_SIZE") else SHARD_SIZE,
    )
