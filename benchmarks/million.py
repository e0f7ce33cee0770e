"""A million-task project end to end: snapshot, store, five formats built shard by shard and merged;
then an incremental pass with 0.1 % of the tasks changed.

    nice -n 10 .venv/bin/python benchmarks/million.py [--tasks 1000000] [--shard-size 100000]
        [--changed 0.001] [--workers 2] [--out benchmarks/out/million] [--from-step store]
        [--incremental-from shards] [--edit-round 1] [--no-checks]

The export is `generate_export.py`'s (generated into `--out` if missing), read offline through the
export-file source: the path the Dagster assets take (`label_studio_snapshot` → `normalized_tasks` →
`dataset_shards`: the shards to build planned, then each shard its own step → the `datasets`
multi-asset, which merges), each step in a fresh child process as Dagster runs a step (the shards one
after the other here; Dagster's executor may run several at once, each its own process). Per step:
wall time; the largest single process's peak RSS (the step's own, `getrusage(RUSAGE_SELF)`, and its
forked writers', `RUSAGE_CHILDREN`: the largest of them); the step's process tree sampled every 0.2 s
(sum of RSS and of PSS: pages a forked worker shares with its parent count once in PSS). Then the
disk under the project folder (`st_blocks`, each inode once), and the same for the incremental pass:
`--changed` of the tasks (every 1/changed-th by id) get a box moved and a newer `updated_at` (by
0.5 % of the width times `--edit-round`: a second round on an output whose store holds the first
changes the same tasks again).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from compare_converter import descendants  # this folder is on the path of a script run from it

FORMATS = ["JSON_MIN", "CSV", "COCO", "YOLO", "VOC"]
# "shards": the plan, then a step per shard; "checks": every format's checks of the published datasets, as
# the Dagster datasets step runs them after the merge (here in a process of their own, to see their memory).
STEPS = ("snapshot", "store", "shards", "datasets", "checks")
SAMPLE_SECONDS = 0.2


def _tree_kib(pid: int) -> tuple[int, int, int]:
    """(sum of RSS, sum of PSS, largest RSS) over the process and its descendants, in KiB."""
    rss = pss = largest = 0
    for member in descendants(pid):
        try:
            with open(f"/proc/{member}/smaps_rollup") as file:
                values = {line.split()[0]: int(line.split()[1]) for line in file if line[:4] in ("Rss:", "Pss:")}
        except (OSError, ValueError):
            continue  # exited between listing and reading
        rss, pss, largest = rss + values.get("Rss:", 0), pss + values.get("Pss:", 0), max(largest, values.get("Rss:", 0))
    return rss, pss, largest


def run_step(step: str, root: Path, source: Path, args: argparse.Namespace) -> dict:
    """One step in a child process, sampled meanwhile; what it and wait4 report."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--child", step, str(root), str(source),
                              str(args.shard_size), str(args.workers)], stdout=subprocess.PIPE)
    peaks, done = [0, 0, 0], threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            peaks[:] = [max(a, b) for a, b in zip(peaks, _tree_kib(child.pid))]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = child.stdout.read() if child.stdout else b""
    done.set()
    sampler.join()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"step {step} failed ({child.returncode})")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result.update(step=step, process_seconds=round(time.perf_counter() - started, 1),
                  cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1),
                  wait4_max_rss_mb=round(usage.ru_maxrss / 1024, 1),
                  sampled_tree_rss_mb=round(peaks[0] / 1024, 1), sampled_tree_pss_mb=round(peaks[1] / 1024, 1),
                  sampled_largest_rss_mb=round(peaks[2] / 1024, 1))
    print(json.dumps(result), flush=True)
    return result


def run_steps(steps: tuple[str, ...], root: Path, source: Path, args: argparse.Namespace) -> list[dict]:
    """The steps in turn; "shards" is the plan's step, then one step per shard it lists."""
    results = []
    for step in steps:
        if step == "checks" and args.no_checks:
            continue
        if step != "shards":
            results.append(run_step(step, root, source, args))
            continue
        plan = run_step("plan", root, source, args)
        results += [plan, *(run_step(f"shard:{name}", root, source, args) for name in plan["shards"])]
    return results


def child(step: str, root: Path, source: Path, shard_size: int, workers: int) -> None:
    from lsflow.project.datasets import DatasetOptions, build_datasets, build_project_shard, pending_shards
    from lsflow.project.layout import ProjectLayout
    from lsflow.project.snapshot import take_project_snapshot
    from lsflow.project.store import update_store
    from lsflow.sources.export_file import ExportFileSource

    layout = ProjectLayout(root, "1")
    started = time.perf_counter()
    facts: dict = {}
    if step == "snapshot":
        record = take_project_snapshot(ExportFileSource(source), layout, full=True)
        facts = {"tasks": record.task_count}
    elif step == "store":
        summary, changes, _ = update_store(layout)
        facts = {"tasks": summary.tasks, "regions": summary.regions}
    elif step == "plan":
        work = pending_shards(layout, FORMATS, DatasetOptions(workers=workers, shard_size=shard_size))
        facts = {"shards": [shard.name for shard in work.shards], "formats": work.formats, "planned": work.planned}
    elif step == "checks":
        from lsflow.core.formats import writer_class
        from lsflow.project.datasets import project_context

        context = project_context(layout, DatasetOptions())
        checks = {}
        for name in FORMATS:
            began = time.perf_counter()
            outcomes = writer_class(name).check(layout.dataset_dir(name).resolve(), context)
            checks[name] = {"seconds": round(time.perf_counter() - began, 1),
                            **{outcome.name: outcome.passed for outcome in outcomes}}
        facts = {"checks": checks}
    elif step.startswith("shard:"):
        options = DatasetOptions(workers=workers, shard_size=shard_size)
        shard = build_project_shard(layout, step.removeprefix("shard:"), pending_shards(layout, FORMATS, options).formats,
                                    None, options)
        facts = {"tasks": shard.tasks}
    else:
        shards = []  # built here: none when the shard steps built them all
        built = build_datasets(layout, FORMATS, None, DatasetOptions(
            workers=workers, shard_size=shard_size, on_shard=lambda shard: shards.append(shard.name)))
        facts = {"shards_built_here": shards, "versions": {
            name: {"version": r.version.version_id if r.version else None, "new": r.version.new if r.version else None,
                   "written": r.files.files_written, "kept": r.files.files_kept, "tasks": r.report["tasks"],
                   "regions_written": r.report["regions_written"]} for name, r in built.results.items()}}
    wall = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"wall_seconds": round(wall, 1), "own_max_rss_mb": round(own, 1),
                      "largest_worker_max_rss_mb": round(workers_peak, 1), **facts}))


def disk_bytes(folder: Path) -> tuple[int, int]:
    """(bytes of blocks, files) under `folder`, each inode once (hard links count once, as `du`). In a
    child: the set of two million inodes would be the driver's peak (~400 MB), which Linux hands on to
    every later step's `getrusage` across `execve`."""
    answer = subprocess.run([sys.executable, __file__, "--disk", str(folder)], check=True, capture_output=True, text=True)
    used, files = answer.stdout.split()
    return int(used), int(files)


def _walk_disk(folder: Path) -> tuple[int, int]:
    seen: set[tuple[int, int]] = set()
    total = files = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            status = os.lstat(os.path.join(directory, name))
            if (status.st_dev, status.st_ino) in seen:
                continue
            seen.add((status.st_dev, status.st_ino))
            total += status.st_blocks * 512
            files += 1
    return total, files


def edit_export(source: Path, destination: Path, every: int, edit_round: int = 1) -> int:
    """The export with every `every`-th task (by position) changed: its first box moved (by 0.5 % of the
    width per round), a newer `updated_at`. Untouched tasks are copied byte for byte."""
    import orjson

    from lsflow.sources.export_file import iter_export_entries

    changed = 0
    with open(destination, "wb") as out:
        out.write(b"[")
        for position, entry in enumerate(iter_export_entries(source, "image")):
            raw = entry.raw
            if position % every == every - 1:
                task = orjson.loads(raw) if entry.value is None else entry.value
                for annotation in task["annotations"]:
                    for region in annotation["result"]:
                        if "x" in region["value"]:
                            region["value"]["x"] = max(0.0, region["value"]["x"] - 0.5 * edit_round)
                            break
                    annotation["updated_at"] = f"2026-01-{1 + edit_round:02d}T10:00:00.000000Z"
                task["updated_at"] = f"2026-01-{1 + edit_round:02d}T10:00:00.000000Z"
                raw = orjson.dumps(task)
                changed += 1
            out.write((b", " if position else b"") + raw)
        out.write(b"]")
    return changed


def resume_incremental(args: argparse.Namespace, root: Path, source: Path) -> None:
    """The rest of an incremental pass a stopped run left: the edited export is already the project's."""
    edited = args.out / f"export-{args.tasks}-edited.json"
    if not (source / "1" / "export.json").samefile(edited):
        raise SystemExit(f"the project's export is not {edited}: run the incremental pass whole")
    results = {"incremental": run_steps(STEPS[STEPS.index(args.incremental_from):], root, source, args)}
    used, files = disk_bytes(root)
    results["incremental_disk"] = {"bytes": used, "files": files}
    print(json.dumps({"disk_after_incremental": results["incremental_disk"]}), flush=True)
    (args.out / f"result-{args.tasks}-incremental-from-{args.incremental_from}.json").write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--shard-size", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.001)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "million")
    parser.add_argument("--from-step", choices=STEPS, default=STEPS[0],
                        help="start the full build at this step, on the output a stopped run left (its earlier steps done)")
    parser.add_argument("--incremental-from", choices=STEPS,
                        help="only the incremental pass, from this step, on the output a stopped incremental pass left")
    parser.add_argument("--edit-round", type=int, default=1,
                        help="how far the edit moves the boxes: another round than the store holds changes them again")
    parser.add_argument("--no-checks", action="store_true",
                        help="leave out the checks step (measured on its own: `--from-step checks`)")
    parser.add_argument("--child", nargs=5)
    parser.add_argument("--edit", nargs=4, help=argparse.SUPPRESS)  # SOURCE DESTINATION EVERY ROUND, in a child
    parser.add_argument("--disk", type=Path, help=argparse.SUPPRESS)  # FOLDER, in a child
    args = parser.parse_args()
    if args.disk:
        print(*_walk_disk(args.disk))
        return
    if args.edit:
        print(edit_export(Path(args.edit[0]), Path(args.edit[1]), int(args.edit[2]), int(args.edit[3])))
        return
    if args.child:
        step, root, source, shard_size, workers = args.child
        child(step, Path(root), Path(source), int(shard_size), int(workers))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from generate_export import generate

    export = args.out / f"export-{args.tasks}.json"
    if not export.is_file():
        generate(args.tasks, args.out)
    source = args.out / f"projects-{args.tasks}"
    project = source / "1"
    project.mkdir(parents=True, exist_ok=True)
    (project / "label_config.xml").write_bytes((args.out / "label_config.xml").read_bytes())
    root = args.out / f"output-{args.tasks}"
    if args.incremental_from:
        resume_incremental(args, root, source)
        return
    if (project / "export.json").exists():
        (project / "export.json").unlink()
    os.link(export, project / "export.json")
    if root.exists() and args.from_step == STEPS[0]:
        subprocess.run(["rm", "-rf", str(root)], check=True)
    print(json.dumps({"tasks": args.tasks, "export_bytes": export.stat().st_size, "shard_size": args.shard_size,
                      "workers": args.workers, "formats": FORMATS}), flush=True)
    results = {"full": run_steps(STEPS[STEPS.index(args.from_step):], root, source, args)}
    used, files = disk_bytes(root)
    results["full_disk"] = {"bytes": used, "files": files}
    print(json.dumps({"disk_after_full": results["full_disk"]}), flush=True)

    edited = args.out / f"export-{args.tasks}-edited.json"
    started = time.perf_counter()
    # In a child: the parent's peak RSS would be every later step's, which getrusage counts from the fork.
    changed = int(subprocess.run([sys.executable, __file__, "--edit", str(export), str(edited), str(round(1 / args.changed)),
                                  str(args.edit_round)],
                                 check=True, capture_output=True, text=True).stdout.split()[-1])
    print(json.dumps({"edited_tasks": changed, "edit_seconds": round(time.perf_counter() - started, 1)}), flush=True)
    (project / "export.json").unlink()
    os.link(edited, project / "export.json")
    results["incremental"] = run_steps(STEPS, root, source, args)
    used_after, files_after = disk_bytes(root)
    results["incremental_disk"] = {"bytes": used_after, "files": files_after, "added_bytes": used_after - used}
    print(json.dumps({"disk_after_incremental": results["incremental_disk"]}), flush=True)
    (args.out / f"result-{args.tasks}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
