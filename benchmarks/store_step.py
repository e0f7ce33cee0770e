"""The Dagster path's store step on a generated export: `write_store`, then `iter_store_tasks`.

    .venv/bin/python benchmarks/store_step.py [--tasks 20000] [--repeat 3] [--formats JSON_MIN,CSV,COCO,YOLO,VOC]

`normalized_tasks` reads the snapshot once into the Parquet store (`write_store`); every dataset
asset then streams the tasks back from it (`iter_store_tasks`) through `export_datasets`. Each step
is timed here (wall and CPU, best of `--repeat`, with the spread), then the whole pass from the store
to the formats, as `build_datasets` runs it. Peak RSS is this process's, for all the steps together.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

from lsflow.core.incremental.store import iter_store_tasks, write_store
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.sources.export_file import iter_export_tasks

BENCHMARKS = Path(__file__).resolve().parent
OUT = BENCHMARKS / "out"


def timed(step, repeat: int) -> tuple[float, float, float, float]:
    """(best wall, wall spread, best CPU, CPU spread) of `repeat` runs of `step()`."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), max(walls) - min(walls), min(cpus), max(cpus) - min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="JSON_MIN,CSV,COCO,YOLO,VOC")
    args = parser.parse_args()
    formats = [name.strip().upper() for name in args.formats.split(",")]
    export_file, config_file = OUT / f"export-{args.tasks}.json", OUT / "label_config.xml"
    if not export_file.is_file():
        sys.path.insert(0, str(BENCHMARKS))
        from generate_export import generate

        generate(args.tasks, OUT)
    store = OUT / "runs" / "store"
    datasets = OUT / "runs" / "store-datasets"
    config = LabelConfig.from_file(config_file)

    def write() -> None:
        shutil.rmtree(store, ignore_errors=True)
        write_store(iter_export_tasks(export_file), store, image_key="image", manifest={})

    def read() -> None:
        for _ in iter_store_tasks(store):
            pass

    def build() -> None:
        shutil.rmtree(datasets, ignore_errors=True)
        context = export_context(config, lambda: iter_store_tasks(store))
        export_datasets(iter_store_tasks(store), formats, datasets, context)

    def read_export() -> None:
        for _ in iter_export_tasks(export_file):
            pass

    rows = [
        ("read the export (reference)", timed(read_export, args.repeat)),
        ("write_store", timed(write, args.repeat)),
        ("iter_store_tasks", timed(read, args.repeat)),
        (f"store → {len(formats)} formats", timed(build, args.repeat)),
    ]
    size = sum(p.stat().st_size for p in store.iterdir()) / 1e6
    shutil.rmtree(OUT / "runs", ignore_errors=True)
    print(f"{args.tasks} tasks ({export_file.stat().st_size / 1e6:.1f} MB export, {size:.1f} MB store), "
          f"best of {args.repeat} (± spread)")
    print(f"{'':<30}{'wall s':>16}{'CPU s':>16}")
    for name, (wall, wall_spread, cpu, cpu_spread) in rows:
        print(f"{name:<30}{wall:>9.2f} ±{wall_spread:>5.2f}{cpu:>9.2f} ±{cpu_spread:>5.2f}")
    print(f"peak RSS of all steps: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
