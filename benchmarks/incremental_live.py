"""Incremental against full re-export of a 20 000-task project on a real Label Studio server.

    .venv/bin/python benchmarks/incremental_live.py [--tasks 20000] [--changes 200] [--chunk 1000]
        [--formats COCO,YOLO,VOC,CSV,JSON_MIN] [--request-timeout 900] [--keep]

Starts `.venv-ls/bin/label-studio` (the test harness's `LabelStudioServer`) in a temporary folder on a
free port, creates an image project with `data/sample/projects/1/label_config.xml` and imports the
tasks in chunks through the import API, each with 1–2 annotations (rectangles, rotated rectangles and
polygons from `generate_export.py`'s generator, relabelled to the config's labels) and a prediction on
some. A first full export (snapshot, store, datasets) goes into root A. Then two rounds; in each, 1 %
of the project changes the ways users change it and is exported twice, timed with `time.perf_counter`:

- round 1: new, edited and deleted annotations, new predictions, task data edits and new tasks;
- round 2: the same, with 5 % of the changed tasks deleted instead of some of the new ones;
- full re-export: snapshot with `full=True` into a fresh root, store, datasets;
- incremental re-export: into root A (`full=False`), the same steps.

The snapshot step is split into the server's part (view, building the snapshot), the download and
the deletion check (counts of the project's tasks in id ranges, made while the snapshot is being
built; see `lsflow.core.incremental.changes.find_deleted`). Before any number is
printed, the incremental datasets must equal the full ones file by file. The server is stopped at
the end, also on failure. The Community Edition builds a snapshot inside the creating request, which
takes about a minute for 20 000 tasks here, so requests may take up to `--request-timeout` seconds
(lsflow's default of 60 s is too short for a full snapshot of this project).

The watermark overlap is the default (60 s). A bulk import puts 20 000 task updates within minutes,
which no real project's last minute holds, and every task updated within the overlap before the
previous snapshot's newest change is fetched again. So, as a real project would, this one rests
before each export: the script waits out the overlap (plus 5 s) and makes one task edit (a marker),
the newest change that export sees; the next incremental snapshot must hold exactly the changed
tasks, the previous marker (inside its overlap) and its own marker.
"""

from __future__ import annotations

import argparse
import filecmp
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))
sys.path.insert(0, str(REPO_ROOT))

from generate_export import IMAGE_SIZES, START, annotation, region  # noqa: E402

from lsflow.core.incremental.changes import WATERMARK_OVERLAP  # noqa: E402
from lsflow.core.pipeline.versions import DESCRIPTION  # noqa: E402
from lsflow.project.datasets import build_datasets  # noqa: E402
from lsflow.project.layout import ProjectLayout  # noqa: E402
from lsflow.project.snapshot import take_project_snapshot  # noqa: E402
from lsflow.project.store import update_store  # noqa: E402
from lsflow.sources.export_file import iter_export_tasks  # noqa: E402
from lsflow.sources.label_studio import LabelStudioSource, Timing  # noqa: E402
from lsflow_tests.label_studio_server import LabelStudioServer, label_studio_binary  # noqa: E402

CONFIG = REPO_ROOT / "data" / "sample" / "projects" / "1" / "label_config.xml"
BOX_LABELS = ("Car", "Person")  # the sample config's labels
POLYGON_LABELS = ("Road",)
MODEL_VERSION = "detector-v3"


# --- building the project ---------------------------------------------------------------------------

def config_region(rng: random.Random, width: int, height: int) -> dict:
    """The generator's region (rectangle, rotated rectangle or polygon) with one of the config's labels."""
    item = region(rng, width, height)
    value = item["value"]
    if "rectanglelabels" in value:
        value["rectanglelabels"] = [rng.choice(BOX_LABELS)]
    else:
        value["polygonlabels"] = [rng.choice(POLYGON_LABELS)]
    return item


def regions(rng: random.Random, size: tuple[int, int]) -> list[dict]:
    return [config_region(rng, *size) for _ in range(rng.randint(1, 5))]


def import_task(rng: random.Random, project: int, number: int) -> dict:
    """A task as the import API takes it: data, 1–2 annotations (some cancelled), sometimes a prediction."""
    size = IMAGE_SIZES[rng.randrange(len(IMAGE_SIZES))]
    image = f"/data/upload/{project}/{rng.getrandbits(32):08x}-frame_{number:06d}.jpg"
    annotations = []
    for _ in range(1 if rng.random() < 0.6 else 2):
        generated = annotation(rng, 0, 0, START, size)  # for its mix of cancelled, ground truth, lead times
        annotations.append({
            "result": [] if generated["was_cancelled"] else regions(rng, size),
            "was_cancelled": generated["was_cancelled"], "ground_truth": generated["ground_truth"],
            "lead_time": generated["lead_time"],
        })
    task = {"data": {"image": image}, "annotations": annotations}
    if rng.random() < 0.1:
        task["predictions"] = [{"result": regions(rng, size), "model_version": MODEL_VERSION,
                                "score": round(rng.random(), 4)}]
    return task


@dataclass
class ChangePlan:
    """What the 1 % change did, and which task ids the next incremental snapshot must hold."""

    counts: dict[str, int] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)
    deleted: set[int] = field(default_factory=set)
    created: set[int] = field(default_factory=set)


def change_project(server: LabelStudioServer, project: int, root_a: ProjectLayout, rng: random.Random,
                   total: int, exclude: set[int], delete_tasks: bool) -> ChangePlan:
    """Change `total` tasks (1 % by default) the ways users do; annotation ids come from the last store.
    Without `delete_tasks`, the share of task deletions goes to new tasks instead."""
    table = pq.read_table(root_a.store_dir / "annotations.parquet", columns=["task_id", "annotation_id", "kind"])
    annotations: dict[int, list[int]] = {}
    for task_id, annotation_id, kind in zip(*(table.column(i).to_pylist() for i in range(3))):
        if kind == "annotation":
            annotations.setdefault(task_id, []).append(annotation_id)
    tasks = pq.read_table(root_a.store_dir / "tasks.parquet",
                          columns=["task_id", "image_ref", "image_width", "image_height"]).to_pylist()
    images = {row["task_id"]: row["image_ref"] for row in tasks}
    sizes_px = {row["task_id"]: (row["image_width"] or 1920, row["image_height"] or 1080) for row in tasks}
    shares = {"annotation created": 0.30, "annotation edited": 0.22, "annotation deleted": 0.15,
              "prediction created": 0.10, "task data edited": 0.13}
    if delete_tasks:
        shares["task deleted"] = 0.05
    sizes = {name: max(1, round(total * share)) for name, share in shares.items()}
    created = max(1, total - sum(sizes.values()))
    chosen = rng.sample(sorted(set(annotations) - exclude), sum(sizes.values()))
    plan = ChangePlan(counts={**sizes, "task created": created})
    client = server.client
    for name, count in sizes.items():
        batch, chosen = chosen[:count], chosen[count:]
        for task_id in batch:
            size = sizes_px[task_id]
            if name == "annotation created":
                server.annotate(task_id, regions(rng, size))
            elif name == "annotation edited":
                client.annotations.update(id=rng.choice(annotations[task_id]), result=regions(rng, size))
            elif name == "annotation deleted":
                client.annotations.delete(id=annotations[task_id][-1])
            elif name == "prediction created":
                server.predict(task_id, regions(rng, size), MODEL_VERSION, round(rng.random(), 4))
            elif name == "task data edited":
                client.tasks.update(id=task_id, data={"image": images[task_id], "camera": f"cam-{rng.randint(1, 9)}"})
            elif name == "task deleted":
                client.tasks.delete(id=task_id)
        (plan.deleted if name == "task deleted" else plan.touched).update(batch)
    new_tasks = [import_task(rng, project, 900_000 + n) for n in range(created)]
    plan.created.update(server.import_tasks(project, new_tasks))
    return plan


def rest_then_mark(server: LabelStudioServer, task_id: int, data: dict) -> None:
    """Wait out the watermark overlap (plus 5 s), then make one task edit the project's newest change:
    only that task falls inside the overlap of the next snapshot, as in a project edited now and then."""
    rest = WATERMARK_OVERLAP + timedelta(seconds=5)
    print(f"watermark overlap {WATERMARK_OVERLAP.total_seconds():.0f} s (the default): resting "
          f"{rest.total_seconds():.0f} s, then one task edit as the project's newest change")
    time.sleep(rest.total_seconds())
    server.client.tasks.update(id=task_id, data=data)


# --- measuring --------------------------------------------------------------------------------------

class TimedSource:
    """A `LabelStudioSource` whose calls are timed: server part, download, deletion check."""

    def __init__(self, url: str, api_key: str, request_timeout: float):
        self.first_byte: float | None = None
        self.source = LabelStudioSource(url, api_key, timing=Timing(request_timeout=request_timeout),
                                        progress=self._progress)
        self.seconds = {"server": 0.0, "download": 0.0, "deletion check": 0.0}

    def _progress(self, received: int, total: int | None) -> None:
        if self.first_byte is None:
            self.first_byte = time.perf_counter()

    def describe(self) -> str:
        return self.source.describe()

    def list_projects(self):
        return self.source.list_projects()

    def take_snapshot(self, project_id, destination, changed_since=None, store_dir=None):
        self.first_byte = None
        started = time.perf_counter()
        snapshot = self.source.take_snapshot(project_id, destination, changed_since=changed_since, store_dir=store_dir)
        ended = time.perf_counter()
        first_byte = self.first_byte or ended
        self.seconds["server"] += first_byte - started
        self.seconds["download"] += ended - first_byte
        return snapshot

    def deleted_task_ids(self, project_id, known_ids):
        started = time.perf_counter()
        try:
            return self.source.deleted_task_ids(project_id, known_ids)
        finally:
            self.seconds["deletion check"] += time.perf_counter() - started


@dataclass
class Run:
    label: str
    layout: ProjectLayout
    steps: dict[str, float]
    snapshot_detail: dict[str, float]
    record: object
    changes: object
    summary: object
    results: dict

    @property
    def total(self) -> float:
        return sum(self.steps.values())

    @property
    def snapshot_bytes(self) -> int:
        return self.layout.snapshot_export.stat().st_size


def export(server: LabelStudioServer, layout: ProjectLayout, label: str, full: bool, formats: list[str],
           request_timeout: float) -> Run:
    source = TimedSource(server.url, server.legacy_token, request_timeout)
    steps = {}
    started = time.perf_counter()
    record = take_project_snapshot(source, layout, full=full)
    steps["snapshot"] = time.perf_counter() - started
    started = time.perf_counter()
    summary, changes, _ = update_store(layout)
    steps["store"] = time.perf_counter() - started
    started = time.perf_counter()
    results = build_datasets(layout, formats).results
    steps["datasets"] = time.perf_counter() - started
    detail = dict(source.seconds)
    # The deletion check runs while the snapshot is made; the rest of the step is local.
    detail["local (ids, publish)"] = steps["snapshot"] - detail["server"] - detail["download"]
    return Run(label, layout, steps, detail, record, changes, summary, results)


def differing_files(left: Path, right: Path) -> list[str]:
    """Relative paths present on one side only or with different bytes, the version's description aside:
    its manifest and card name the version, its parent and when it was made, which differ by construction
    between a first version (the full export's fresh root) and a later one."""
    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*")
                if p.is_file() and p.relative_to(root).parts[0] not in DESCRIPTION}

    left_files, right_files = files(left), files(right)
    differing = sorted(left_files ^ right_files)
    differing += [name for name in sorted(left_files & right_files)
                  if not filecmp.cmp(left / name, right / name, shallow=False)]
    return differing


def print_run(run: Run) -> None:
    print(f"\n{run.label}: {run.total:7.1f} s  ({run.record.mode}, since {run.record.changed_since})")
    for name, seconds in run.steps.items():
        print(f"  {name:<10} {seconds:7.1f} s")
        if name == "snapshot":
            for part, part_seconds in run.snapshot_detail.items():
                part = f"{part} (meanwhile)" if part == "deletion check" else part
                print(f"    {part:<22} {part_seconds:7.1f} s")
    print(f"  snapshot: {run.record.task_count} tasks, {run.snapshot_bytes:,} bytes of {run.layout.snapshot_export.name}; "
          f"{len(run.record.deleted_task_ids)} deletions found")
    print(f"  store: {run.summary.tasks} tasks, {run.summary.annotations} annotations, "
          f"{run.summary.predictions} predictions, {run.summary.regions} regions; changes {run.changes}")


def verify(formats: list[str], full: Run, incremental: Run, plan: ChangePlan, inside_overlap: set[int],
           root_a: ProjectLayout) -> None:
    """Before any number is printed: equal datasets, exactly the changed tasks fetched, deletions found."""
    for name in formats:
        differing = differing_files(incremental.results[name].path, full.results[name].path)
        if differing:
            raise SystemExit(f"{name}: incremental differs from full in {len(differing)} files, "
                             f"e.g. {differing[:5]}")
    print(f"verified: the incremental datasets equal the full ones file by file ({', '.join(formats)})")
    expected = plan.touched | plan.created | inside_overlap
    fetched = {task.id for task in iter_export_tasks(root_a.snapshot_export)}
    print(f"incremental snapshot: {len(fetched)} tasks fetched, {len(expected)} expected (the changed ones "
          f"and the markers inside the overlap); deletions found {len(incremental.record.deleted_task_ids)} "
          f"of {len(plan.deleted)}")
    if fetched != expected:
        raise SystemExit(f"the incremental snapshot missed {sorted(expected - fetched)[:10]} "
                         f"and held unchanged {sorted(fetched - expected)[:10]}")
    if set(incremental.record.deleted_task_ids) != plan.deleted:
        raise SystemExit("the incremental export did not find exactly the deleted tasks")
    same_store = incremental.summary.content_digest == full.summary.content_digest
    print(f"store content digest, incremental vs full: {'equal' if same_store else 'DIFFERENT'}")


# --- the run ----------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--changes", type=int, default=None, help="tasks to change (default 1 %% of --tasks)")
    parser.add_argument("--chunk", type=int, default=1000, help="tasks per import request")
    parser.add_argument("--formats", default="COCO,YOLO,VOC,CSV,JSON_MIN")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--request-timeout", type=float, default=900.0,
                        help="seconds per request; the Community Edition builds the whole snapshot inside one "
                             "POST (20 000 tasks take longer than the default 60 s here)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (server data, outputs)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    formats = [name.strip().upper() for name in args.formats.split(",")]
    change_count = args.changes or max(1, args.tasks // 100)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="lsflow-incremental-"))
    print(f"work folder {work}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    server = LabelStudioServer(label_studio_binary(), work / "label-studio")
    try:
        started = time.perf_counter()
        server.start()
        print(f"Label Studio up at {server.url} after {time.perf_counter() - started:.0f} s")
        project = server.create_project("incremental benchmark", CONFIG.read_text())

        started = time.perf_counter()
        task_ids: list[int] = []
        for first in range(0, args.tasks, args.chunk):
            chunk = [import_task(rng, project, n) for n in range(first, min(first + args.chunk, args.tasks))]
            task_ids += server.import_tasks(project, chunk)
        print(f"imported {len(task_ids)} tasks in {time.perf_counter() - started:.0f} s "
              f"({args.chunk} per request)")

        marker = task_ids[-1]
        rest_then_mark(server, marker, {**chunk[-1]["data"], "reviewed": True})

        print(f"request timeout {args.request_timeout:.0f} s (lsflow's default is {Timing().request_timeout:.0f} s)")
        root_a = ProjectLayout(work / "out-a", str(project))
        first = export(server, root_a, "first export (full, root A)", False, formats, args.request_timeout)
        assert first.record.mode == "full" and first.summary.tasks == args.tasks, first.record
        print_run(first)

        rounds = [("1 % of the tasks changed, none deleted", False),
                  ("1 % of the tasks changed, 5 % of them deleted", True)]
        ratios = []
        markers = {marker, *task_ids[1:len(rounds) + 1]}  # never deleted: each round edits one
        for number, (title, delete_tasks) in enumerate(rounds, 1):
            print(f"\n=== round {number}: {title}")
            plan = change_project(server, project, root_a, rng, change_count, exclude=markers,
                                  delete_tasks=delete_tasks)
            changed_tasks = len(plan.touched | plan.deleted | plan.created)
            print(f"changed {changed_tasks} tasks: " + ", ".join(f"{n} {k}" for k, n in plan.counts.items()))
            # The last export's newest change (its marker) is inside this snapshot's overlap; so is this
            # round's marker, made after its changes, before its exports.
            previous_marker, marker = marker, task_ids[number]
            rest_then_mark(server, marker, {**server.client.tasks.get(id=marker).data, "reviewed": number})
            full = export(server, ProjectLayout(work / f"out-b{number}", str(project)), "full re-export (fresh root)",
                          True, formats, args.request_timeout)
            incremental = export(server, root_a, "incremental re-export (root A)", False, formats,
                                 args.request_timeout)
            verify(formats, full, incremental, plan, {previous_marker, marker}, root_a)
            print_run(full)
            print_run(incremental)
            print(f"\nsnapshot sizes: full {full.snapshot_bytes:,} bytes / {full.record.task_count} tasks, "
                  f"incremental {incremental.snapshot_bytes:,} bytes / {incremental.record.task_count} tasks "
                  f"({incremental.snapshot_bytes / full.snapshot_bytes:.2%})")
            for name in ("snapshot", "store", "datasets"):
                print(f"  {name:<10} incremental/full {incremental.steps[name] / full.steps[name]:6.1%}")
            ratio = incremental.total / full.total
            ratios.append((title, incremental.total, full.total, ratio))
        print("\nincremental/full wall time (target ≤ 10 %):")
        for title, incremental_seconds, full_seconds, ratio in ratios:
            print(f"  {title}: {incremental_seconds:.1f} s / {full_seconds:.1f} s = {ratio:.1%} "
                  f"({'met' if ratio <= 0.10 else 'NOT met'})")
        print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
