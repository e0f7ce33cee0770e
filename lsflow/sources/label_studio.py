"""A live Label Studio server as a task source, through its Snapshot API (label-studio-sdk 2.x).

A snapshot is created (`POST /api/projects/{id}/exports/`), polled until it is `completed` (the
Community Edition finishes it inside the POST; Enterprise builds it in the background), downloaded in
chunks to a `.part` file, checked against the server's md5 and only then renamed to `export.json`: a
failure leaves no export behind. Transient failures (connection errors, 502/503/504, 429) are retried
with exponential backoff; everything else fails at once with a message saying what to do.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from lsflow.core.incremental.changes import LIST_BELOW, find_deleted
from lsflow.sources.base import EXPORT_FILE, LABEL_CONFIG_FILE, ProjectInfo, Snapshot

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
# Requests at once while looking for deleted tasks. The Community Edition's server answers one at a time:
# two keep it busy; four were 11 % slower, the requests' threads competing with it (deletion_listing.py).
DELETION_REQUESTS = 2
# The `Server` header of Django's development server, which `label-studio start` runs. It answers a
# kept-alive request ~40 ms late (headers and body go out in two writes, the second held until the
# client's delayed ACK), while a new loopback connection costs well under a millisecond: so the
# deletion check's many small requests close their connection on that server (8.4 → see
# benchmarks/deletion_listing.py).
DEVELOPMENT_SERVER = "WSGIServer/"
DOWNLOAD_CHUNK = 1 << 20
LEGACY_DISABLED_HINT = "legacy token authentication has been disabled"
# Enterprise may say why a snapshot failed in one of these fields; the Community Edition never does.
FAILURE_REASON_FIELDS = ("reason", "error", "traceback", "status_info", "detail")


class LabelStudioError(RuntimeError):
    """A failure talking to Label Studio; the message says what the user can do about it.

    `retryable` is False for failures that will not go away by trying again (bad token, no such
    project, a snapshot the server failed to build), so callers need not retry them.
    """

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class DamagedDownload(LabelStudioError):
    """A downloaded snapshot whose md5 is not the one the server announced."""

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks the snapshot holds (Label Studio's `task_filter_options`)."""

    view: int | None = None  # a Data Manager tab whose filters apply
    finished: str | None = None  # "only" | "exclude"
    annotated: str | None = None  # "only" | "exclude"
    skipped: str | None = None  # "only" | "exclude"
    only_with_annotations: bool = False


@dataclass(frozen=True, slots=True)
class AnnotationFilter:
    """Which annotations the snapshot holds (`annotation_filter_options`).

    All kinds by default: lsflow's annotation policy chooses among them and counts what it leaves
    out (a cancelled annotation is reported as skipped rather than silently missing).
    """

    usual: bool = True
    ground_truth: bool = True
    skipped: bool = True


@dataclass(frozen=True, slots=True)
class Serialization:
    """How much of each task the snapshot spells out (`serialization_options`)."""

    predictions: bool = True  # full predictions, not only their ids
    drafts: bool = False
    annotation_history: bool = False
    # The annotator's email next to the id, so `--annotations annotator:<email>` can match it.
    annotator_details: bool = True


@dataclass(frozen=True, slots=True)
class SnapshotOptions:
    task_filter: TaskFilter = field(default_factory=TaskFilter)
    annotation_filter: AnnotationFilter = field(default_factory=AnnotationFilter)
    serialization: Serialization = field(default_factory=Serialization)

    def request(self) -> dict[str, Any]:
        """The options as `projects.exports.create` takes them."""
        tasks = {key: value for key, value in asdict(self.task_filter).items() if value is not None}
        serialization = self.serialization
        return {
            "task_filter_options": tasks,
            "annotation_filter_options": asdict(self.annotation_filter),
            "serialization_options": {
                "predictions": {"only_id": not serialization.predictions},
                "drafts": {"only_id": not serialization.drafts},
                "include_annotation_history": serialization.annotation_history,
                "annotations__completed_by": {"only_id": not serialization.annotator_details},
            },
        }


@dataclass(frozen=True, slots=True)
class Timing:
    """How long to wait for what. Polling starts at `poll_interval` and grows by `poll_backoff`
    up to `max_poll_interval`; a snapshot not completed after `max_wait` seconds is a failure. Every
    request gets `request_timeout` to answer, but the one creating a snapshot gets `max_wait`: the
    Community Edition builds the snapshot before answering it."""

    request_timeout: float = 60.0
    poll_interval: float = 1.0
    poll_backoff: float = 2.0
    max_poll_interval: float = 30.0
    max_wait: float = 1800.0
    retries: int = 4  # extra attempts for a transient failure
    retry_delay: float = 1.0  # before the first retry; doubles each time


# (bytes downloaded so far, total bytes if the server said)
DownloadProgress = Callable[[int, int | None], None]


class LabelStudioSource:
    """Projects of one Label Studio server; a snapshot of one of them on disk."""

    def __init__(
        self,
        url: str,
        api_key: str,
        options: SnapshotOptions = SnapshotOptions(),
        timing: Timing = Timing(),
        progress: DownloadProgress | None = None,
        httpx_client: httpx.Client | None = None,
    ):
        if not url:
            raise LabelStudioError("no Label Studio URL: set LABEL_STUDIO_URL (e.g. http://localhost:8080)")
        if not api_key:
            raise LabelStudioError(
                "no API key: set LABEL_STUDIO_API_KEY to a personal access token or a legacy token "
                "(Label Studio → Account & Settings)"
            )
        self.url = url.rstrip("/")
        self.options = options
        self.timing = timing
        self.progress = progress
        self._development_server = False
        if httpx_client is None:
            httpx_client = httpx.Client(timeout=timing.request_timeout)  # what the SDK would make
        httpx_client.event_hooks["response"].append(self._note_server)
        try:
            # Retries are ours (the SDK would also retry 500s and a snapshot creation that timed out).
            self.client = LabelStudio(base_url=self.url, api_key=api_key, timeout=timing.request_timeout,
                                      max_retries=0, httpx_client=httpx_client)
        except ApiError as error:  # an expired or malformed personal access token is refused up front
            raise self._explain(error, "use the API key") from None

    def describe(self) -> str:
        return f"label_studio:{self.url}"

    def _note_server(self, response: httpx.Response) -> None:
        self._development_server = response.headers.get("server", "").startswith(DEVELOPMENT_SERVER)

    # --- projects -----------------------------------------------------------------------------------

    def list_projects(self) -> list[ProjectInfo]:
        projects = self._call("list the projects", lambda: list(self.client.projects.list(page_size=100)))
        return [
            ProjectInfo(str(p.id), p.title or "", p.task_number, self._last_task_change(p.id))
            for p in projects
        ]

    def _last_task_change(self, project_id: int) -> str | None:
        """The newest `updated_at` of the project's tasks; it moves when an annotation is added or edited."""
        query = orjson.dumps({"ordering": ["-tasks:updated_at"]}).decode()
        page = self._call(f"read the tasks of project {project_id}",
                          lambda: self.client.tasks.list(project=project_id, page_size=1, query=query))
        newest = next(iter(page.items or []), None)
        changed: Any = newest.updated_at if newest is not None else None  # a datetime; anything else: str() below
        return changed.isoformat() if hasattr(changed, "isoformat") else (str(changed) if changed else None)

    # --- snapshot -----------------------------------------------------------------------------------

    def deleted_task_ids(self, project_id: str, known_ids: list[int]) -> set[int]:
        """Found by counting the project's tasks in id ranges (see `find_deleted`): one request when
        nothing was deleted, a few dozen for ten deletions among 20 000 tasks, where listing every id
        took 17 s (Label Studio loads each listed task's annotations)."""
        pid = _project_number(project_id)

        def tasks_between(low: int, high: int, page_size: int, page: int = 1):
            """A page of the tasks with ids in [low, high], in id order; None for a page past their end."""
            query = orjson.dumps({"filters": {"conjunction": "and", "items": [
                {"filter": "filter:tasks:id", "operator": "in", "type": "Number", "value": {"min": low, "max": high}},
            ]}, "ordering": ["tasks:id"]}).decode()
            options = {"additional_headers": {"Connection": "close"}} if self._development_server else None

            def request():
                try:
                    return self.client.tasks.list(project=pid, include="id", page_size=page_size, page=page,
                                                  query=query, request_options=options)
                except ApiError as error:
                    if page > 1 and error.status_code == 404:
                        return None
                    raise
            return self._call(f"count the tasks of project {pid} with ids {low}-{high}", request, project_id=pid)

        def probe(low: int, high: int, rank: int | None) -> tuple[int, int | None]:
            """The count of the range, and the id at `rank` (a page of one task, in id order)."""
            if rank is not None:
                answer = tasks_between(low, high, 1, rank + 1)
                if answer is not None:
                    return answer.response.total, answer.items[0].id if answer.items else None
            return tasks_between(low, high, 1).response.total, None  # past the range's end: the count alone

        def ids_between(low: int, high: int) -> list[int]:
            # One page holds them all (a range is listed only when it has at most LIST_BELOW tasks): iterating
            # the pager would ask for the next page too, a request answered 404.
            return [task.id for task in tasks_between(low, high, LIST_BELOW).items or ()]

        with ThreadPoolExecutor(DELETION_REQUESTS) as pool:
            return find_deleted(known_ids, probe, ids_between, pool.submit)

    def take_snapshot(self, project_id: str, destination: Path, changed_since: str | None = None,
                      store_dir: Path | None = None) -> Snapshot:
        """The project's export in `destination`; with `changed_since` (server time, Label Studio's
        `%Y-%m-%dT%H:%M:%S.%fZ`) only the tasks updated after it, through a temporary Data Manager view."""
        pid = _project_number(project_id)
        destination.mkdir(parents=True, exist_ok=True)
        project = self._call(f"read project {pid}", lambda: self.client.projects.get(id=pid), project_id=pid)
        label_config = project.label_config or None
        view = self._changed_tasks_view(pid, changed_since) if changed_since else None
        try:
            request = self.options.request()
            if view is not None:
                request["task_filter_options"]["view"] = view
            # The Community Edition builds the whole snapshot inside this request (about a minute for
            # 20 000 tasks): it may take as long as waiting for a background one would.
            created = self._call(f"create a snapshot of project {pid}",
                                 lambda: self.client.projects.exports.create(
                                     id=pid, title=f"lsflow {time.strftime('%Y-%m-%d %H:%M:%S')}", **request,
                                     request_options={"timeout": self.timing.max_wait}),
                                 project_id=pid, long_request=True)
            log.info("project %s: snapshot %s created (%s)%s", pid, created.id, created.status,
                     f", tasks changed after {changed_since}" if changed_since else "")
            export = self._wait_until_completed(pid, created)
        finally:
            if view is not None:
                self._delete_view(view)
        export_path = destination / EXPORT_FILE
        md5 = self._download(pid, export.id, export.md5, export_path)
        if label_config:
            (destination / LABEL_CONFIG_FILE).write_text(label_config, encoding="utf-8")
        return Snapshot(
            project_id=str(pid),
            export_path=export_path,
            label_config=label_config,
            snapshot_id=str(export.id),
            md5=md5,
            source=self.describe(),
        )

    def _changed_tasks_view(self, pid: int, changed_since: str) -> int:
        """A Data Manager view of the tasks updated after `changed_since` (and in the configured view, if any)."""
        data: dict[str, Any] = {"filters": {"conjunction": "and", "items": []}}
        base_view = self.options.task_filter.view
        if base_view is not None:
            data = dict(self._call(f"read view {base_view}", lambda: self.client.views.get(id=str(base_view))).data
                        or {})
            filters = data.get("filters") or {"conjunction": "and", "items": []}
            if filters.get("conjunction") == "or" and len(filters.get("items") or []) > 1:
                raise LabelStudioError(
                    f"view {base_view} combines its filters with OR, so lsflow cannot narrow it to the changed "
                    f"tasks; export in full (run config `full: true`, or `lsflow export --full`) or use an AND view"
                )
            data["filters"] = {"conjunction": "and", "items": list(filters.get("items") or [])}
        data["filters"]["items"].append({"filter": "filter:tasks:updated_at", "operator": "greater",
                                         "type": "Datetime", "value": changed_since})
        view = self._call(f"create a view of project {pid}", lambda: self.client.views.create(project=pid, data=data),
                          project_id=pid)
        return view.id

    def _delete_view(self, view: int) -> None:
        try:
            self._call(f"delete the temporary view {view}", lambda: self.client.views.delete(id=str(view)))
        except LabelStudioError as error:  # a leftover view is untidy, not wrong: keep the real outcome
            log.warning("%s", error)

    def _wait_until_completed(self, pid: int, export):
        started = time.monotonic()
        interval = self.timing.poll_interval
        while True:
            status = export.status
            if status == "completed":
                return export
            if status == "failed":
                raise LabelStudioError(
                    f"Label Studio failed to build snapshot {export.id} of project {pid}: {_failure_reason(export)}. "
                    f"Look at the server's log (or the export in the project's Export dialog) and try again"
                )
            if status not in ("created", "in_progress"):
                raise LabelStudioError(f"snapshot {export.id} of project {pid} has an unknown status {status!r}")
            waited = time.monotonic() - started
            if waited >= self.timing.max_wait:
                raise LabelStudioError(
                    f"snapshot {export.id} of project {pid} is still '{status}' after {waited:.0f} s; "
                    f"the server's export workers may be busy or stopped (Enterprise: check the rq workers). "
                    f"Raise the maximum wait (`lsflow export --max-wait`, Dagster: max_wait_seconds) to wait longer",
                    retryable=True,
                )
            time.sleep(min(interval, self.timing.max_wait - waited))
            interval = min(interval * self.timing.poll_backoff, self.timing.max_poll_interval)
            export = self._call(f"read snapshot {export.id} of project {pid}",
                                functools.partial(self.client.projects.exports.get, id=pid, export_pk=export.id))
            log.debug("project %s: snapshot %s is %s", pid, export.id, export.status)

    def _download(self, pid: int, export_id: int, md5: str | None, path: Path) -> str:
        """Stream the snapshot into `path.part`; `path` appears only once the whole file is verified."""
        partial = path.with_name(path.name + ".part")
        try:
            actual = self._call(f"download snapshot {export_id} of project {pid}",
                                lambda: self._download_once(pid, export_id, md5, partial))
            os.replace(partial, path)
            log.info("project %s: snapshot %s downloaded (%d bytes, md5 %s)", pid, export_id, path.stat().st_size,
                     actual)
            return actual
        finally:
            partial.unlink(missing_ok=True)

    def _download_once(self, pid: int, export_id: int, md5: str | None, partial: Path) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        received = 0
        raw = self.client.projects.exports.with_raw_response
        with raw.download(id=pid, export_pk=export_id, request_options={"chunk_size": DOWNLOAD_CHUNK}) as response, \
                open(partial, "wb") as out:
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            for chunk in response.data:
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if self.progress is not None:
                    self.progress(received, total)
        actual = digest.hexdigest()
        if md5 and actual != md5:
            raise DamagedDownload(
                f"snapshot {export_id} of project {pid} arrived damaged: {received} bytes with md5 {actual}, the "
                f"server announced md5 {md5}. If it persists, a proxy between lsflow and Label Studio may be "
                f"cutting responses short"
            )
        return actual

    # --- errors -------------------------------------------------------------------------------------

    def _call(self, action: str, request: Callable[[], Any], project_id: int | None = None,
              long_request: bool = False):
        """`request()`, retried with exponential backoff while it fails transiently. A `long_request`
        (given `max_wait` to answer) that times out is not repeated: the server may still be at it."""
        delay = self.timing.retry_delay
        failure: httpx.TransportError | DamagedDownload | ApiError
        for attempt in range(self.timing.retries + 1):
            try:
                return request()
            except httpx.TimeoutException as error:
                if long_request:
                    raise LabelStudioError(
                        f"could not {action} at {self.url}: no answer within {self.timing.max_wait:g} s "
                        f"({type(error).__name__}); raise the maximum wait "
                        "(`lsflow export --max-wait`, Dagster: max_wait_seconds)",
                        retryable=True,
                    ) from None
                failure = error
            except (httpx.TransportError, DamagedDownload) as error:
                failure = error
            except ApiError as error:
                if error.status_code not in TRANSIENT_STATUS:
                    raise self._explain(error, action, project_id) from None
                failure = error
            if attempt == self.timing.retries:
                reason = str(failure) if isinstance(failure, DamagedDownload) else (
                    f"{_describe(failure)}. Is Label Studio running and reachable from here?")
                raise LabelStudioError(f"could not {action} at {self.url} after {attempt + 1} attempts: {reason}",
                                       retryable=True) from None
            log.warning("%s: %s; retrying in %.1f s", action, _describe(failure), delay)
            time.sleep(delay)
            delay *= 2

    def _explain(self, error: ApiError, action: str, project_id: int | None = None) -> LabelStudioError:
        status, detail = error.status_code, _detail(error.body)
        if status == 401:
            if LEGACY_DISABLED_HINT in detail:
                return LabelStudioError(
                    f"Label Studio at {self.url} refused the legacy API token: {detail}. Either use a personal "
                    f"access token as LABEL_STUDIO_API_KEY (Account & Settings → Personal Access Token), or have "
                    f"an owner enable legacy tokens (Organization → API Tokens Settings → Legacy tokens; for a new "
                    f"server, start it with LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)"
                )
            return LabelStudioError(
                f"Label Studio at {self.url} refused LABEL_STUDIO_API_KEY (401: {detail}). Check the key: a personal "
                f"access token or a legacy token from Account & Settings of this server, not expired or revoked"
            )
        if status == 403:
            return LabelStudioError(
                f"not allowed to {action} at {self.url} (403: {detail}); the API key's user needs access to the "
                f"project: ask an owner or administrator of the organization"
            )
        if status == 404 and project_id is not None:
            return LabelStudioError(
                f"Label Studio at {self.url} has no project {project_id} (404); check the project id in the "
                f"project's URL ({self.url}/projects/)"
            )
        return LabelStudioError(f"could not {action} at {self.url}: HTTP {status}: {detail}")


def _project_number(project_id: str) -> int:
    try:
        return int(project_id)
    except ValueError:
        raise LabelStudioError(f"'{project_id}' is not a Label Studio project id (a number)") from None


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)[:300]
    text = str(body or "").strip()
    # Error pages are HTML; their markup says nothing useful.
    return "no details" if text.startswith("<") or not text else text[:300]


def _describe(error: Exception) -> str:
    if isinstance(error, ApiError):
        return f"HTTP {error.status_code}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _failure_reason(export) -> str:
    extra = getattr(export, "model_extra", None) or {}
    for name in FAILURE_REASON_FIELDS:
        if extra.get(name):
            return str(extra[name]).strip()[:1000]
    return "the server gave no reason"
