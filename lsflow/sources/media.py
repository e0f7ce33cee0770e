"""Task media (images, audio) as local files: the one place lsflow turns a task's media reference into a file.

`MediaResolver.resolve(reference)` is lsflow's `get_local_path` (label-studio-sdk's helper of that
name): it takes a value of a task's `data` and returns a `MediaOutcome` — a local file, or why there
is none. It implements `MediaLookup` (`local_path`) for the export pipeline and the writers.

References (parsed by `lsflow.core.model.media_ref`), and where their file comes from:

- `/data/upload/<project>/<file>`: a copy of Label Studio's media folder (`media_root`, holding
  `upload/`), else downloaded from the Label Studio instance with the API token.
- `/data/local-files/?d=<path>`: `<path>` under `LOCAL_FILES_DOCUMENT_ROOT` (the same folder Label
  Studio serves), else downloaded from the instance.
- `http(s)://…`: the instance's own upload and local-files URLs as above; others downloaded, from
  the Label Studio instance or an allowed host only.
- `s3://`, `gs://`, `azure-blob://`: downloaded through fsspec from an allowed bucket (optional extras).
- a plain path: read only when it lies under `media_root` or `LOCAL_FILES_DOCUMENT_ROOT`.

Anything else (`file:`, `ftp:`, `data:`, `..` in a path, absolute paths outside those folders) is
refused. Refused and missing references are counted and reported with their reason (`report()`),
never raised: one unreachable image drops that image, not the export.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lsflow.core.model.label_config import LabelConfig
from lsflow.core.model.media_ref import CLOUD_SCHEMES, MediaKind, MediaReference
from lsflow.core.model.task import Task
from lsflow.sources.media_access import (
    AllowList,
    LabelStudioAccess,
    MediaRefused,
    MediaUnavailable,
    Origin,
)
from lsflow.sources.media_cache import MediaCache, default_cache_dir
from lsflow.sources.media_download import CloudDownloader, DownloadLimits, HttpDownloader

# The object tags whose data Label Studio reads from a file, and the data keys to use without a config.
MEDIA_OBJECT_TAGS = ("image", "audio", "audioplus", "video")
DEFAULT_MEDIA_KEYS = ("image", "audio")
_PROBLEM_EXAMPLES = 20

class MediaStatus(StrEnum):
    LOCAL = "local"  # read where it lies on this machine
    DOWNLOADED = "downloaded"  # fetched in this run
    CACHED = "cached"  # an earlier run's download, still current
    MISSING = "missing"  # allowed, but the file cannot be had
    REFUSED = "refused"  # not allowed: traversal, scheme, host, size

    @property
    def resolved(self) -> bool:
        return self in (MediaStatus.LOCAL, MediaStatus.DOWNLOADED, MediaStatus.CACHED)


@dataclass(frozen=True, slots=True)
class MediaOutcome:
    reference: str
    status: MediaStatus
    path: Path | None = None
    reason: str | None = None  # for missing and refused references: why, and what to check


@dataclass
class MediaReport:
    """Counts of distinct references by outcome, and the reasons references could not be had."""

    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)  # (status, reason) -> references
    examples: dict = field(default_factory=dict)  # (status, reason) -> first reference

    def add(self, outcome: MediaOutcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.reason is not None:
            key = (outcome.status, outcome.reason)
            self.reasons[key] += 1
            if len(self.examples) < _PROBLEM_EXAMPLES or key in self.examples:
                self.examples.setdefault(key, outcome.reference)

    def as_dict(self) -> dict[str, Any]:
        counts = {status.value: self.counts[status] for status in MediaStatus}
        return {
            "references": sum(counts.values()),
            "resolved": sum(self.counts[s] for s in MediaStatus if s.resolved),
            **counts,
            "problems": [
                {"status": status.value, "reason": reason, "references": count,
                 "example": self.examples.get((status, reason), "")}
                for (status, reason), count in self.reasons.most_common()
            ],
        }


def _path_segments(path: str) -> list[str]:
    return path.replace("\\", "/").split("/")


def _refuse_traversal(path: str) -> None:
    if ".." in _path_segments(path):
        raise MediaRefused("'..' in a media path: it would leave the folder it names")


def _under(root: Path, relative: str) -> Path:
    """`root/relative`, refused when it resolves (following links) outside `root`."""
    root = root.resolve()  # the configured root may itself be a link; what it leads to is trusted
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise MediaRefused(f"the path resolves outside {root} (a link leading out of it?)")
    return candidate


class MediaResolver:
    """Resolves task media references to local files, downloading (and caching) what is allowed.

    One instance per run: each distinct reference is resolved once and counted once. Thread-safe;
    `prefetch` resolves many references concurrently so the single pass over the tasks finds them ready.
    """

    def __init__(
        self,
        media_root: Path | str | None = None,
        *,
        local_files_root: Path | str | None = None,
        label_studio_url: str | None = None,
        api_key: str | None = None,
        allowed: Iterable[str] = (),
        cache_dir: Path | str | None = None,
        limits: DownloadLimits = DownloadLimits(),
        storage_options: dict[str, dict[str, Any]] | None = None,
    ):
        self.media_root = Path(media_root).resolve() if media_root else None
        self.local_files_root = Path(local_files_root).resolve() if local_files_root else None
        if self.local_files_root is not None and self.local_files_root == Path(self.local_files_root.anchor):
            raise ValueError("LOCAL_FILES_DOCUMENT_ROOT=/ would make every file on this machine a task file")
        self.label_studio = LabelStudioAccess(label_studio_url, api_key) if label_studio_url else None
        # The path the instance is served under ("" at the root): its full URLs may carry it before /data/….
        self._label_studio_mount = urlsplit(self.label_studio.url).path if self.label_studio else ""
        self.allowed = AllowList(tuple(allowed))
        self.limits = limits
        cache = MediaCache(Path(cache_dir) if cache_dir else default_cache_dir())
        self._http = HttpDownloader(cache, self.allowed, self.label_studio, limits)
        self._cloud = CloudDownloader(cache, self.allowed, limits, storage_options)
        self._outcomes: dict[str, MediaOutcome] = {}
        self._report = MediaReport()
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, **settings: Any) -> MediaResolver:
        """Label Studio's URL and token (`LABEL_STUDIO_URL`, `LABEL_STUDIO_API_KEY`) and
        `LOCAL_FILES_DOCUMENT_ROOT` from the environment, the way label-studio-sdk reads them;
        explicit settings win over the environment."""
        environment = {
            "label_studio_url": os.environ.get("LABEL_STUDIO_URL") or None,
            "api_key": os.environ.get("LABEL_STUDIO_API_KEY") or None,
            "local_files_root": os.environ.get("LOCAL_FILES_DOCUMENT_ROOT") or None,
        }
        return cls(**{**environment, **{k: v for k, v in settings.items() if v is not None}})

    def describe(self) -> str:
        """Where media comes from, safe to log (never the token)."""
        places = [f"media root {self.media_root}"] if self.media_root else []
        if self.local_files_root:
            places.append(f"LOCAL_FILES_DOCUMENT_ROOT {self.local_files_root}")
        if self.label_studio:
            places.append(f"Label Studio {self.label_studio.url}")
        if self.allowed.entries:
            places.append(f"allowed {', '.join(self.allowed.entries)}")
        return "; ".join(places) or "no media source configured"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MediaResolver:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # --- the API -----------------------------------------------------------------------------

    def resolve(self, reference: str) -> MediaOutcome:
        """The local file behind `reference`, or why there is none (never raises for a bad reference)."""
        with self._lock:
            known = self._outcomes.get(reference)
        if known is not None:
            return known
        try:
            outcome = self._resolve(reference)
        except MediaRefused as refusal:
            outcome = MediaOutcome(reference, MediaStatus.REFUSED, reason=str(refusal))
        except MediaUnavailable as problem:
            outcome = MediaOutcome(reference, MediaStatus.MISSING, reason=str(problem))
        with self._lock:
            if reference not in self._outcomes:
                self._outcomes[reference] = outcome
                self._report.add(outcome)
            return self._outcomes[reference]

    def local_path(self, reference: str) -> Path | None:
        """`MediaLookup`: the local file, or None when it is missing or refused (see `report`)."""
        return self.resolve(reference).path

    def report(self) -> MediaReport:
        with self._lock:
            return MediaReport(Counter(self._report.counts), Counter(self._report.reasons),
                               dict(self._report.examples))

    def prefetch(self, references: Iterable[str],
                 on_resolved: Callable[[MediaOutcome], None] | None = None) -> None:
        """Resolve every reference, `limits.workers` at a time; `on_resolved` is called once per distinct one."""
        pending: set[Future] = set()
        seen: set[str] = set()

        def finish(done: set[Future]) -> None:
            for future in done:
                outcome = future.result()
                if on_resolved is not None:
                    on_resolved(outcome)

        with ThreadPoolExecutor(max_workers=max(self.limits.workers, 1), thread_name_prefix="lsflow-media") as pool:
            for reference in references:
                if reference in seen:
                    continue
                seen.add(reference)
                pending.add(pool.submit(self.resolve, reference))
                if len(pending) >= self.limits.workers * 4:  # bounded: never one future per task of a huge export
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    finish(done)
            finish(set(pending))

    # --- resolution ----------------------------------------------------------------------------

    def _resolve(self, reference: str) -> MediaOutcome:
        if not isinstance(reference, str) or not reference.strip():
            raise MediaRefused("an empty media reference")
        parsed = MediaReference.parse(reference)
        if parsed.kind is MediaKind.HTTP:
            if parsed.route is not None and self._is_label_studio_url(parsed):
                # A full URL of the instance itself (exports made with a host set): a copy on disk may have it.
                return self._label_studio_route(parsed, full_url=reference)
            return self._download(reference, reference)
        if parsed.kind is MediaKind.CLOUD:
            fetched = self._cloud.fetch(parsed)
            status = MediaStatus.CACHED if fetched.from_cache else MediaStatus.DOWNLOADED
            return MediaOutcome(reference, status, fetched.path)
        if parsed.kind in (MediaKind.UPLOAD, MediaKind.LOCAL_FILES):
            return self._label_studio_route(parsed, full_url=None)
        if parsed.kind is MediaKind.PATH:
            return self._plain_path(reference)
        if parsed.kind is MediaKind.MALFORMED:
            raise MediaRefused("a URL whose host cannot be parsed")
        raise MediaRefused(
            f"'{parsed.scheme}:' references are not read: only Label Studio paths, http(s) links and "
            f"{', '.join(s + '://' for s in CLOUD_SCHEMES)} objects"
        )

    def _is_label_studio_url(self, parsed: MediaReference) -> bool:
        """Whether a full URL is the instance's own: its origin, with the route at the root or under the
        path of LABEL_STUDIO_URL (an instance served under a sub-path)."""
        return (self.label_studio is not None and parsed.mount in ("", self._label_studio_mount)
                and _same_origin(parsed.text, self.label_studio.origin))

    def _label_studio_route(self, parsed: MediaReference, full_url: str | None) -> MediaOutcome:
        if parsed.route is MediaKind.UPLOAD:
            return self._upload(parsed.text, parsed.path, full_url)
        return self._local_file(parsed.text, parsed.path, full_url)

    def _upload(self, reference: str, relative: str, full_url: str | None) -> MediaOutcome:
        if not relative or any(segment in ("", ".") for segment in _path_segments(relative)):
            raise MediaRefused("not an upload path /data/upload/<project>/<file>")
        _refuse_traversal(relative)
        if self.media_root is not None:
            local = _under(self.media_root / "upload", relative)
            if local.is_file():
                return MediaOutcome(reference, MediaStatus.LOCAL, local)
        if self.label_studio is None:
            where = f"not under the media root {self.media_root / 'upload'}, and " if self.media_root else ""
            raise MediaUnavailable(
                f"{where}no Label Studio to download uploads from: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, "
                "or --media-root to a copy of Label Studio's media folder (the one holding upload/)"
            )
        return self._download(reference, full_url or self.label_studio.url + reference, immutable=True)

    def _local_file(self, reference: str, relative: str, full_url: str | None) -> MediaOutcome:
        if not relative:
            raise MediaRefused("a local-files URL that names no file (?d= is empty)")
        _refuse_traversal(relative)
        if relative.startswith(("/", "\\")):
            raise MediaRefused(
                "?d= holds an absolute path; Label Studio's local files are relative to LOCAL_FILES_DOCUMENT_ROOT"
            )
        if self.local_files_root is not None:
            local = _under(self.local_files_root, relative)
            if local.is_file():
                return MediaOutcome(reference, MediaStatus.LOCAL, local)
        if self.label_studio is not None:
            return self._download(reference, full_url or self.label_studio.url + reference)
        if self.local_files_root is not None:
            raise MediaUnavailable(
                f"not found under LOCAL_FILES_DOCUMENT_ROOT={self.local_files_root}: check that the disk Label "
                "Studio reads is mounted here and that LOCAL_FILES_DOCUMENT_ROOT names the same folder as on the "
                "server (or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to download it)"
            )
        raise MediaUnavailable(
            "a Label Studio local file, and neither LOCAL_FILES_DOCUMENT_ROOT (the mounted folder) nor "
            "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (to download it) is set"
        )

    def _plain_path(self, reference: str) -> MediaOutcome:
        path = Path(reference)  # a file name, not a URL: '%' is part of it
        _refuse_traversal(reference)
        roots = [root for root in (self.media_root, self.local_files_root) if root is not None]
        if path.is_absolute():
            root = next((r for r in roots if path.is_relative_to(r)), None)
            if root is None:
                raise MediaRefused(
                    "an absolute path outside the media root and LOCAL_FILES_DOCUMENT_ROOT "
                    f"({', '.join(map(str, roots)) or 'neither is set'})"
                )
            path = path.relative_to(root)
        elif self.local_files_root is not None:
            root = self.local_files_root
        else:
            raise MediaUnavailable("a relative path, and no LOCAL_FILES_DOCUMENT_ROOT to read it under")
        local = _under(root, str(path))
        if not local.is_file():
            raise MediaUnavailable(f"not found under {root}: check that the same disk is mounted on this machine")
        return MediaOutcome(reference, MediaStatus.LOCAL, local)

    def _download(self, reference: str, url: str, immutable: bool = False) -> MediaOutcome:
        fetched = self._http.fetch(url, immutable=immutable)
        status = MediaStatus.CACHED if fetched.from_cache else MediaStatus.DOWNLOADED
        return MediaOutcome(reference, status, fetched.path)


def _same_origin(url: str, origin: Origin) -> bool:
    try:
        return Origin.of(url) == origin
    except ValueError:
        return False


def media_keys(label_config: LabelConfig | None) -> tuple[str, ...]:
    """The task data keys that hold media files: those of Image/Audio tags, else `image` and `audio`."""
    if label_config is None:
        return DEFAULT_MEDIA_KEYS
    return tuple(dict.fromkeys(o.data_key for o in label_config.objects if o.tag in MEDIA_OBJECT_TAGS))


def media_references(tasks: Iterable[Task], keys: Iterable[str]) -> Iterator[str]:
    """Every media reference of the tasks under `keys` (multi-page values one by one), in task order."""
    keys = tuple(keys)
    for task in tasks:
        for key in keys:
            value = task.data.get(key)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and item:
                    yield item
