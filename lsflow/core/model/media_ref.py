"""A task's media reference, parsed once: its kind, the file it names and where that file lies.

Label Studio writes a media file into task data in several forms. Everything in lsflow that needs
the file's name (dataset file names, the ASR manifest, the download cache) or its place (the
resolver) reads them through `MediaReference.parse`, so no two places can disagree on either.

| Form | kind | path | file_name |
|---|---|---|---|
| `/data/upload/12/abc-photo.jpg` | UPLOAD | `12/abc-photo.jpg` (decoded) | `abc-photo.jpg` |
| `/data/local-files/?x=1&d=dir%2Fb.jpg` | LOCAL_FILES | `dir/b.jpg` (as Django's `request.GET["d"]`) | `b.jpg` |
| `https://host/img%201.jpg?X-Amz-…` | HTTP | `/img 1.jpg` (decoded, no query) | `img 1.jpg` |
| `http://ls:8080/data/upload/1/x.jpg` | HTTP, route UPLOAD | `1/x.jpg` | `x.jpg` |
| `s3://bucket/dir/img.jpg`, `gs://`, `azure-blob://` | CLOUD | `dir/img.jpg` (the key as Label Studio reads it) | `img.jpg` |
| `data:image/png;base64,…` | DATA | none | none (suffix `.png`) |
| `/mnt/x/img.jpg`, `img.jpg` | PATH | the text (a file name: nothing decoded) | `img.jpg` |
| `file:///x/a.jpg`, `ftp://…` | OTHER_URL | `/x/a.jpg` (decoded) | `a.jpg` |

A file name is one path component, the last after `/` or `\\`. It is "" when that is empty, `.`,
`..` or holds a NUL (`/data/upload/1/`, `…/..`), and when the reference names no file (data: URIs,
an empty `?d=`, an unparsable URL): callers then name the file themselves (`task-<id>`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

UPLOAD_PREFIX = "/data/upload/"
LOCAL_FILES_PATH = "/data/local-files"
HTTP_SCHEMES = ("http", "https")
# The schemes of Label Studio's cloud storages (its `url_scheme`s); Azure's is `azure-blob`, never `azure`.
CLOUD_SCHEMES = ("s3", "gs", "azure-blob")

# Checked before `urlsplit`: an inline file can be megabytes, and urlsplit would copy it and keep it in its cache.
_DATA_URI = re.compile(r"[\x00-\x20]*data:([^;,]*)", re.IGNORECASE)
# What makes an upload path more than its plain text: escapes, a query or fragment, a `\` separator,
# the characters urlsplit removes, NUL.
_NEEDS_PARSING = re.compile(r"[%?#\\\t\r\n\x00]")
# Media types whose usual extension is not their subtype (the others: ".<subtype>" without "x-").
_IRREGULAR_SUFFIXES = {
    "image/jpeg": ".jpg", "image/svg+xml": ".svg", "audio/mpeg": ".mp3", "audio/wave": ".wav",
    "audio/vnd.wave": ".wav", "video/quicktime": ".mov", "text/plain": ".txt",
}


class MediaKind(StrEnum):
    UPLOAD = "upload"  # /data/upload/<project>/<file>, relative to the Label Studio instance
    LOCAL_FILES = "local-files"  # /data/local-files/?d=<path under LOCAL_FILES_DOCUMENT_ROOT>
    HTTP = "http"  # a full http(s) URL, possibly of an instance's upload or local-files route (see `route`)
    CLOUD = "cloud"  # s3://, gs://, azure-blob://<bucket>/<key>
    DATA = "data"  # data:<media type>[;base64],<bytes>: the file inline, no name
    PATH = "path"  # no scheme: a file path on some machine
    OTHER_URL = "other-url"  # a URL of another scheme (file:, ftp:, …)
    MALFORMED = "malformed"  # urlsplit refuses it (an unbalanced "[" in the host, …)


@dataclass(frozen=True, slots=True)
class MediaReference:
    text: str  # as written in the task data
    kind: MediaKind
    file_name: str  # the file's base name, decoded; "" when the reference names no file
    # UPLOAD: "<project>/<file>" under upload/ (decoded); LOCAL_FILES: the ?d= value; HTTP: the URL's
    # decoded path, or the route's path as for UPLOAD / LOCAL_FILES; CLOUD: the object key; PATH: the text.
    path: str
    scheme: str = ""  # lower case; "" for Label Studio paths and plain paths
    bucket: str = ""  # CLOUD: the bucket (Azure: the container)
    # UPLOAD or LOCAL_FILES when the reference is one of Label Studio's media routes, written as a
    # path or as a full URL (kind HTTP: then the resolver may find it in the instance's media folders).
    route: MediaKind | None = None
    # HTTP with a route: the URL path before /data/… ("/ls" for an instance served under /ls, "" at the root).
    mount: str = ""
    media_type: str = ""  # DATA: "image/png"; "" when the URI declares none

    @classmethod
    def parse(cls, text: str) -> MediaReference:
        """Never raises: whatever the task holds gets a kind (MALFORMED at worst)."""
        inline = _DATA_URI.match(text)
        if inline is not None:
            return cls(text, MediaKind.DATA, "", "", "data", media_type=inline.group(1).strip().lower())
        try:
            parts = urlsplit(text)
        except ValueError:
            return cls(text, MediaKind.MALFORMED, "", "")
        scheme = parts.scheme
        if not scheme:
            if parts.path.startswith(UPLOAD_PREFIX):
                path = unquote(parts.path[len(UPLOAD_PREFIX):])
                return cls(text, MediaKind.UPLOAD, _last_component(path), path, route=MediaKind.UPLOAD)
            if parts.path.rstrip("/") == LOCAL_FILES_PATH:
                path = _local_files_path(parts.query)
                return cls(text, MediaKind.LOCAL_FILES, _last_component(path), path, route=MediaKind.LOCAL_FILES)
            return cls(text, MediaKind.PATH, _last_component(text), text)
        if scheme in HTTP_SCHEMES:
            return cls._http(text, scheme, parts.path, parts.query)
        if scheme in CLOUD_SCHEMES:
            # As Label Studio reads its own cloud URIs: no fragment, nothing decoded.
            key = urlsplit(text, allow_fragments=False).path.lstrip("/")
            return cls(text, MediaKind.CLOUD, _last_component(key), key, scheme, bucket=parts.netloc)
        if scheme == "data":  # "data:" with a tab or newline inside, which urlsplit drops
            return cls(text, MediaKind.DATA, "", "", scheme)
        path = unquote(parts.path)
        return cls(text, MediaKind.OTHER_URL, _last_component(path), path, scheme)

    @classmethod
    def _http(cls, text: str, scheme: str, url_path: str, query: str) -> MediaReference:
        # Label Studio under a sub-path (LABEL_STUDIO_HOST=https://host/ls) writes https://host/ls/data/…
        mount, upload, path = url_path.partition(UPLOAD_PREFIX)
        if upload:
            path = unquote(path)
            return cls(text, MediaKind.HTTP, _last_component(path), path, scheme, route=MediaKind.UPLOAD, mount=mount)
        trimmed = url_path.rstrip("/")
        if trimmed.endswith(LOCAL_FILES_PATH):
            path = _local_files_path(query)
            return cls(text, MediaKind.HTTP, _last_component(path), path, scheme, route=MediaKind.LOCAL_FILES,
                       mount=trimmed[: -len(LOCAL_FILES_PATH)])
        path = unquote(url_path)
        return cls(text, MediaKind.HTTP, _last_component(path), path, scheme)

    @property
    def suffix(self) -> str:
        """The file's extension (".jpg"); for a data: URI the usual one of its media type; "" when unknown."""
        if self.kind is MediaKind.DATA:
            return _media_type_suffix(self.media_type)
        return PurePosixPath(self.file_name).suffix


def media_file_name(text: str | None) -> str:
    """`MediaReference.parse(text).file_name`, without parsing the common plain upload path.

    Called once per task of every export (100 000 tasks and more), so the plain
    `/data/upload/<project>/<file>` costs a prefix check, one regex scan and a split.
    """
    if not text:
        return ""
    if text.startswith(UPLOAD_PREFIX) and _NEEDS_PARSING.search(text) is None:
        name = text.rpartition("/")[2]
        return "" if name in ("", ".", "..") else name
    return MediaReference.parse(text).file_name


def _local_files_path(query: str) -> str:
    # As Label Studio's view reads `request.GET["d"]`: decoded once, "+" a space, the last value wins.
    values = parse_qs(query, keep_blank_values=True).get("d")
    return values[-1] if values else ""


def _last_component(path: str) -> str:
    name = path[max(path.rfind("/"), path.rfind("\\")) + 1:]
    return "" if name in ("", ".", "..") or "\x00" in name else name


def _media_type_suffix(media_type: str) -> str:
    if media_type in _IRREGULAR_SUFFIXES:
        return _IRREGULAR_SUFFIXES[media_type]
    subtype = media_type.partition("/")[2].removeprefix("x-")
    return f".{subtype}" if subtype.isalnum() else ""
