"""lsflow against label-studio-sdk's converter on the same export, in one run: wall time and peak RSS.

    .venv/bin/python benchmarks/compare_converter.py [--tasks 20000 100000] [--repeat 3]
                                                     [--formats JSON_MIN,CSV,COCO,YOLO,VOC]

For each size the export is generated once (`generate_export.py`, deterministic) into benchmarks/out/.
Then, `--repeat` times, each tool runs in a fresh subprocess so its peak RSS is its own (`os.wait4`
returns the child's rusage):

- lsflow: one `lsflow convert EXPORT --format <all formats> --config label_config.xml` — one pass;
- the converter: `Converter.convert(EXPORT, DIR, FORMAT, is_dir=False)`, one subprocess per format,
  as its API works: each call re-reads the whole file.

"wall" is the conversion call timed inside the child (interpreter start-up and imports excluded, which
would otherwise charge the converter five times); "process" is the child's whole life. lsflow forks
workers: "peak RSS" is its largest process (wait4), "all processes, PSS" the child and its workers
together, sampled. Each figure is
the median of the repeats, with the spread (slowest − fastest) beside it: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
OUT = BENCHMARKS / "out"
DEFAULT_FORMATS = "JSON_MIN,CSV,COCO,YOLO,VOC"


@dataclass
class Run:
    wall: float  # the conversion call, timed in the child
    process: float  # the child from fork to exit
    cpu: float  # user + system CPU of the child and its workers: steadier than wall time on a shared machine
    peak_rss_mb: float  # the largest single process (wait4 reports the maximum over the child and its workers)
    tree_pss_mb: float  # the child and its workers together, sampled: proportional set size, so pages a
    # forked worker still shares with its parent count once


def descendants(pid: int) -> list[int]:
    """The process and every process below it (from /proc), for sampling their memory together."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as file:
                pending += [int(child) for child in file.read().split()]
        except OSError:
            pass
    return found


def _tree_pss_kib(pid: int) -> int:
    total = 0
    for member in descendants(pid):
        try:
            with open(f"/proc/{member}/smaps_rollup") as file:
                total += next(int(line.split()[1]) for line in file if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass  # exited between listing and reading
    return total


def _sample_tree_pss(pid: int, peak: list[int], done: threading.Event) -> None:
    while not done.wait(SAMPLE_SECONDS):
        peak[0] = max(peak[0], _tree_pss_kib(pid))


def run_child(*args: str) -> Run:
    """Run this script as a child in `--child` mode; its peak RSS comes from wait4, not from itself."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    peak_pss, done = [0], threading.Event()
    sampler = threading.Thread(target=_sample_tree_pss, args=(child.pid, peak_pss, done), daemon=True)
    sampler.start()
    stdout, stderr = child.stdout.read(), child.stderr.read()
    done.set()
    sampler.join()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    process = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"child {args[0]} failed ({child.returncode}):\n{stderr.decode()[-3000:]}")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    return Run(result["wall"], process, cpu, usage.ru_maxrss / 1024, peak_pss[0] / 1024)  # both in KiB


def child_lsflow(export: Path, config: Path, out: Path, formats: str) -> float:
    from lsflow.cli import main

    started = time.perf_counter()
    main(["convert", str(export), "--format", formats, "--out", str(out), "--config", str(config)],
         standalone_mode=False)
    return time.perf_counter() - started


def child_converter(export: Path, config: Path, out: Path, format_name: str) -> float:
    import logging

    from label_studio_sdk.converter import Converter

    logging.disable(logging.WARNING)  # it warns per task; a user's log level would hide that too
    converter = Converter(config=str(config), project_dir=str(export.parent), download_resources=False)
    started = time.perf_counter()
    converter.convert(str(export), str(out), format_name, is_dir=False)
    return time.perf_counter() - started


def file_creation_seconds(directory: Path, count: int) -> float:
    """Wall time to create `count` small files here: this machine's floor for one per-task format."""
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for number in range(count):
        with open(directory / f"{number}.txt", "wb") as file:
            file.write(b"0 0.5 0.5 0.25 0.25\n")
    return time.perf_counter() - started


SETTLE_SECONDS = 30
# Reading a process's PSS walks its page tables: sampling every 20 ms took a third of a core here.
SAMPLE_SECONDS = 0.25
FIELDS = ("wall", "process", "cpu", "peak_rss_mb", "tree_pss_mb")


def settle() -> None:
    """Wait until files just removed no longer slow down creating new ones. On this machine's ext4,
    creating 5 000 files right after removing 20 000 took 3 s instead of 0.2 s, all of it system
    time (likely the inode allocator passing over the inodes just freed); 10 s later it was back
    to normal. So outputs are removed only before and after all runs: otherwise whichever tool ran
    first after a removal paid for it."""
    time.sleep(SETTLE_SECONDS)


def median(runs: list[Run], field: str) -> tuple[float, float]:
    """The median of the repeats (as the issue's targets are stated) and the spread."""
    values = [getattr(run, field) for run in runs]
    return statistics.median(values), max(values) - min(values)


def measure(tasks: int, formats: list[str], repeat: int, runs_dir: Path) -> None:
    export, config = OUT / f"export-{tasks}.json", OUT / "label_config.xml"
    if not export.is_file() or not config.is_file():
        from generate_export import generate

        generate(tasks, OUT)
    size_mb = export.stat().st_size / 1e6
    lsflow_runs: list[Run] = []
    converter_runs: dict[str, list[Run]] = {name: [] for name in formats}
    floors = []
    shutil.rmtree(runs_dir, ignore_errors=True)  # an earlier run's output
    settle()
    for repeat_number in range(repeat):  # nothing is removed until every run is done: see `settle`
        runs = runs_dir / f"run-{repeat_number}"
        floors.append(file_creation_seconds(runs / "floor", tasks))
        lsflow_runs.append(run_child("lsflow", str(export), str(config), str(runs / "lsflow"), ",".join(formats)))
        for name in formats:
            converter_runs[name].append(
                run_child("converter", str(export), str(config), str(runs / "converter" / name), name))
    shutil.rmtree(runs_dir, ignore_errors=True)

    print(f"\n{tasks} tasks ({size_mb:.1f} MB), median of {repeat} (± spread = slowest − fastest)")
    print(f"{'':<26}{'wall s':>16}{'process s':>16}{'CPU s':>16}{'peak RSS MB':>16}{'all processes, PSS MB':>24}")
    row = "{:<26}" + "{:>9.2f} ±{:>5.2f}" * 3 + "{:>9.0f} ±{:>5.0f}" + "{:>17.0f} ±{:>5.0f}"
    total = {"wall": 0.0, "process": 0.0, "cpu": 0.0}
    converter_rss = converter_pss = 0.0
    for name, runs in converter_runs.items():
        figures = {field: median(runs, field) for field in FIELDS}
        for field in total:
            total[field] += figures[field][0]
        converter_rss = max(converter_rss, figures["peak_rss_mb"][0])
        converter_pss = max(converter_pss, figures["tree_pss_mb"][0])
        print(row.format(f"converter {name}", *(v for pair in figures.values() for v in pair)))
    print(f"{'converter, all formats':<26}" + "".join(f"{total[f]:>9.2f}{'':>7}" for f in total)
          + f"{converter_rss:>9.0f}  (max){converter_pss:>17.0f}  (max)")
    ours = {field: median(lsflow_runs, field) for field in FIELDS}
    print(row.format("lsflow, one pass", *(v for pair in ours.values() for v in pair)))
    print(f"creating {tasks} small files here took {min(floors):.2f} s (± {max(floors) - min(floors):.2f}); "
          "YOLO and VOC each write that many, in both tools")
    print(f"lsflow / converter: wall 1/{total['wall'] / ours['wall'][0]:.1f}, "
          f"process 1/{total['process'] / ours['process'][0]:.1f}, CPU 1/{total['cpu'] / ours['cpu'][0]:.1f}; "
          f"peak RSS {ours['peak_rss_mb'][0]:.0f} MB vs {converter_rss:.0f} MB (largest process), "
          f"{ours['tree_pss_mb'][0]:.0f} MB vs {converter_pss:.0f} MB (all processes, PSS)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        tool, export, config, out, formats = sys.argv[2:7]
        run = child_lsflow if tool == "lsflow" else child_converter
        wall = run(Path(export), Path(config), Path(out), formats)
        print(json.dumps({"wall": wall}))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default=DEFAULT_FORMATS)
    parser.add_argument("--runs-dir", type=Path, default=OUT / "runs",
                        help="where both tools write their datasets (emptied before each run)")
    args = parser.parse_args()
    formats = [name.strip().upper() for name in args.formats.split(",") if name.strip()]
    for tasks in args.tasks:
        measure(tasks, formats, args.repeat, args.runs_dir / "compare_converter")


if __name__ == "__main__":
    main()
