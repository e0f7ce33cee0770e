"""Where one `lsflow convert` pass spends its CPU: reading, the pipeline, and each format's writer.

    .venv/bin/python benchmarks/time_per_format.py [--tasks 20000] [--formats JSON_MIN,CSV,COCO,YOLO,VOC]

Runs the real pipeline (`export_context` + `export_datasets`, as the CLI does) on the generated
export, with each writer's `write` and `close` and the task reader wrapped in CPU-time counters
(`time.process_time`: user + system, so the file creation a writer causes is charged to it). What
is left is the pipeline itself: selecting annotations, file names, reports, publishing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from lsflow.core.formats import WRITERS
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.model.task import Task
from lsflow.core.pipeline import export
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.sources.export_file import iter_export_tasks

BENCHMARKS = Path(__file__).resolve().parent
OUT = BENCHMARKS / "out"


def timed_writer(writer: type, spent: dict[str, float]) -> type:
    """A subclass of `writer` that adds the CPU time of its `write` and `close` to `spent`."""

    class Timed(writer):
        def write(self, item):
            started = time.process_time()
            super().write(item)
            spent[writer.name] += time.process_time() - started

        def close(self):
            started = time.process_time()
            super().close()
            spent[writer.name] += time.process_time() - started

    Timed.__name__ = writer.__name__
    return Timed


def timed_tasks(tasks: Iterator[Task], spent: dict[str, float]) -> Iterator[Task]:
    while True:
        started = time.process_time()
        task = next(tasks, None)
        spent["read + parse + model"] += time.process_time() - started
        if task is None:
            return
        yield task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--formats", default="JSON_MIN,CSV,COCO,YOLO,VOC")
    parser.add_argument("--runs-dir", type=Path, default=OUT / "runs",
                        help="where the datasets are written (e.g. /dev/shm, to leave the disk out)")
    args = parser.parse_args()
    formats = [name.strip().upper() for name in args.formats.split(",")]
    export_file, config = OUT / f"export-{args.tasks}.json", OUT / "label_config.xml"
    if not export_file.is_file():
        sys.path.insert(0, str(BENCHMARKS))
        from generate_export import generate

        generate(args.tasks, OUT)
    spent = {"read + parse + model": 0.0, **{name: 0.0 for name in formats}}
    for name in formats:
        WRITERS[name] = timed_writer(WRITERS[name], spent)
    out = args.runs_dir / "time_per_format"
    shutil.rmtree(out, ignore_errors=True)
    context = export_context(LabelConfig.from_file(config), lambda: iter_export_tasks(export_file))
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    export_datasets(timed_tasks(iter_export_tasks(export_file), spent), formats, out, context)
    total_cpu, total_wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
    shutil.rmtree(out)
    spent["pipeline (the rest)"] = total_cpu - sum(spent.values())
    print(f"{args.tasks} tasks, {', '.join(formats)}: {total_cpu:.2f} s CPU, {total_wall:.2f} s wall "
          f"({export.__name__} from {Path(export.__file__).parent.parent.parent})")
    for part, seconds in spent.items():
        print(f"  {part:<24}{seconds:>7.2f} s  {100 * seconds / total_cpu:>4.0f} %")


if __name__ == "__main__":
    main()
