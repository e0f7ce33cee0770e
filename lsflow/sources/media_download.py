"""Fetching one media file into the cache: over HTTP(S) from allowed hosts, or from cloud buckets via fsspec.

Every download is streamed to disk under size and time limits and retried with exponential backoff
when the failure is transient (connection errors, timeouts, 429 and 5xx). An unchanged file is not
fetched again: HTTP asks with the cached ETag / Last-Modified (a 304 keeps the copy), cloud objects
compare their ETag (or generation) first. Redirects are followed by hand so every hop passes the
allow-list and the Label Studio token never leaves the Label Studio origin.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from lsflow import __version__
from lsflow.core.model.media_ref import HTTP_SCHEMES, MediaReference, media_file_name
from lsflow.sources.media_access import (
    AllowList,
    LabelStudioAccess,
    MediaRefused,
    MediaUnavailable,
    Origin,
)
from lsflow.sources.media_cache import CacheEntry, CacheRecord, MediaCache

_CHUNK = 1 << 16
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_RETRY_AFTER = 30.0
# The fsspec protocol behind each Label Studio cloud scheme, and the lsflow extra that installs it.
CLOUD_BACKENDS = {"s3": ("s3", "s3"), "gs": ("gcs", "gcs"), "azure-blob": ("az", "azure")}


@dataclass(frozen=True, slots=True)
class DownloadLimits:
    max_bytes: int = 1 << 30
    timeout_seconds: float = 120.0  # per attempt, for the whole file
    retries: int = 3  # attempts after the first, for transient failures only
    backoff_seconds: float = 0.5  # first wait; doubles per retry, with jitter
    max_redirects: int = 5
    workers: int = 8  # concurrent downloads when prefetching


@dataclass(frozen=True, slots=True)
class Fetched:
    path: Path
    from_cache: bool  # True when an earlier run's copy was still current


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def _size_limit_refusal(size: int, limits: DownloadLimits) -> MediaRefused:
    return MediaRefused(f"the file is {size:,} bytes, over the size limit of {limits.max_bytes:,} bytes")


def _stream_to(chunks, destination: Path, limits: DownloadLimits, deadline: float) -> int:
    written = 0
    with open(destination, "wb") as out:
        for chunk in chunks:
            written += len(chunk)
            if written > limits.max_bytes:
                raise MediaRefused(f"the file is over the size limit of {limits.max_bytes:,} bytes")
            if time.monotonic() > deadline:
                raise _Transient(f"the download took longer than the time limit of {limits.timeout_seconds:g} s")
            out.write(chunk)
    return written


class HttpDownloader:
    def __init__(self, cache: MediaCache, allowed: AllowList, label_studio: LabelStudioAccess | None,
                 limits: DownloadLimits):
        self.cache = cache
        self.allowed = allowed
        self.label_studio = label_studio
        self.limits = limits
        self._client = httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(limits.timeout_seconds),
            limits=httpx.Limits(max_connections=max(limits.workers, 1) * 2),
            headers={"User-Agent": f"lsflow/{__version__}"},
        )

    def close(self) -> None:
        self._client.close()

    def check_allowed(self, url: str) -> Origin:
        """The URL's origin, if lsflow may fetch from it; MediaRefused otherwise."""
        try:
            origin = Origin.of(url)
        except ValueError as error:
            raise MediaRefused(str(error)) from None
        if self.label_studio is not None and origin == self.label_studio.origin:
            return origin
        if self.allowed.allows_origin(origin):
            return origin
        raise MediaRefused(
            f"host {origin.host}:{origin.port} is neither the Label Studio instance nor allowed: "
            f"allow it with --allow-host {origin.host}:{origin.port} (or DatasetSettings.media_allowed_hosts)"
        )

    def fetch(self, url: str, immutable: bool = False) -> Fetched:
        """`url` as a local file in the cache: reused, revalidated or downloaded."""
        self.check_allowed(url)
        entry = self.cache.entry(url, media_file_name(url))
        record = entry.record()
        if record is not None and record.immutable:
            return Fetched(entry.file, from_cache=True)
        attempts = self.limits.retries + 1
        for attempt in range(attempts):
            try:
                return self._attempt(url, entry, record, immutable)
            except _Transient as failure:
                last_failure = failure
                if attempt + 1 < attempts:
                    time.sleep(self._backoff(attempt, failure.retry_after))
        raise MediaUnavailable(f"{last_failure} (gave up after {attempts} attempts)")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, _MAX_RETRY_AFTER)
        base = self.limits.backoff_seconds * 2**attempt
        return base / 2 + random.uniform(0, base / 2)

    def _attempt(self, url: str, entry: CacheEntry, record: CacheRecord | None, immutable: bool) -> Fetched:
        deadline = time.monotonic() + self.limits.timeout_seconds
        conditional = {}
        if record is not None and record.etag:
            conditional["If-None-Match"] = record.etag
        if record is not None and record.last_modified:
            conditional["If-Modified-Since"] = record.last_modified
        current = url
        for _ in range(self.limits.max_redirects + 1):
            origin = self.check_allowed(current)
            headers = dict(conditional)
            if self.label_studio is not None and origin == self.label_studio.origin:
                headers["Authorization"] = self.label_studio.authorization()
            try:
                with self._client.stream("GET", current, headers=headers) as response:
                    if response.status_code in _REDIRECT_STATUSES and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        if urlsplit(current).scheme.lower() not in HTTP_SCHEMES:
                            raise MediaRefused(f"redirected to a non-http(s) URL ({urlsplit(current).scheme}:)")
                        continue
                    if response.status_code == 304 and record is not None:
                        return Fetched(entry.file, from_cache=True)
                    self._raise_for_status(response, origin)
                    return self._save(url, response, entry, immutable, deadline)
            except httpx.TimeoutException:
                raise _Transient(f"{origin} did not answer within the time limit of "
                                 f"{self.limits.timeout_seconds:g} s") from None
            except httpx.TransportError as error:
                raise _Transient(f"cannot download from {origin} ({type(error).__name__}: {error}): "
                                 f"check network access to {origin.host}") from None
            except httpx.InvalidURL as error:  # control characters in task data: urlsplit drops them, httpx refuses them
                raise MediaRefused(f"not a URL that can be requested ({error})") from None
        raise MediaRefused(f"more than {self.limits.max_redirects} redirects")

    def _raise_for_status(self, response: httpx.Response, origin: Origin) -> None:
        status = response.status_code
        if status < 300:
            return
        is_label_studio = self.label_studio is not None and origin == self.label_studio.origin
        if status in _RETRY_STATUSES:
            retry_after = response.headers.get("retry-after", "")
            advice = ""
            if is_label_studio and status == 500:
                # Measured on Label Studio 1.23: an upload path it has no record of fails with 500, not 404.
                advice = (": Label Studio answers 500 for an upload it has no record of — check that the file is "
                          "still in the project, the token, and network access to the instance")
            raise _Transient(
                f"{'Label Studio at ' if is_label_studio else ''}{origin} answered HTTP {status}{advice}",
                float(retry_after) if retry_after.isdigit() else None,
            )
        if is_label_studio:
            raise MediaUnavailable(
                f"Label Studio at {origin} answered HTTP {status}: check that LABEL_STUDIO_API_KEY belongs to a "
                "user who can open this project and that this machine has network access to the instance"
            )
        raise MediaUnavailable(
            f"{origin} answered HTTP {status}: check that the link works from this machine "
            "(lsflow sends no credentials to hosts other than Label Studio)"
        )

    def _save(self, url: str, response: httpx.Response, entry: CacheEntry, immutable: bool,
              deadline: float) -> Fetched:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limits.max_bytes:
            raise _size_limit_refusal(int(declared), self.limits)
        with entry.writing() as partial:
            # Chunks as they arrive (a fixed chunk size would wait for it to fill): the time limit needs to look often.
            size = _stream_to(response.iter_bytes(), partial, self.limits, deadline)
            record = CacheRecord(url, size, response.headers.get("etag"), response.headers.get("last-modified"),
                                 immutable)
            return Fetched(entry.commit(partial, record), from_cache=False)


class CloudDownloader:
    """`s3://`, `gs://` and `azure-blob://` objects through fsspec, with this machine's cloud credentials.

    The backends are optional extras (`lsflow[s3]`, `lsflow[gcs]`, `lsflow[azure]`); `storage_options`
    per scheme are passed to fsspec (e.g. `{"s3": {"endpoint_url": …}}` for MinIO).
    """

    def __init__(self, cache: MediaCache, allowed: AllowList, limits: DownloadLimits,
                 storage_options: dict[str, dict[str, Any]] | None = None):
        self.cache = cache
        self.allowed = allowed
        self.limits = limits
        self.storage_options = storage_options or {}
        self._filesystems: dict[str, Any] = {}

    def fetch(self, reference: MediaReference) -> Fetched:
        """A CLOUD reference's object as a local file in the cache: reused if its validator is unchanged."""
        url, scheme, bucket, key = reference.text, reference.scheme, reference.bucket, reference.path
        if not bucket or not key:
            raise MediaRefused(f"'{url}' names no bucket and object")
        if not self.allowed.allows_object(scheme, bucket, key):
            raise MediaRefused(
                f"bucket {scheme}://{bucket} is not allowed: allow it with --allow-host {scheme}://{bucket}"
            )
        filesystem = self._filesystem(scheme)
        path = f"{bucket}/{key}"
        try:
            info = filesystem.info(path)
        except FileNotFoundError:
            raise MediaUnavailable(f"no such object in {scheme}://{bucket}: check the bucket, the key and "
                                   "that this machine's cloud credentials can list it") from None
        except PermissionError:
            raise MediaUnavailable(f"access to {scheme}://{bucket} denied: check this machine's cloud "
                                   "credentials") from None
        except Exception as error:  # each backend raises its own kinds (credentials, network): one file's problem
            raise MediaUnavailable(f"cannot read {scheme}://{bucket} ({type(error).__name__}: {error}): check this "
                                   "machine's cloud credentials and network access") from None
        size = int(info.get("size") or 0)
        if size > self.limits.max_bytes:
            raise _size_limit_refusal(size, self.limits)
        validator = object_validator(info)
        entry = self.cache.entry(url, reference.file_name)
        record = entry.record()
        if record is not None and validator is not None and record.etag == validator:
            return Fetched(entry.file, from_cache=True)
        deadline = time.monotonic() + self.limits.timeout_seconds
        with entry.writing() as partial, filesystem.open(path, "rb") as source:
            try:
                written = _stream_to(iter(lambda: source.read(_CHUNK), b""), partial, self.limits, deadline)
            except _Transient as failure:
                raise MediaUnavailable(str(failure)) from None
            return Fetched(entry.commit(partial, CacheRecord(url, written, etag=validator)), from_cache=False)

    def _filesystem(self, scheme: str):
        if scheme not in self._filesystems:
            protocol, extra = CLOUD_BACKENDS[scheme]
            try:
                import fsspec

                # A fresh instance per run: fsspec's shared instances cache listings, which would hide a change.
                self._filesystems[scheme] = fsspec.filesystem(protocol, skip_instance_cache=True,
                                                              **self.storage_options.get(scheme, {}))
            except ImportError as error:
                raise MediaUnavailable(
                    f"reading {scheme}:// needs the optional extra: pip install 'lsflow[{extra}]' ({error})"
                ) from None
        return self._filesystems[scheme]


def object_validator(info: dict[str, Any]) -> str | None:
    """What changes when a cloud object's bytes change: its ETag, else generation or modification time."""
    for key in ("ETag", "etag", "generation", "md5Hash", "LastModified", "last_modified", "updated", "mtime"):
        if info.get(key):
            return f"{key}:{info[key]}"
    return None
