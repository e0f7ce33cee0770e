"""The production profile (deploy/) for real: Dagster's instance on PostgreSQL, the daemon's run queue,
the code server and two Celery workers (Redis broker) backfill 8 project partitions.

Asserted from Dagster's own records (run records, step and engine events, materializations):
every run succeeded; at most 2 runs overlapped (the per-server tag limit) and at most 1 snapshot step
(the `label_studio` pool), while the same overlap measure finds 2 runs and 2 other steps at once, so it
can fail; steps ran on both workers; and a daemon killed mid-backfill and started again finishes the
backfill with every partition built exactly once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster_graphql.cli import execute_query

from lsflow_tests.deploy.services import Process, postgres_server, process, redis_server, wait_for_port
from lsflow_tests.label_studio_server import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
PROJECT_IDS = [str(n) for n in range(101, 109)]
# Limits of deploy/dagster.yaml (tag limit per Label Studio server) and deploy/init.sh's default pool limit.
RUNS_PER_SERVER = 2
SNAPSHOTS_AT_ONCE = 1
SNAPSHOT_STEP = "label_studio_snapshot"
# The backfill's assets (a small graph keeps the test short; COCO is the only format), each materialized
# once per partition, and their steps (the formats are one multi-asset step). With shards of 4 task ids,
# each project's 8 tasks (ids 101-108) are 3 shards, each its own step of `dataset_shards`. The shards
# and the agreement both follow the store, so each run has steps for the two workers at once.
SHARD_SIZE = 4
ASSETS = ["label_studio_snapshot", "normalized_tasks", "dataset_shards", "dataset_coco", "annotator_agreement"]
SHARD_STEPS = [f"dataset_shards.build_shard[{first}_{first + SHARD_SIZE}]" for first in (100, 104, 108)]
STEPS = ["label_studio_snapshot", "normalized_tasks", "dataset_shards.plan_shards", *SHARD_STEPS,
         "dataset_shards.shards_built", "datasets", "annotator_agreement"]

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at the very instant of a start does not overlap it)."""
    pairs = list(intervals)
    edges = sorted([(start, 1) for start, _ in pairs] + [(end, -1) for _, end in pairs])
    open_now = most = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


def test_max_overlap_counts_by_hand():
    assert max_overlap([(0, 10), (5, 15), (12, 20)]) == 2
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_overlap(iter([(0, 10), (1, 9), (2, 8)])) == 3


def _wait(condition: Callable[[], bool], timeout: float, what: str, processes: Iterable[Process]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for proc in processes:
            if proc.popen.poll() is not None:
                raise AssertionError(f"{proc.name} exited while waiting for {what}:\n{proc.log_tail()}")
        time.sleep(0.5)
    logs = "\n\n".join(f"--- {proc.name}\n{proc.log_tail()}" for proc in processes)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")


def _failures(instance: dg.DagsterInstance, runs: list[dg.DagsterRun], services: Iterable[Process]) -> str:
    """Why a backfill did not succeed: each unsuccessful run's failure events, and the services' logs."""
    lines = []
    for run in runs:
        if run.status != dg.DagsterRunStatus.SUCCESS:
            lines.append(f"run {run.run_id} partition {run.tags.get('dagster/partition')}: {run.status}")
            for record in instance.get_records_for_run(run.run_id, limit=10_000).records:
                event = record.event_log_entry.dagster_event
                if event is not None and event.is_failure or record.event_log_entry.level >= 40:
                    lines.append(f"  {record.event_log_entry.step_key}: {record.event_log_entry.message}")
    logs = "\n\n".join(f"--- {proc.name}\n{proc.log_tail()}" for proc in services)
    return "\n".join(lines) + "\n\n" + logs


def _projects(root: Path) -> Path:
    """8 small image projects: copies of the sample project 1's export under new project ids."""
    sample = REPO / "data" / "sample" / "projects" / "1"
    for pid in PROJECT_IDS:
        shutil.copytree(sample, root / pid)
    return root


@pytest.mark.deploy
def test_backfill_on_postgres_with_queue_pool_and_celery_workers(tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    logs.mkdir()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    output = tmp_path / "output"
    with ExitStack() as stack:
        pg = stack.enter_context(postgres_server())
        redis_port = stack.enter_context(redis_server(logs))
        code_port = free_port()
        environment = {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(pg.port), "DAGSTER_PG_DB": pg.database,
            "DAGSTER_PG_USER": pg.user, "DAGSTER_PG_PASSWORD": pg.password,
            "LSFLOW_CELERY_BROKER": f"redis://127.0.0.1:{redis_port}/0",
            "LSFLOW_CELERY_BACKEND": f"redis://127.0.0.1:{redis_port}/1",
            "LSFLOW_CODE_SERVER_HOST": "127.0.0.1", "LSFLOW_CODE_SERVER_PORT": str(code_port),
            "LSFLOW_SOURCE": "files", "LSFLOW_PROJECTS_DIR": str(_projects(tmp_path / "projects")),
            "LSFLOW_MEDIA_ROOT": str(REPO / "data" / "sample" / "media"), "LSFLOW_OUTPUT_ROOT": str(output),
            "LSFLOW_FORMATS": "COCO", "LSFLOW_WORKERS": "1", "LSFLOW_SHARD_SIZE": str(SHARD_SIZE),
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        }
        for key, value in environment.items():
            monkeypatch.setenv(key, value)  # this process reads the same instance, through the same config
        env = dict(os.environ)

        # The profile's one-off preparation, before any process opens the instance (each would create the
        # tables it misses, racing the migration): tables, and the label_studio pool's limit.
        init = subprocess.run(["bash", str(DEPLOY / "init.sh")], env=env, cwd=REPO, capture_output=True, text=True)
        assert init.returncode == 0, init.stdout + init.stderr

        def start(name: str, *command: str) -> Process:
            return stack.enter_context(process(name, command, env, REPO, logs))

        code_server = start("code_server", str(BIN / "dagster"), "code-server", "start", "-f",
                            str(DEPLOY / "definitions.py"), "-h", "127.0.0.1", "-p", str(code_port), "--location-name", "lsflow")
        # Solo pool: each worker runs one step at a time in its own process (production: prefork, --concurrency).
        workers = [start(f"celery_{name}", str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                         "-y", str(DEPLOY / "celery.yaml"), "-n", name, "-i", "lsflow.defs.factory", "--", "--pool=solo")
                   for name in ("w1", "w2")]
        instance = stack.enter_context(dg.DagsterInstance.get())
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions("label_studio_projects", PROJECT_IDS)
        wait_for_port(code_port, 60, code_server)

        # The backfill as the UI launches it (GraphQL), through the workspace the daemon reads.
        workspace = stack.enter_context(WorkspaceProcessContext(instance, WorkspaceFileTarget([str(DEPLOY / "workspace.yaml")])))
        _wait(lambda: workspace.reload_code_location("lsflow") is None
              and not workspace.create_request_context().has_code_location_error("lsflow"),
              90, "the code server to load lsflow", [code_server])
        answer = execute_query(workspace, LAUNCH_BACKFILL, {"params": {
            "selector": {"repositorySelector": {"repositoryLocationName": "lsflow", "repositoryName": "__repository__"},
                         "partitionSetName": "export_project_partition_set"},
            "partitionNames": PROJECT_IDS,
            "assetSelection": [{"path": [asset]} for asset in ASSETS],
        }})["data"]["launchPartitionBackfill"]
        assert answer["__typename"] == "LaunchBackfillSuccess", answer
        backfill_id = answer["backfillId"]

        backfill_runs = dg.RunsFilter(tags={"dagster/backfill": backfill_id})

        def runs_with(*statuses: dg.DagsterRunStatus) -> list[dg.DagsterRun]:
            return [run for run in instance.get_runs(backfill_runs) if run.status in statuses]

        daemon = start("daemon", str(BIN / "dagster-daemon"), "run", "-w", str(DEPLOY / "workspace.yaml"))
        services = [code_server, *workers, daemon]
        # Kill the daemon once some runs have finished and others still wait in the queue.
        _wait(lambda: len(runs_with(dg.DagsterRunStatus.SUCCESS)) >= 2 and len(runs_with(dg.DagsterRunStatus.QUEUED)) >= 2,
              180, "2 finished runs while others are queued", services)
        daemon.kill()
        assert instance.get_backfill(backfill_id).status == BulkActionStatus.REQUESTED  # type: ignore[union-attr]
        queued = {run.run_id for run in runs_with(dg.DagsterRunStatus.QUEUED)}
        time.sleep(5)  # more than two dequeue intervals: nobody else takes runs off the queue
        assert {run.run_id for run in runs_with(dg.DagsterRunStatus.QUEUED)} == queued
        daemon = start("daemon_again", str(BIN / "dagster-daemon"), "run", "-w", str(DEPLOY / "workspace.yaml"))
        services = [code_server, *workers, daemon]
        _wait(lambda: instance.get_backfill(backfill_id).status != BulkActionStatus.REQUESTED,  # type: ignore[union-attr]
              360, "the backfill to complete", services)
        assert instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS, (  # type: ignore[union-attr]
            _failures(instance, instance.get_runs(backfill_runs), services))

        # One successful run a partition. A run the daemon was launching when it was killed never starts: the
        # run monitor fails it and the daemon launches it again (the profile's run_retries); that is the only
        # other run there may be.
        runs = [run for run in instance.get_runs(backfill_runs) if run.status == dg.DagsterRunStatus.SUCCESS]
        assert sorted(run.tags["dagster/partition"] for run in runs) == sorted(PROJECT_IDS)
        retried = {run.run_id: run for run in instance.get_runs(backfill_runs) if run.status != dg.DagsterRunStatus.SUCCESS}
        assert all(run.status == dg.DagsterRunStatus.FAILURE for run in retried.values()), (
            _failures(instance, list(retried.values()), services))
        assert {run.parent_run_id for run in instance.get_runs(backfill_runs) if run.parent_run_id} == set(retried)
        assert {run.tags["lsflow/label_studio_server"] for run in runs} == {f"files:{tmp_path / 'projects'}"}

        # Runs: from the run records' start and end times.
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id},
                                                         statuses=[dg.DagsterRunStatus.SUCCESS]))
        run_overlap = max_overlap((r.start_time, r.end_time) for r in records)  # type: ignore[misc]
        # Steps' start and end, and the Celery worker of each step: from the runs' events.
        snapshot_intervals: list[tuple[float, float]] = []
        other_step_intervals: list[tuple[float, float]] = []
        celery_workers: Counter[str] = Counter()
        for run in runs:
            events = [record.event_log_entry for record in instance.get_records_for_run(run.run_id, limit=10_000).records]
            step_times = {(e.step_key, e.dagster_event.event_type): e.timestamp for e in events if e.dagster_event}
            for step in STEPS:
                interval = (step_times[(step, dg.DagsterEventType.STEP_START)],
                            step_times[(step, dg.DagsterEventType.STEP_SUCCESS)])
                (snapshot_intervals if step == SNAPSHOT_STEP else other_step_intervals).append(interval)
            for entry in events:
                event = entry.dagster_event
                if event is None:
                    continue
                if event.event_type == dg.DagsterEventType.ENGINE_EVENT:
                    # dagster-celery's record of the worker (its node name, `w1@host`) that ran a step.
                    worker = event.engine_event_data.metadata.get("Celery worker")
                    if worker is not None:
                        celery_workers[worker.value.split("@")[0]] += 1

        # The controls: the same measure finds 2 runs at once (8 were queued: the limit, not chance, kept it
        # at 2) and 2 steps outside the pool at once (both workers busy), so 1 snapshot at a time is the pool's.
        assert run_overlap == RUNS_PER_SERVER, "the run queue let more runs of one server run at once, or none overlapped"
        assert max_overlap(other_step_intervals) == len(workers)
        assert max_overlap(snapshot_intervals) == SNAPSHOTS_AT_ONCE
        assert set(celery_workers) == {"w1", "w2"}, celery_workers
        assert sum(celery_workers.values()) == len(runs) * len(STEPS)  # every step a Celery task
        # No partition lost or built twice, across the daemon's crash: every materialization the instance holds.
        materialized = Counter((asset, record.partition_key) for asset in ASSETS
                               for record in instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records)
        assert materialized == Counter({(asset, pid): 1 for asset in ASSETS for pid in PROJECT_IDS})
        for pid in PROJECT_IDS:
            assert (output / f"project-{pid}" / "datasets" / "COCO").is_dir()

