"""`s3://` task media through fsspec and s3fs, against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import os

import pytest

from lsflow.sources.media import MediaResolver, MediaStatus
from lsflow.sources.media_download import DownloadLimits
from lsflow_tests.target_storage import moto_s3

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

BUCKET = "media-bucket"
CREDENTIALS = {"key": "testing", "secret": "testing"}


@pytest.fixture(scope="module")
def endpoint():
    with moto_s3(BUCKET) as server:
        yield server.url


@pytest.fixture
def bucket(endpoint):
    return s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True, **CREDENTIALS)


def resolver(tmp_path, endpoint, limits=DownloadLimits(), allowed=(f"s3://{BUCKET}/images/",)) -> MediaResolver:
    return MediaResolver(cache_dir=tmp_path / "cache", allowed=allowed, limits=limits,
                         storage_options={"s3": {"endpoint_url": endpoint, **CREDENTIALS}})


def test_an_object_is_downloaded_once_and_again_only_when_it_changes(bucket, endpoint, tmp_path):
    original = os.urandom(3000)
    bucket.pipe(f"{BUCKET}/images/cat.jpg", original)
    reference = f"s3://{BUCKET}/images/cat.jpg"

    first = resolver(tmp_path, endpoint).resolve(reference)
    assert first.status is MediaStatus.DOWNLOADED and first.path.read_bytes() == original
    second = resolver(tmp_path, endpoint).resolve(reference)
    assert second.status is MediaStatus.CACHED and second.path.read_bytes() == original

    changed = os.urandom(3000)
    bucket.pipe(f"{BUCKET}/images/cat.jpg", changed)
    third = resolver(tmp_path, endpoint).resolve(reference)
    assert third.status is MediaStatus.DOWNLOADED and third.path.read_bytes() == changed


def test_objects_outside_the_allowed_prefix_are_refused_and_absent_ones_missing(bucket, endpoint, tmp_path):
    bucket.pipe(f"{BUCKET}/private/keys.txt", b"secret")
    media = resolver(tmp_path, endpoint)
    refused = media.resolve(f"s3://{BUCKET}/private/keys.txt")
    assert refused.status is MediaStatus.REFUSED and f"--allow-host s3://{BUCKET}" in refused.reason
    missing = media.resolve(f"s3://{BUCKET}/images/never.jpg")
    assert missing.status is MediaStatus.MISSING and "no such object" in missing.reason


def test_an_object_over_the_size_limit_is_refused(bucket, endpoint, tmp_path):
    bucket.pipe(f"{BUCKET}/images/huge.tif", b"\0" * 20_000)
    outcome = resolver(tmp_path, endpoint, DownloadLimits(max_bytes=10_000)).resolve(f"s3://{BUCKET}/images/huge.tif")
    assert outcome.status is MediaStatus.REFUSED and "20,000 bytes" in outcome.reason
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_a_key_is_read_as_label_studio_writes_it_with_hash_and_percent_signs_its_own(bucket, endpoint, tmp_path):
    bucket.pipe(f"{BUCKET}/images/take#1 50%.jpg", b"take one")
    outcome = resolver(tmp_path, endpoint).resolve(f"s3://{BUCKET}/images/take#1 50%.jpg")
    assert outcome.status is MediaStatus.DOWNLOADED and outcome.path.read_bytes() == b"take one"
    assert outcome.path.name == "take_1_50_.jpg"
