"""Helpers for tests that make a real Label Studio write its target (export) storage, read back by lsflow.

What Label Studio 1.23.2 writes, and why, is measured and explained in docs/target-storage.md. In short:
- without `FUTURE_SAVE_TASK_TO_STORAGE`, one object per annotation, key `<annotation id>`, the annotation with its
  task nested; with `FUTURE_SAVE_TASK_TO_STORAGE=true`, one object per task, key `<task id>.json`, the whole task
  with all its annotations (`TASK_FORMAT_ENV`);
- objects are written on every annotation save (create, update) once the storage exists; the annotations made before
  it are written when the storage is created (the server syncs on creation, SYNC_ON_TARGET_STORAGE_CREATION) and
  rewritten by every sync.

No tests here: pytest does not collect this module (its name does not start with `test_`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from lsflow_tests.label_studio_server import LabelStudioServer, label_studio_binary

# Label Studio's switch from the per-annotation layout to the per-task one (settings.FUTURE_SAVE_TASK_TO_STORAGE,
# read by io_storages/base_models.py). The per-task keys get `.json` (FUTURE_SAVE_TASK_TO_STORAGE_JSON_EXT, default on).
TASK_FORMAT_ENV: dict[str, str] = {"FUTURE_SAVE_TASK_TO_STORAGE": "true"}


def local_files_env(document_root: Path) -> dict[str, str]:
    """The server env local-files storages need: Label Studio refuses them unless serving is enabled and the
    storage's path lies strictly below LOCAL_FILES_DOCUMENT_ROOT (io_storages/localfiles/models.py, validate_connection)."""
    return {"LOCAL_FILES_SERVING_ENABLED": "true", "LOCAL_FILES_DOCUMENT_ROOT": str(document_root)}


# Label Studio refuses an S3 endpoint that resolves to a loopback or private address (SSRF protection,
# io_storages/s3/serializers.py validate_s3_endpoint → core/utils/io.py); a local moto server needs it off.
LOCAL_S3_ENV: dict[str, str] = {"SSRF_PROTECTION_ENABLED": "false"}


class TargetStorageServer(LabelStudioServer):
    """A LabelStudioServer started with extra environment variables (LabelStudioServer passes only os.environ plus
    its own). The extra env is applied on every start(), so a restart keeps the same storage behaviour."""

    def __init__(self, base_dir: Path, extra_env: Mapping[str, str], binary: Path | None = None):
        super().__init__(binary or label_studio_binary(), base_dir)
        self.extra_env = dict(extra_env)

    def start(self) -> TargetStorageServer:
        with mock.patch.dict(os.environ, self.extra_env):
            super().start()
        return self


@contextmanager
def label_studio_with_env(base_dir: Path, extra_env: Mapping[str, str]) -> Iterator[TargetStorageServer]:
    """A server of its own (cold start ~20 s) with `extra_env`, stopped on exit. The session's shared server cannot
    be used: the storage layout and local-files serving are fixed by env when the process starts."""
    server = TargetStorageServer(base_dir, extra_env).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class S3Endpoint:
    """Where a local S3 server listens and the (dummy) credentials Label Studio and s3fs use for it."""

    url: str
    bucket: str
    access_key_id: str = "testing"
    secret_access_key: str = "testing"
    region: str = "us-east-1"

    def storage_options(self) -> dict:
        """fsspec/s3fs options for reading `s3://<bucket>/...` from this server."""
        return {"key": self.access_key_id, "secret": self.secret_access_key,
                "client_kwargs": {"endpoint_url": self.url, "region_name": self.region}}


@contextmanager
def moto_s3(bucket: str = "target-storage") -> Iterator[S3Endpoint]:
    """moto's S3 server on a free loopback port with `bucket` created, stopped on exit.

    It runs in this process's threads but serves real HTTP, so the Label Studio process can write to it. Label
    Studio checks the bucket when a storage is created, hence the bucket is made first."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(url=f"http://{host}:{port}", bucket=bucket)
        boto3.client("s3", endpoint_url=endpoint.url, aws_access_key_id=endpoint.access_key_id,
                     aws_secret_access_key=endpoint.secret_access_key,
                     region_name=endpoint.region).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


def create_local_target(server: LabelStudioServer, project_id: int, path: Path, *, can_delete_objects: bool = True,
                        sync: bool = True) -> int:
    """A local-files target storage writing into `path` (created; must be below the server's
    LOCAL_FILES_DOCUMENT_ROOT), synced unless `sync=False`; returns its id. Objects land directly in `path`,
    with no project sub-folder. Creation already writes the existing annotations; the extra sync only rewrites them
    (and restores objects a delete removed); later saves write themselves."""
    path.mkdir(parents=True, exist_ok=True)
    storage = server.client.export_storage.local.create(project=project_id, path=str(path), title=f"target {path.name}",
                                                        can_delete_objects=can_delete_objects)
    if sync:
        server.client.export_storage.local.sync(storage.id)
    return storage.id


def create_s3_target(server: LabelStudioServer, project_id: int, s3: S3Endpoint, prefix: str, *,
                     can_delete_objects: bool = True, sync: bool = True) -> int:
    """An S3 target storage writing to `s3://<bucket>/<prefix>/…` on `s3` (moto), synced unless `sync=False`;
    returns its id. Give `prefix` without a trailing slash: Label Studio joins `prefix + "/" + key`. The server
    needs LOCAL_S3_ENV for an endpoint on 127.0.0.1."""
    storage = server.client.export_storage.s3.create(
        project=project_id, bucket=s3.bucket, prefix=prefix, s3endpoint=s3.url, region_name=s3.region,
        aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key,
        title=f"target {prefix}", can_delete_objects=can_delete_objects)
    if sync:
        server.client.export_storage.s3.sync(storage.id)
    return storage.id
