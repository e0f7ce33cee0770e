"""Network faults between lsflow and a real Label Studio, through a fault-injecting proxy on loopback
(`lsflow_tests/fault_proxy.py`): a connection reset mid-download, a body cut short (md5 mismatch),
stalls past the timeout, 502/503 bursts, the server killed and restarted mid-export.

A transient fault is retried and the export equals a fault-free one; a persistent fault fails with a
message naming the project and what to do, leaving the previous snapshot, store, versions and
datasets byte for byte as they were, and nothing half-written behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from label_studio_sdk import LabelStudio

from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import SnapshotRecord, take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.label_studio import LabelStudioError, LabelStudioSource, Timing
from lsflow.sources.media import MediaResolver
from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.fault_proxy import Fault, FaultProxy, call, cut, reset, stall, status
from lsflow_tests.label_studio_server import LabelStudioServer
from lsflow_tests.live_projects import LiveProject
from lsflow_tests.paths import SAMPLE_MEDIA

FORMATS = ["COCO", "YOLO"]
DOWNLOAD = r"^/api/projects/\d+/exports/\d+/download/?$"
CREATE = r"^/api/projects/\d+/exports/?$"
CUT_AT = 1000  # body bytes relayed before a fault; the project's snapshot is several times larger
TIMEOUT = 3.0
FAST = Timing(request_timeout=TIMEOUT, poll_interval=0.1, max_poll_interval=0.5, max_wait=30, retries=2,
              retry_delay=0.1)
STALL = TIMEOUT + 3  # past the request timeout
LSFLOW = Path(sys.executable).parent / "lsflow"


@dataclass
class Setting:
    server: LabelStudioServer
    project: LiveProject
    proxy: FaultProxy
    layout: ProjectLayout
    media_cache: Path
    versions: dict[str, str]  # format → version id of the fault-free export
    datasets: dict[str, dict[Path, bytes]]  # format → its files

    def source(self, timing: Timing = FAST) -> LabelStudioSource:
        return LabelStudioSource(self.proxy.url, self.server.legacy_token, timing=timing)

    def export(self, full: bool = True, timing: Timing = FAST) -> dict[str, str]:
        """Snapshot through the proxy, store, datasets: what `lsflow export` and the Dagster assets do."""
        take_project_snapshot(self.source(timing), self.layout, full=full)
        update_store(self.layout)
        # Media comes straight from the server: these faults are the snapshot's.
        with MediaResolver(SAMPLE_MEDIA, label_studio_url=self.server.url, api_key=self.server.legacy_token,
                           cache_dir=self.media_cache) as media:
            results = build_datasets(self.layout, FORMATS, media, DatasetOptions(workers=1)).results
        published = {name: result.version for name, result in results.items()}
        return {name: version.version_id for name, version in published.items() if version is not None}

    def assert_equals_fault_free(self, versions: dict[str, str]) -> None:
        assert versions == self.versions and sorted(versions) == sorted(FORMATS)
        for name in FORMATS:
            assert dataset_files(self.layout.dataset_dir(name)) == self.datasets[name]


@pytest.fixture(scope="module")
def setting(label_studio, image_project, tmp_path_factory) -> Iterator[Setting]:
    """The session's image project (only read: each export makes a snapshot of it), exported once without faults."""
    project = image_project
    root = tmp_path_factory.mktemp("network-faults")
    with FaultProxy(label_studio.port) as proxy:
        setting = Setting(label_studio, project, proxy, ProjectLayout(root / "out", str(project.id)),
                          root / "media-cache", {}, {})
        setting.versions = setting.export()
        setting.datasets = {name: dataset_files(setting.layout.dataset_dir(name)) for name in FORMATS}
        assert setting.layout.snapshot_export.stat().st_size > 4 * CUT_AT
        assert not proxy.hits()
        yield setting


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file's bytes, every link's target and every folder under `root`; the lock file aside
    (each step writes its holder into it)."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                found[relative] = f"link to {os.readlink(path)}"
            elif path.is_dir():
                found[relative] = "folder"
            elif name != ".lock":
                found[relative] = path.read_bytes()
    return found


def leftovers(root: Path) -> list[str]:
    """What a step builds in before publishing or moves aside before removing, and a download's part file.
    (A dataset build leaves what it replaced in `reuse/.trash/` for the next build to remove.)"""
    return [name for name in tree(root) if name.endswith("export.json.part") or any(
        part.startswith((".staging-", ".removing-")) or ".link-" in part or (
            part.startswith(".retired-") and ".trash" not in Path(name).parts) for part in Path(name).parts)]


# faults, the hits they must make, download requests, what each retry is logged with
TRANSIENT = {
    "connection reset mid-download": (
        [reset(DOWNLOAD, after=CUT_AT)], {"reset": 1}, 2, ["download snapshot", "Connection reset by peer"]),
    "body cut short (md5 mismatch)": (
        [cut(DOWNLOAD, after=CUT_AT)], {"cut": 1}, 2, ["download snapshot", "arrived damaged", "bytes with md5"]),
    "download stalls past the timeout": (
        [stall(DOWNLOAD, STALL, after=CUT_AT)], {"stall": 1}, 2, ["download snapshot", "ReadTimeout"]),
    "connection reset answering the snapshot's creation": (
        [reset(CREATE, after=0)], {"reset": 1}, 1, ["create a snapshot of project"]),
    "502 burst, then a 503 on the download": (
        [status(502, times=2), status(503, DOWNLOAD)], {"status": 3}, 2,
        ["read project", "HTTP 502", "download snapshot", "HTTP 503"]),
}


@pytest.mark.parametrize("faults, hits, downloads, logged", TRANSIENT.values(), ids=list(TRANSIENT))
def test_a_transient_fault_is_retried_and_the_export_equals_a_fault_free_one(
        setting: Setting, faults: list[Fault], hits: dict[str, int], downloads: int, logged: list[str],
        caplog: pytest.LogCaptureFixture):
    setting.proxy.clear()
    setting.proxy.inject(*faults)
    with caplog.at_level(logging.WARNING, logger="lsflow.sources.label_studio"):
        versions = setting.export()
    retries = "\n".join(r.getMessage() for r in caplog.records if r.name == "lsflow.sources.label_studio")
    assert all(text in retries for text in logged), retries
    assert {kind: len(setting.proxy.hits(kind)) for kind in hits} == hits  # the faults did happen
    assert sum(1 for seen in setting.proxy.seen if seen.path.endswith("/download")) == downloads
    setting.assert_equals_fault_free(versions)
    assert SnapshotRecord.read(setting.layout).mode == "full"
    assert leftovers(setting.layout.root) == []


def test_a_502_burst_during_an_incremental_export_is_retried(setting: Setting):
    """The incremental path: a temporary view, the search for deleted tasks beside the snapshot."""
    setting.proxy.clear()
    setting.proxy.inject(status(502, times=2))  # no request fails more than twice: retries=2 recovers
    versions = setting.export(full=False)
    assert len(setting.proxy.hits("status")) == 2
    assert any("/api/dm/views" in seen.path for seen in setting.proxy.seen)  # it was incremental
    record = SnapshotRecord.read(setting.layout)
    assert record.mode == "incremental" and record.deleted_task_ids == []
    setting.assert_equals_fault_free(versions)
    assert leftovers(setting.layout.root) == []


PERSISTENT = {
    "connection reset on every download": (
        [reset(DOWNLOAD, after=CUT_AT, times=None)], FAST, "download snapshot",
        "after 3 attempts: ReadError", "Is Label Studio running and reachable from here?"),
    "every download cut short": (
        [cut(DOWNLOAD, after=CUT_AT, times=None)], FAST, "download snapshot",
        "after 3 attempts: snapshot", "a proxy between lsflow and Label Studio may be cutting responses short"),
    "every download stalls": (
        [stall(DOWNLOAD, STALL, times=None)], FAST, "download snapshot",
        "after 3 attempts: ReadTimeout", "Is Label Studio running and reachable from here?"),
    "every request answered 503": (
        [status(503, times=None)], FAST, "read project",
        "after 3 attempts: HTTP 503", "Is Label Studio running and reachable from here?"),
    # The creating request is given max_wait and not repeated: the server may still be building the snapshot.
    "the snapshot's creation never answered": (
        [stall(CREATE, STALL, times=None, method="POST")], replace(FAST, max_wait=TIMEOUT), "create a snapshot",
        f"no answer within {TIMEOUT:g} s (ReadTimeout)",
        "raise the maximum wait (`lsflow export --max-wait`, Dagster: max_wait_seconds)"),
}


@pytest.mark.parametrize("faults, timing, action, what, advice", PERSISTENT.values(), ids=list(PERSISTENT))
def test_a_persistent_fault_fails_clearly_and_leaves_the_previous_export_untouched(
        setting: Setting, faults: list[Fault], timing: Timing, action: str, what: str, advice: str):
    setting.proxy.clear()
    before = tree(setting.layout.root)
    setting.proxy.inject(*faults)
    started = time.monotonic()
    with pytest.raises(LabelStudioError) as failure:
        setting.export(timing=timing)
    elapsed = time.monotonic() - started
    message = str(failure.value)
    assert f"could not {action}" in message and f"project {setting.project.id} at {setting.proxy.url}" in message
    assert what in message and advice in message
    assert "\n" not in message and len(message) < 600
    assert setting.proxy.hits()
    # Never longer than its attempts: timeouts and backoff, nothing hangs.
    assert elapsed < (timing.retries + 1) * (TIMEOUT + 2)
    assert tree(setting.layout.root) == before  # snapshot, store, versions, datasets: byte for byte
    assert leftovers(setting.layout.root) == []
    setting.proxy.clear()


def kill(server: LabelStudioServer) -> None:
    """SIGKILL the server and its children (the CLI runs the web server as a child), as an OOM killer would."""
    process = server._process
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    server.stop()  # forgets the dead process


def test_server_killed_mid_export_fails_clearly_then_a_rerun_recovers_while_it_restarts(setting: Setting):
    """The Community Edition finishes the snapshot inside the POST; the server is killed after it,
    as the download (where Enterprise would poll) is asked for. The export fails clearly; restarted
    (same port, same data), the next export retries through the restart and equals a fault-free one."""
    server, proxy = setting.server, setting.proxy
    proxy.clear()
    before = tree(setting.layout.root)
    proxy.inject(call(DOWNLOAD, lambda: kill(server)))
    try:
        with pytest.raises(LabelStudioError) as failure:
            setting.export()
        message = str(failure.value)
        assert "could not download snapshot" in message and f"of project {setting.project.id}" in message
        assert "HTTP 502. Is Label Studio running and reachable from here?" in message
        assert tree(setting.layout.root) == before and leftovers(setting.layout.root) == []

        proxy.clear()
        restart = threading.Thread(target=server.start)
        restart.start()
        # Patient enough for the restart (a few seconds): 0.5 + 1 + 2 + 4 + 8 + 16 s of backoff.
        versions = setting.export(timing=replace(FAST, retries=6, retry_delay=0.5))
        restart.join(120)
        assert proxy.gateway_errors > 0  # the export did meet the server down, and waited for it
        assert any(seen.path.endswith("/download") for seen in proxy.seen)
        setting.assert_equals_fault_free(versions)
        assert leftovers(setting.layout.root) == []
    finally:
        proxy.clear()
        if server._process is None:
            server.start()
    # The session's server is healthy again for the tests after this one, tokens and all.
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    assert server.client is not None and server.client.projects.get(id=setting.project.id).id == setting.project.id
    assert LabelStudio(base_url=server.url, api_key=server.personal_token).projects.get(id=setting.project.id)


def test_cli_export_with_a_persistent_fault_exits_1_with_one_line_and_keeps_the_previous_output(
        setting: Setting, tmp_path):
    out = tmp_path / "out"

    def lsflow_export() -> subprocess.CompletedProcess:
        environment = {**os.environ, "LABEL_STUDIO_URL": setting.proxy.url,
                       "LABEL_STUDIO_API_KEY": setting.server.legacy_token}
        for name in ("DEBUG", "LOG_LEVEL"):
            environment.pop(name, None)
        return subprocess.run([str(LSFLOW), "export", str(setting.project.id), "COCO", "--path", str(out),
                               "--workers", "1"], env=environment, capture_output=True, text=True, timeout=300)

    setting.proxy.clear()
    good = lsflow_export()
    assert good.returncode == 0, good.stderr
    before = tree(out)
    setting.proxy.inject(cut(DOWNLOAD, after=CUT_AT, times=None))
    try:
        failed = lsflow_export()
    finally:
        setting.proxy.clear()
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    # Each retry is logged as a warning; the error is the last line, and only one.
    *warnings, error = failed.stderr.strip().splitlines()
    assert len(warnings) == 4 and all(" WARNING " in line and "retrying in" in line for line in warnings)
    assert error.startswith("Error: could not download snapshot ") and f"of project {setting.project.id}" in error
    assert "after 5 attempts" in error and "may be cutting responses short" in error
    assert tree(out) == before
    assert leftovers(out) == []
