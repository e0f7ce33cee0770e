"""Where lsflow may fetch task media from, and with which credentials.

Task data is user input: a crafted task can point at any URL. lsflow therefore fetches only from
the Label Studio instance itself and from hosts and buckets the user allowed explicitly, and sends
the Label Studio token to that instance's origin (scheme, host, port) and nowhere else.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from lsflow.core.model.media_ref import CLOUD_SCHEMES, HTTP_SCHEMES

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

_DEFAULT_PORTS = {"http": 80, "https": 443}


class MediaRefused(ValueError):
    """A media reference lsflow will not read: outside the allowed places, or over a limit."""


class MediaUnavailable(Exception):
    """An allowed media reference whose file cannot be had; the message says what to check."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in HTTP_SCHEMES or not parts.hostname:
            raise ValueError(f"'{url}' is not an http(s) URL with a host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"'{url}' has an invalid port") from None
        return cls(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class _HostRule:
    host: str  # exact host, or ".example.com" for any subdomain of example.com
    port: int | None
    scheme: str | None

    def allows(self, origin: Origin) -> bool:
        if self.scheme and origin.scheme != self.scheme:
            return False
        if self.port and origin.port != self.port:
            return False
        if self.host.startswith("."):
            return origin.host.endswith(self.host)
        return origin.host == self.host


@dataclass(frozen=True, slots=True)
class _BucketRule:
    scheme: str
    bucket: str
    prefix: str

    def allows(self, scheme: str, bucket: str, key: str) -> bool:
        return scheme == self.scheme and bucket == self.bucket and key.startswith(self.prefix)


class AllowList:
    """Hosts and buckets media may be fetched from, besides the Label Studio instance.

    Entries: `host` (any port, http or https), `host:port`, `https://host[:port]` (that scheme only),
    `*.example.com` (its subdomains), `s3://bucket`, `s3://bucket/prefix/`, `gs://…`, `azure-blob://…`.
    """

    def __init__(self, entries: tuple[str, ...] | list[str] = ()):
        self.entries = tuple(entries)
        self._hosts: list[_HostRule] = []
        self._buckets: list[_BucketRule] = []
        for entry in self.entries:
            self._add(entry.strip())

    def _add(self, entry: str) -> None:
        scheme, separator, rest = entry.partition("://")
        if not separator:
            scheme, rest = "", entry
        scheme = scheme.lower()
        if scheme in CLOUD_SCHEMES:
            bucket, _, prefix = rest.partition("/")
            if not bucket:
                raise ValueError(f"allowed bucket '{entry}' names no bucket")
            self._buckets.append(_BucketRule(scheme, bucket, prefix))
            return
        if scheme and scheme not in HTTP_SCHEMES:
            raise ValueError(f"allowed source '{entry}': only hosts, http(s) origins and s3/gs/azure-blob buckets")
        parts = urlsplit(f"//{rest}")
        if parts.path not in ("", "/") or parts.query or not parts.hostname:
            raise ValueError(f"allowed host '{entry}' must be a host, host:port or origin, without a path")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"allowed host '{entry}' has an invalid port") from None
        host = parts.hostname.lower()
        if host.startswith("*."):
            host = host[1:]
        elif "*" in host:
            raise ValueError(f"allowed host '{entry}': a wildcard may only be the first label (*.example.com)")
        self._hosts.append(_HostRule(host, port, scheme or None))

    def allows_origin(self, origin: Origin) -> bool:
        return any(rule.allows(origin) for rule in self._hosts)

    def allows_object(self, scheme: str, bucket: str, key: str) -> bool:
        return any(rule.allows(scheme, bucket, key) for rule in self._buckets)


class LabelStudioAccess:
    """The Label Studio instance uploads and local files are downloaded from, and its Authorization header.

    The header comes from label-studio-sdk's own client, which tells a legacy token (`Token <key>`)
    from a personal access token (a JWT refresh token, exchanged for a short-lived access token
    sent as `Bearer <access>` and refreshed when it expires).
    """

    def __init__(self, url: str, api_key: str | None):
        self.url = url.rstrip("/")
        self.origin = Origin.of(self.url)
        self._api_key = api_key
        self._client: LabelStudio | None = None
        self._failure: MediaUnavailable | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the token
        return f"LabelStudioAccess({self.url!r})"

    def authorization(self) -> str:
        if not self._api_key:
            raise MediaUnavailable(
                f"LABEL_STUDIO_API_KEY is not set: Label Studio at {self.url} serves media only to a signed-in user"
            )
        from label_studio_sdk.core.api_error import ApiError

        with self._lock:
            if self._failure is not None:  # one bad token must not cost one refresh request per file
                raise self._failure
            try:
                if self._client is None:
                    from label_studio_sdk import LabelStudio

                    self._client = LabelStudio(base_url=self.url, api_key=self._api_key)
                # The SDK keeps no public accessor for the header it sends; this is the one it builds.
                return self._client._client_wrapper.get_headers()["Authorization"]
            except ApiError as error:
                self._failure = MediaUnavailable(
                    f"Label Studio at {self.url} did not accept LABEL_STUDIO_API_KEY (HTTP {error.status_code}): "
                    "use a current personal access token or a legacy token of a user with access to the project"
                )
                raise self._failure from None
            except httpx.TransportError as error:
                raise MediaUnavailable(
                    f"cannot reach Label Studio at {self.url} to exchange the personal access token "
                    f"({type(error).__name__}): check network access to the instance"
                ) from None
