"""How cheaply can Label Studio tell which known tasks it no longer has? Each listing the API offers, timed.

    .venv/bin/python benchmarks/deletion_listing.py [--tasks 20000] [--deletions 10] [--repeat 3]

Starts `.venv-ls/bin/label-studio` on a free port in a temporary folder, imports `--tasks` tasks the
way `incremental_live.py` does (1–2 annotations each, some predictions), deletes `--deletions` tasks
at scattered positions, then times (median of `--repeat`, wall seconds, one client):

- `find_deleted` as lsflow calls it (`LabelStudioSource.deleted_task_ids`), and its request count, with
  `--at-once` requests in flight;
- one Data Manager count over an id range (`page_size=1`, the `total` of the answer);
- listing 128 tasks of an id range with `include=id` (what `find_deleted` lists below `LIST_BELOW`);
- every id of the project, paged through the Data Manager's task list with `include=id` (one run);
- every id through `/api/projects/{id}/tasks/` (the simple serializer, newest first; one run).

Every strategy's answer must equal the deleted ids before its time is printed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))
sys.path.insert(0, str(REPO_ROOT))

from incremental_live import CONFIG, import_task  # noqa: E402

from lsflow.sources import label_studio as label_studio_source  # noqa: E402
from lsflow.sources.label_studio import LabelStudioSource  # noqa: E402
from lsflow_tests.label_studio_server import LabelStudioServer, label_studio_binary  # noqa: E402


def id_range_query(low: int, high: int) -> str:
    return orjson.dumps({"filters": {"conjunction": "and", "items": [
        {"filter": "filter:tasks:id", "operator": "in", "type": "Number", "value": {"min": low, "max": high}}]}}).decode()


def timed(repeat: int, work: Callable[[], object]) -> tuple[float, object]:
    seconds, answer = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        answer = work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--deletions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--at-once", type=int, nargs="+", default=[label_studio_source.DELETION_REQUESTS],
                        help="requests find_deleted keeps in flight (each value timed)")
    parser.add_argument("--quick", action="store_true", help="only find_deleted and single requests, no full listings")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="lsflow-deletions-"))
    server = LabelStudioServer(label_studio_binary(), work / "label-studio")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    try:
        server.start()
        project = server.create_project("deletion listing", CONFIG.read_text())
        started = time.perf_counter()
        known: list[int] = []
        for first in range(0, args.tasks, args.chunk):
            chunk = [import_task(rng, project, n) for n in range(first, min(first + args.chunk, args.tasks))]
            known += server.import_tasks(project, chunk)
        print(f"imported {len(known)} tasks in {time.perf_counter() - started:.0f} s")
        deleted = set(rng.sample(known, args.deletions))
        for task_id in deleted:
            server.client.tasks.delete(id=task_id)
        http = server._http
        source = LabelStudioSource(server.url, server.legacy_token)
        requests = [0]

        calls = source._call

        def counted_call(*call_args, **call_kwargs):
            requests[0] += 1
            return calls(*call_args, **call_kwargs)
        source._call = counted_call  # type: ignore[method-assign]

        def check(name: str, seconds: float, found: set[int], note: str = "") -> None:
            if found != deleted:
                raise SystemExit(f"{name}: found {sorted(found)[:10]}, deleted {sorted(deleted)}")
            print(f"{name:<58} {seconds:7.2f} s  {note}")

        for at_once in args.at_once:
            label_studio_source.DELETION_REQUESTS = at_once
            requests[0] = 0
            seconds, found = timed(args.repeat, lambda: source.deleted_task_ids(str(project), known))
            check(f"find_deleted, {at_once} request(s) at once", seconds, found, f"{requests[0] // args.repeat} requests")

        low, high = known[0], known[-1]
        seconds, _ = timed(args.repeat, lambda: http.get("/api/tasks/", params={
            "project": project, "include": "id", "page_size": 1, "query": id_range_query(low, high)}).json()["total"])
        print(f"{'one count over the whole id range':<58} {seconds:7.2f} s")
        middle = known[len(known) // 2]
        seconds, _ = timed(args.repeat, lambda: http.get("/api/tasks/", params={
            "project": project, "include": "id", "page_size": 128,
            "query": id_range_query(middle, middle + 127)}).json())
        print(f"{'listing 128 tasks of an id range, include=id':<58} {seconds:7.2f} s")

        def dm_ids(page_size: int) -> set[int]:
            ids, page = set(), 1
            while True:
                body = http.get("/api/tasks/", params={"project": project, "include": "id", "fields": "task_only",
                                                       "page_size": page_size, "page": page}).json()
                ids.update(task["id"] for task in body["tasks"])
                if len(ids) >= body["total"] or not body["tasks"]:
                    return set(known) - ids
                page += 1
        if args.quick:
            return
        for page_size in (1000, 5000):
            seconds, found = timed(1, lambda size=page_size: dm_ids(size))  # type: ignore[misc]
            check(f"every id, Data Manager list, include=id, pages of {page_size}", seconds, found, "(one run)")

        def project_tasks_ids(page_size: int) -> set[int]:
            ids, page = set(), 1
            while True:
                response = http.get(f"/api/projects/{project}/tasks/", params={"page_size": page_size, "page": page})
                if response.status_code == 404:
                    return set(known) - ids
                batch = response.json()
                ids.update(task["id"] for task in batch)
                if len(batch) < page_size:
                    return set(known) - ids
                page += 1
        seconds, found = timed(1, lambda: project_tasks_ids(5000))
        check("every id, /api/projects/{id}/tasks/, pages of 5000", seconds, found, "(one run)")

        print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
