"""Disk and time of a new dataset version when 1 % of a project's tasks changed.

    .venv/bin/python benchmarks/version_disk.py [--tasks 20000] [--changed 0.01] [--formats YOLO,COCO]
        [--image-formats YOLO_WITH_IMAGES,COCO | --no-images] [--keep]

A generated export (`generate_export.py`) is the project, read offline through the export-file source;
version 1 is a full build, then `--changed` of the tasks get a box moved (and a newer `updated_at`)
and the next incremental build publishes version 2. Two measurements, each its own project:

- labels only (`--formats`): the export as generated, no task media;
- as a trainer uses it (`--image-formats`): every task gets its own 640×480 JPEG under a copy of
  Label Studio's media folder (`<media root>/upload/1/<file>`, read by a `MediaResolver` with that
  `media_root`, as `lsflow convert --media-root` does), so `*_WITH_IMAGES` formats copy real images.
  The regions' `original_width`/`original_height` are set to 640×480 to match the files.

A full copy is the blocks of version 1's files (`st_blocks` × 512, what `du` counts; each inode
once); version 2's own cost is the blocks of its files whose inodes are not version 1's (hard links
into version 1 cost nothing). Both include the version's description (manifest, file and task tables,
card). Each build's wall time is printed with the bytes it wrote (`/proc/self/io` `write_bytes`: this
process and the workers it reaped).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generate_export import PROJECT_ID, generate  # noqa: E402

from lsflow.core.pipeline.build import FormatResult  # noqa: E402
from lsflow.project.datasets import DatasetOptions, build_datasets  # noqa: E402
from lsflow.project.layout import ProjectLayout  # noqa: E402
from lsflow.project.snapshot import take_project_snapshot  # noqa: E402
from lsflow.project.store import update_store  # noqa: E402
from lsflow.sources.export_file import ExportFileSource  # noqa: E402
from lsflow.sources.media import MediaResolver  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
IMAGE_WIDTH, IMAGE_HEIGHT = 640, 480
IMAGE_VARIANTS = 16  # distinct pictures; each task's file gets its own bytes (a JPEG comment) on top
MIB = 2**20


def blocks(folder: Path) -> dict[int, tuple[int, str]]:
    """inode → (bytes on disk, path relative to `folder`) of every file under `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            status = os.stat(path)
            found[status.st_ino] = (status.st_blocks * 512, os.path.relpath(path, folder))
    return found


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def texture_jpegs(rng: np.random.Generator) -> list[bytes]:
    """Photo-like 640×480 JPEGs (quality 90): gradients, blotches and grain; more grain, more bytes."""
    y, x = np.mgrid[0:IMAGE_HEIGHT, 0:IMAGE_WIDTH]
    pictures = []
    for variant in range(IMAGE_VARIANTS):
        grain = 6 + 14 * variant / (IMAGE_VARIANTS - 1)  # ~60 KB at 6, ~145 KB at 20
        base = np.stack([x * 255 / IMAGE_WIDTH, y * 255 / IMAGE_HEIGHT,
                         (x + y) * 127 / (IMAGE_WIDTH + IMAGE_HEIGHT) + rng.integers(0, 128)], -1)
        blotches = np.kron(rng.normal(0, 40, (IMAGE_HEIGHT // 16, IMAGE_WIDTH // 16, 3)), np.ones((16, 16, 1)))
        pixels = np.clip(base + blotches + rng.normal(0, grain, (IMAGE_HEIGHT, IMAGE_WIDTH, 3)), 0, 255)
        out = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(out, "JPEG", quality=90)
        pictures.append(out.getvalue())
    return pictures


def write_task_images(tasks: list[dict], media_root: Path) -> tuple[int, float]:
    """One JPEG file per task at `<media_root>/upload/<project>/<file_upload>`, each with its own bytes
    (the picture's, with a comment segment naming the task after the start-of-image marker). Returns
    (files, mean size in bytes)."""
    folder = media_root / "upload" / str(PROJECT_ID)
    folder.mkdir(parents=True)
    pictures = texture_jpegs(np.random.default_rng(21))
    total = 0
    for task in tasks:
        picture = pictures[task["id"] % len(pictures)]
        comment = f"lsflow benchmark image of task {task['id']}".encode()
        data = picture[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + picture[2:]
        descriptor = os.open(folder / task["file_upload"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)
        total += len(data)
    return len(tasks), total / max(len(tasks), 1)


def change_tasks(tasks: list[dict], share: float) -> None:
    """Move a box of `share` of the tasks (seeded) and mark them updated."""
    rng = random.Random(13)
    for task in rng.sample(tasks, int(len(tasks) * share)):
        for annotation in task["annotations"]:
            for region in annotation["result"]:
                if "x" in region["value"]:  # boxes (polygons carry points)
                    region["value"]["x"] = min(region["value"]["x"] + 0.5, 90.0)
            annotation["updated_at"] = "2030-01-01T00:00:00.000000Z"
        task["updated_at"] = "2030-01-01T00:00:00.000000Z"


def build(layout: ProjectLayout, source: ExportFileSource, formats: list[str],
          media: MediaResolver | None) -> tuple[dict[str, FormatResult], float, int]:
    started, before = time.perf_counter(), written_bytes()
    take_project_snapshot(source, layout)
    update_store(layout)
    results = build_datasets(layout, formats, media, DatasetOptions()).results
    return results, time.perf_counter() - started, written_bytes() - before


def version_dir(result: FormatResult) -> Path:
    assert result.version is not None, "a project build publishes versions"
    return result.version.path


def where(relative: str) -> str:
    """A file's group in the breakdown: per-task files by folder, the others by name."""
    parent = os.path.dirname(relative)
    return f"{parent}/*" if parent else relative


def measure(work: Path, export: Path, formats: list[str], changed: float, with_images: bool) -> None:
    shutil.rmtree(work, ignore_errors=True)
    project = work / "projects" / "1"
    project.mkdir(parents=True)
    tasks = json.loads(export.read_bytes())
    media = None
    if with_images:
        for task in tasks:
            for annotation in task["annotations"]:
                for region in annotation["result"]:
                    region["original_width"], region["original_height"] = IMAGE_WIDTH, IMAGE_HEIGHT
        started = time.perf_counter()
        files, mean = write_task_images(tasks, work / "media")
        print(f"  {files} task images ({IMAGE_WIDTH}×{IMAGE_HEIGHT} JPEG, quality 90), mean {mean / 1024:.1f} KiB "
              f"({mean:.0f} B), {files * mean / MIB:.1f} MiB, written in {time.perf_counter() - started:.1f} s")
        media = MediaResolver(media_root=work / "media", cache_dir=work / "media-cache")
    (project / "export.json").write_text(json.dumps(tasks))
    shutil.copyfile(OUT / "label_config.xml", project / "label_config.xml")
    layout = ProjectLayout(work / "output", "1")
    source = ExportFileSource(work / "projects")

    first, first_seconds, first_written = build(layout, source, formats, media)
    change_tasks(tasks, changed)
    (project / "export.json").write_text(json.dumps(tasks))
    second, second_seconds, second_written = build(layout, source, formats, media)
    if media is not None:
        report = media.report().as_dict()
        media.close()
        print(f"  media: {report}")

    print(f"  build of version 1 {first_seconds:.1f} s ({first_written / MIB:.0f} MiB written), "
          f"of version 2 (incremental) {second_seconds:.1f} s ({second_written / MIB:.0f} MiB written)")
    total_full = total_own = 0
    for name in formats:
        old, new = blocks(version_dir(first[name])), blocks(version_dir(second[name]))
        full = sum(size for size, _ in old.values())
        own_files = {inode: found for inode, found in new.items() if inode not in old}
        own = sum(size for size, _ in own_files.values())
        total_full, total_own = total_full + full, total_own + own
        groups: Counter[str] = Counter()
        for size, relative in own_files.values():
            groups[where(relative)] += size
        top = ", ".join(f"{group} {size / MIB:.2f}" for group, size in groups.most_common(4))
        print(f"  {name}: a full copy {full:,} B ({full / MIB:.1f} MiB, {len(old)} files); version 2's own "
              f"{own:,} B ({own / MIB:.2f} MiB, {len(own_files)} of {len(new)} files): {own / full:.2%}\n"
              f"      largest own parts (MiB): {top}")
    print(f"  together: {total_own:,} of {total_full:,} B ({total_own / MIB:.2f} of {total_full / MIB:.1f} MiB): "
          f"{total_own / total_full:.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--formats", default="YOLO,COCO", help="the labels-only measurement")
    parser.add_argument("--image-formats", default="YOLO_WITH_IMAGES,COCO", help="the measurement with task images")
    parser.add_argument("--no-images", action="store_true", help="skip the measurement with task images")
    parser.add_argument("--keep", action="store_true", help="keep the images measurement's folder (GBs)")
    args = parser.parse_args()
    export = generate(args.tasks, OUT)
    print(f"{args.tasks} tasks, {args.changed:.0%} changed; filesystem of {OUT}: "
          f"{os.statvfs(OUT).f_bsize} B blocks; sizes are st_blocks × 512")
    print(f"labels only: {args.formats}")
    measure(OUT / "version_disk", export, args.formats.split(","), args.changed, with_images=False)
    if not args.no_images:
        print(f"with task images: {args.image_formats}")
        work = OUT / "version_disk_images"
        measure(work, export, args.image_formats.split(","), args.changed, with_images=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
