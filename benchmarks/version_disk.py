"""Disk and time of a new dataset version when 1 % of a project's tasks changed.

    .venv/bin/python benchmarks/version_disk.py [--tasks 20000] [--changed 0.01] [--formats YOLO,COCO]

A generated export (`generate_export.py`) is the project, read offline through the export-file source;
version 1 is a full build, then `--changed` of the tasks get a box moved (and a newer `updated_at`)
and the next incremental build publishes version 2. A version's disk is the blocks of its files
(`st_blocks`, what `du` counts); version 2's own cost is the blocks of its files that are not hard
links into version 1. Each build's wall time is printed with it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generate_export import generate  # noqa: E402

from lsflow.project.datasets import DatasetOptions, build_datasets  # noqa: E402
from lsflow.project.layout import ProjectLayout  # noqa: E402
from lsflow.project.snapshot import take_project_snapshot  # noqa: E402
from lsflow.project.store import update_store  # noqa: E402
from lsflow.sources.export_file import ExportFileSource  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def blocks(folder: Path) -> dict[int, int]:
    """inode → bytes on disk of every file under `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            status = os.stat(os.path.join(root, name))
            found[status.st_ino] = status.st_blocks * 512
    return found


def build(layout: ProjectLayout, source: ExportFileSource, formats: list[str]) -> tuple[dict, float]:
    started = time.perf_counter()
    take_project_snapshot(source, layout)
    update_store(layout)
    results = build_datasets(layout, formats, None, DatasetOptions()).results
    return {name: result.version for name, result in results.items()}, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--formats", default="YOLO,COCO")
    args = parser.parse_args()
    formats = args.formats.split(",")
    work = OUT / "version_disk"
    shutil.rmtree(work, ignore_errors=True)
    project = work / "projects" / "1"
    project.mkdir(parents=True)
    export = generate(args.tasks, OUT)
    shutil.copyfile(export, project / "export.json")
    shutil.copyfile(OUT / "label_config.xml", project / "label_config.xml")
    layout = ProjectLayout(work / "output", "1")
    source = ExportFileSource(work / "projects")

    first, first_seconds = build(layout, source, formats)
    tasks = json.loads((project / "export.json").read_bytes())
    rng = random.Random(13)
    for task in rng.sample(tasks, int(len(tasks) * args.changed)):
        for annotation in task["annotations"]:
            for region in annotation["result"]:
                if "x" in region["value"]:  # boxes (polygons carry points)
                    region["value"]["x"] = min(region["value"]["x"] + 0.5, 90.0)
            annotation["updated_at"] = "2030-01-01T00:00:00.000000Z"
        task["updated_at"] = "2030-01-01T00:00:00.000000Z"
    (project / "export.json").write_text(json.dumps(tasks))
    second, second_seconds = build(layout, source, formats)

    print(f"{args.tasks} tasks, {args.changed:.0%} changed; build of version 1 {first_seconds:.1f} s, "
          f"of version 2 (incremental) {second_seconds:.1f} s")
    total_full = total_new = 0
    for name in formats:
        old, new = blocks(first[name].path), blocks(second[name].path)
        full = sum(new.values())
        own = sum(size for inode, size in new.items() if inode not in old)
        total_full, total_new = total_full + full, total_new + own
        biggest = max(((os.path.getsize(os.path.join(r, n)), os.path.join(r, n)) for r, _, ns in
                       os.walk(second[name].path) for n in ns), default=(0, ""))
        print(f"  {name}: a full copy {full / 2**20:.1f} MiB, version 2's own files {own / 2**20:.2f} MiB "
              f"({own / full:.1%}); largest file {Path(biggest[1]).name} {biggest[0] / 2**20:.1f} MiB")
    print(f"  together: {total_new / 2**20:.2f} of {total_full / 2**20:.1f} MiB ({total_new / total_full:.1%})")


if __name__ == "__main__":
    main()
