"""Snapshot faults a real Label Studio cannot be made to show on demand, through a fake HTTP transport
behind the real SDK client: Enterprise's background states, a snapshot stuck or failed, a 500 or a
broken connection during the download, a body that fails the md5, a 403, proxies answering 502/503/504.

Every fault must give its own actionable message and leave no export behind.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from lsflow.sources.base import EXPORT_FILE, LABEL_CONFIG_FILE
from lsflow.sources.label_studio import LabelStudioError, LabelStudioSource, Timing
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT

URL = "http://label-studio.test"
PROJECT = 7
SNAPSHOT = 42
EXPORT_BYTES = IMAGE_EXPORT.read_bytes()
FAST = Timing(request_timeout=5, poll_interval=0.01, poll_backoff=2.0, max_poll_interval=0.05, max_wait=0.3,
              retries=2, retry_delay=0.01)


class BrokenBody(httpx.SyncByteStream):
    """A response body that delivers `sent` bytes and then the connection drops."""

    def __init__(self, sent: bytes):
        self.sent = sent

    def __iter__(self) -> Iterator[bytes]:
        yield self.sent
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


class FakeLabelStudio:
    """The Snapshot API of one project; `statuses` are what successive polls see, `downloads` what each
    download request gets (the last one repeats)."""

    def __init__(self, statuses: list[dict] | None = None,
                 downloads: list[Callable[[], httpx.Response]] | None = None,
                 create: list[Callable[[], httpx.Response]] | None = None, md5: str | None = None):
        self.md5 = hashlib.md5(EXPORT_BYTES).hexdigest() if md5 is None else md5
        self.statuses = statuses or [{"status": "completed"}]
        self.downloads = downloads or [lambda: httpx.Response(200, content=EXPORT_BYTES)]
        self.create = create or []
        self.requests: list[tuple[str, str]] = []
        self.times: list[float] = []

    def _export(self, status: dict) -> httpx.Response:
        body = {"id": SNAPSHOT, "title": "lsflow", "md5": self.md5 if status["status"] == "completed" else None,
                "counters": {"task_number": 5}, **status}
        return httpx.Response(200, json=body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.rstrip("/")
        self.requests.append((request.method, path))
        self.times.append(time.monotonic())
        if path == f"/api/projects/{PROJECT}":
            return httpx.Response(200, json={"id": PROJECT, "title": "cars",
                                             "label_config": IMAGE_CONFIG.read_text(), "task_number": 5})
        if re.fullmatch(r"/api/projects/\d+", path):
            return httpx.Response(404, json={"detail": "No Project matches the given query."})
        if path == f"/api/projects/{PROJECT}/exports" and request.method == "POST":
            if self.create:
                return self.create.pop(0)()
            return self._export(self.statuses[0])
        if path == f"/api/projects/{PROJECT}/exports/{SNAPSHOT}":
            polls = sum(1 for method, p in self.requests if p == path)
            return self._export(self.statuses[min(polls, len(self.statuses) - 1)])
        if path == f"/api/projects/{PROJECT}/exports/{SNAPSHOT}/download":
            attempt = sum(1 for method, p in self.requests if p == path) - 1
            return self.downloads[min(attempt, len(self.downloads) - 1)]()
        return httpx.Response(404, text="<html>not found</html>")

    def source(self, timing: Timing = FAST, **kwargs) -> LabelStudioSource:
        client = httpx.Client(transport=httpx.MockTransport(self.handle))
        return LabelStudioSource(URL, "not-a-jwt-so-a-legacy-token", timing=timing, httpx_client=client, **kwargs)

    def count(self, suffix: str) -> int:
        return sum(1 for _, path in self.requests if path.endswith(suffix))


def assert_no_export(destination: Path) -> None:
    assert not (destination / EXPORT_FILE).exists()
    assert not list(destination.glob("*.part"))


def test_background_snapshot_is_polled_with_growing_intervals_until_completed(tmp_path):
    server = FakeLabelStudio(statuses=[{"status": "created"}, {"status": "in_progress"}, {"status": "in_progress"},
                                       {"status": "completed"}])
    snapshot = server.source(Timing(poll_interval=0.02, poll_backoff=4.0, max_wait=10, retries=0)).take_snapshot(
        str(PROJECT), tmp_path)
    polls = [t for t, (_, path) in zip(server.times, server.requests) if path.endswith(f"/exports/{SNAPSHOT}")]
    assert len(polls) == 3  # created (from the POST) → 3 polls → completed
    created = server.times[[path for _, path in server.requests].index(f"/api/projects/{PROJECT}/exports")]
    gaps = [b - a for a, b in zip([created] + polls, polls)]
    assert gaps[0] >= 0.02 and gaps[1] >= 0.08 and gaps[2] >= 0.32 and gaps[0] < gaps[2]
    assert (tmp_path / EXPORT_FILE).read_bytes() == EXPORT_BYTES
    assert snapshot.md5 == hashlib.md5(EXPORT_BYTES).hexdigest()
    assert snapshot.snapshot_id == str(SNAPSHOT)
    assert (tmp_path / LABEL_CONFIG_FILE).read_text() == IMAGE_CONFIG.read_text()


def test_stuck_snapshot_times_out_with_advice(tmp_path):
    server = FakeLabelStudio(statuses=[{"status": "created"}, {"status": "in_progress"}])
    with pytest.raises(LabelStudioError, match=r"snapshot 42 of project 7 is still 'in_progress' after 0 s.*"
                                               r"max_wait_seconds") as error:
        server.source().take_snapshot(str(PROJECT), tmp_path)
    assert error.value.retryable
    assert server.count("/download") == 0
    assert_no_export(tmp_path)


def test_failed_snapshot_reports_the_servers_reason(tmp_path):
    server = FakeLabelStudio(statuses=[{"status": "in_progress"},
                                       {"status": "failed", "reason": "Task 17: invalid JSON in data"}])
    with pytest.raises(LabelStudioError, match="failed to build snapshot 42 of project 7: Task 17: invalid JSON"):
        server.source().take_snapshot(str(PROJECT), tmp_path)
    assert server.count("/download") == 0
    assert_no_export(tmp_path)


def test_failed_snapshot_without_a_reason_says_so(tmp_path):
    server = FakeLabelStudio(statuses=[{"status": "failed"}])
    with pytest.raises(LabelStudioError, match="the server gave no reason") as error:
        server.source().take_snapshot(str(PROJECT), tmp_path)
    assert not error.value.retryable
    assert_no_export(tmp_path)


def test_server_error_on_download_fails_at_once_without_a_file(tmp_path):
    server = FakeLabelStudio(downloads=[lambda: httpx.Response(500, text="<html>Server Error (500)</html>")])
    with pytest.raises(LabelStudioError, match="could not download snapshot 42 of project 7 .*HTTP 500: no details"):
        server.source().take_snapshot(str(PROJECT), tmp_path)
    assert server.count("/download") == 1  # a 500 is not retried
    assert_no_export(tmp_path)


def test_connection_dropped_mid_download_is_retried_from_the_start(tmp_path):
    server = FakeLabelStudio(downloads=[lambda: httpx.Response(200, stream=BrokenBody(EXPORT_BYTES[:1000])),
                                        lambda: httpx.Response(200, content=EXPORT_BYTES)])
    snapshot = server.source().take_snapshot(str(PROJECT), tmp_path)
    assert server.count("/download") == 2
    assert snapshot.export_path.read_bytes() == EXPORT_BYTES


def test_connection_dropping_every_time_fails_without_a_partial_file(tmp_path):
    server = FakeLabelStudio(downloads=[lambda: httpx.Response(200, stream=BrokenBody(EXPORT_BYTES[:1000]))])
    with pytest.raises(LabelStudioError, match=r"after 3 attempts: RemoteProtocolError.*Is Label Studio running"):
        server.source().take_snapshot(str(PROJECT), tmp_path)
    assert server.count("/download") == 3
    assert_no_export(tmp_path)


def test_truncated_body_fails_the_md5_and_leaves_nothing(tmp_path):
    truncated = EXPORT_BYTES[: len(EXPORT_BYTES) // 2]
    server = FakeLabelStudio(downloads=[lambda: httpx.Response(200, content=truncated)])
    expected = hashlib.md5(EXPORT_BYTES).hexdigest()
    with pytest.raises(LabelStudioError, match=f"arrived damaged: {len(truncated)} bytes with md5 "
                                               f"{hashlib.md5(truncated).hexdigest()}, the server announced md5 "
                                               f"{expected}"):
        server.source().take_snapshot(str(PROJECT), tmp_path)
    assert server.count("/download") == 3  # retried, in case it was the network
    assert_no_export(tmp_path)


def test_truncated_once_then_whole_is_accepted(tmp_path):
    server = FakeLabelStudio(downloads=[lambda: httpx.Response(200, content=EXPORT_BYTES[:100]),
                                        lambda: httpx.Response(200, content=EXPORT_BYTES)])
    assert server.source().take_snapshot(str(PROJECT), tmp_path).export_path.read_bytes() == EXPORT_BYTES


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried(tmp_path, status):
    server = FakeLabelStudio(create=[lambda: httpx.Response(status, text="<html>Bad Gateway</html>")])
    snapshot = server.source().take_snapshot(str(PROJECT), tmp_path)
    assert server.count("/exports") == 2
    assert snapshot.export_path.read_bytes() == EXPORT_BYTES


def test_gateway_errors_that_persist_fail_with_advice(tmp_path):
    server = FakeLabelStudio(create=[lambda: httpx.Response(503, text="busy")] * 5)
    with pytest.raises(LabelStudioError, match=r"could not create a snapshot of project 7 .* after 3 attempts: "
                                               r"HTTP 503\. Is Label Studio running"):
        server.source().take_snapshot(str(PROJECT), tmp_path)
    assert_no_export(tmp_path)


def test_forbidden_says_who_can_grant_access(tmp_path):
    server = FakeLabelStudio(create=[lambda: httpx.Response(
        403, json={"detail": "You do not have permission to perform this action."})])
    with pytest.raises(LabelStudioError, match=r"not allowed to create a snapshot of project 7 .*\(403: You do not "
                                               r"have permission.*ask an owner or administrator"):
        server.source().take_snapshot(str(PROJECT), tmp_path)
    assert server.count("/exports") == 1
    assert_no_export(tmp_path)


def test_slow_snapshot_creation_is_not_repeated(tmp_path):
    def timeout() -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    server = FakeLabelStudio(create=[timeout])
    with pytest.raises(LabelStudioError, match=r"no answer within 0.3 s \(ReadTimeout\); raise the maximum wait"):
        server.source().take_snapshot(str(PROJECT), tmp_path)
    assert server.count("/exports") == 1  # the server may still be building it: do not start another


def test_download_is_streamed_in_chunks_with_progress(tmp_path):
    big = orjson.dumps([{"id": i, "data": {"text": "x" * 1000}, "annotations": []} for i in range(3000)])
    server = FakeLabelStudio(md5=hashlib.md5(big).hexdigest(),
                             downloads=[lambda: httpx.Response(200, content=big)])
    seen: list[int] = []
    server.source(progress=lambda done, total: seen.append(done)).take_snapshot(str(PROJECT), tmp_path)
    assert len(big) > 2 * (1 << 20)
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == len(big)
    assert (tmp_path / EXPORT_FILE).read_bytes() == big
