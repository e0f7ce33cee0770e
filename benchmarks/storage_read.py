"""Target storage read as a task source: a full read of 20 000 task objects against an incremental one
after 1 % changed, from a folder and from a bucket of a local S3 server (moto).

    .venv/bin/python benchmarks/storage_read.py [--tasks 20000] [--changed 0.01] [--no-s3]

Objects are Label Studio 1.23's per-task layout (`<task id>.json`, the whole task), from
`generate_export.py`. Each phase is `take_project_snapshot` (list, read, write the snapshot) plus
`update_store` (fold it into the Parquet store), timed separately; the objects read are counted by the
source. Prints a table; numbers go to benchmarks/README.md by hand.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.generate_export import generate  # noqa: E402
from lsflow.project.layout import ProjectLayout  # noqa: E402
from lsflow.project.snapshot import take_project_snapshot  # noqa: E402
from lsflow.project.store import update_store  # noqa: E402
from lsflow.sources.target_storage import TargetStorageSource  # noqa: E402


def changed_copy(task: dict) -> dict:
    """The task as Label Studio writes it again after an annotation was edited: a box moved, a new updated_at."""
    annotation = dict(task["annotations"][0])
    result = [dict(r, value=dict(r["value"], x=min(r["value"]["x"] + 1.0, 90.0))) if "x" in r.get("value", {}) else r
              for r in annotation["result"]]
    annotation["result"] = result
    annotation["updated_at"] = "2026-12-03T12:00:00.000000Z"
    return {**task, "annotations": [annotation, *task["annotations"][1:]], "updated_at": "2026-12-03T12:00:00.000000Z"}


def run(name: str, source: TargetStorageSource, put, tasks: list[dict], changed: float, work: Path) -> list[str]:
    layout = ProjectLayout(work / name, "1")
    rows = []
    for phase in ("full", "unchanged", "1 % changed"):
        if phase == "1 % changed":
            step = max(1, round(1 / changed))
            for task in tasks[::step]:
                put(f"{task['id']}.json", orjson.dumps(changed_copy(task)))
        started = time.perf_counter()
        record = take_project_snapshot(source, layout, full=phase == "full")
        snapshot = time.perf_counter() - started
        started = time.perf_counter()
        update_store(layout)
        store = time.perf_counter() - started
        rows.append(f"| {name} | {phase} | {record.counts['objects_listed']} | {record.counts['objects_read']} | "
                    f"{record.task_count} | {snapshot:.2f} s | {store:.2f} s | {snapshot + store:.2f} s |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--no-s3", action="store_true", help="only the folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lsflow-storage-read-"))
    try:
        export = generate(args.tasks, work)
        tasks = orjson.loads(export.read_bytes())
        config = work / "label_config.xml"
        print("| storage | read | objects listed | objects read | tasks | snapshot | store | total |")
        print("|---|---|---|---|---|---|---|---|")
        folder = work / "storage" / "1"
        folder.mkdir(parents=True)
        for task in tasks:
            (folder / f"{task['id']}.json").write_bytes(orjson.dumps(task))
        run("folder", TargetStorageSource(f"file://{work}/storage/{{project}}", config),
            lambda key, body: (folder / key).write_bytes(body), tasks, args.changed, work)
        if not args.no_s3:
            s3_run(tasks, config, args.changed, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def s3_run(tasks: list[dict], config: Path, changed: float, work: Path) -> None:
    import logging

    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
        bucket = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        bucket.mkdir("exports")
        bucket.pipe({f"exports/1/{task['id']}.json": orjson.dumps(task) for task in tasks})
        run("S3 (moto)", TargetStorageSource("s3://exports/{project}", config, options),
            lambda key, body: bucket.pipe(f"exports/1/{key}", body), tasks, changed, work)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
