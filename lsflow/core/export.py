"""The export pipeline: one pass over the tasks feeds every requested format, then publishes.

Each format is written into a staging directory next to its destination and only moved into place
when every format finished, so a failure never leaves a half-written dataset behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from array import array
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import orjson

from lsflow.core.formats import writer_class
from lsflow.core.formats.base import DatasetWriter, ExportContext, TaskItem, file_stem
from lsflow.core.label_config import LabelConfig, classes_from_labels
from lsflow.core.media_files import MediaLookup, image_size
from lsflow.core.model import Task
from lsflow.core.report import DROPPED_FILE, REPORT_FILE, RegionReport
from lsflow.core.selection import AnnotationPolicy, select_annotations
from lsflow.core.shapes import ImageSize

_COMPARE_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class FormatResult:
    format_name: str
    path: Path
    report: dict
    files: PublishSummary


class TaskFileNames:
    """Collision-free image file names: the media basename, made unique with the task id when two
    tasks share one (Label Studio would let the second overwrite the first).
    Uniqueness is per stem, because YOLO and VOC name label files by the image stem.
    """

    def __init__(self) -> None:
        self._stems = _StemDigests()

    def name_for(self, task_id: int, image_ref: str | None) -> str:
        name = _basename(image_ref) or f"task-{task_id}"  # one path component
        stem = file_stem(name)
        if not self._stems.add(stem):
            name = PurePosixPath(name).with_stem(f"{stem}__task{task_id}").name
            self._stems.add(file_stem(name))
        return name


class _StemDigests:
    """The stems seen so far, as 64-bit BLAKE2b digests in an open-addressing table: ~16 bytes a
    stem where a set of strings took ~110, the one thing of an export pass that grew with the
    project. Two different stems with equal digests (odds ~1e-10 at 100 000 tasks) would only give
    the second a `__task<id>` suffix it did not need: still unique, still deterministic.
    """

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * 4096))  # 0 marks an empty slot
        self._used = 0

    def add(self, stem: str) -> bool:
        """Record `stem`; False when it had been recorded before."""
        digest = int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=8).digest(), "little") or 1
        slots, mask = self._slots, len(self._slots) - 1
        index = digest & mask
        while slots[index]:
            if slots[index] == digest:
                return False
            index = (index + 1) & mask
        slots[index] = digest
        self._used += 1
        if 2 * self._used > len(slots):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        slots, mask = self._slots, len(self._slots) - 1
        for digest in old:
            if digest:
                index = digest & mask
                while slots[index]:
                    index = (index + 1) & mask
                slots[index] = digest


def _basename(image_ref: str | None) -> str:
    if not image_ref:
        return ""
    # Fast path for the common `/data/upload/<project>/<file>`: a plain path, nothing to parse or decode.
    if image_ref[0] == "/" and image_ref[1:2] != "/" and not any(c in image_ref for c in "?#;%\t\r\n"):
        last = image_ref.rsplit("/", 1)[1]
        if last not in ("", "."):
            return last
    parsed = urlparse(image_ref)
    # `/data/local-files/?d=dir/file.jpg` keeps the path in the query string.
    path = parsed.query.split("d=", 1)[1] if parsed.query.startswith("d=") else parsed.path
    return PurePosixPath(unquote(path)).name


def image_reference(task: Task, image_key: str | None) -> str | None:
    value = task.data.get(image_key) if image_key else None
    if isinstance(value, list):  # multi-page image tasks: regions belong to the first page here
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def known_image_size(task: Task) -> ImageSize | None:
    for annotation in task.annotations + task.predictions:
        for region in annotation.regions:
            if region.original_width and region.original_height:
                return ImageSize(int(region.original_width), int(region.original_height))
    return None


def export_context(
    label_config: LabelConfig | None,
    tasks: Callable[[], Iterable[Task]],
    project_id: str | None = None,
    media: MediaLookup | None = None,
) -> ExportContext:
    """Classes and keypoints from the label config; without one, from a first pass over the data."""
    if label_config is not None:
        return ExportContext(
            classes=label_config.classes(),
            keypoint_names=tuple(label_config.keypoint_order()),
            label_config=label_config,
            project_id=project_id,
            image_key=label_config.data_key("image") or "image",
            media=media,
        )
    class_names, keypoint_names = set(), set()
    for task in tasks():
        for annotation in task.annotations:
            for region in annotation.regions:
                target = keypoint_names if region.type == "keypointlabels" else class_names
                if region.type.endswith("labels"):
                    target.update(region.labels)
    return ExportContext(
        classes=classes_from_labels(class_names),
        keypoint_names=tuple(sorted(keypoint_names)),
        project_id=project_id,
        media=media,
    )


def export_datasets(
    tasks: Iterable[Task],
    formats: list[str],
    out_root: Path,
    context: ExportContext,
    policy: AnnotationPolicy = AnnotationPolicy(),
) -> dict[str, FormatResult]:
    """Stream `tasks` once through a writer per format; publish `out_root/<FORMAT>/` atomically."""
    out_root.mkdir(parents=True, exist_ok=True)
    staging = out_root / f".staging-{uuid.uuid4().hex[:12]}"
    file_names = TaskFileNames()
    try:
        with ExitStack() as logs:
            writers: list[DatasetWriter] = []
            for name in formats:
                directory = staging / name
                directory.mkdir(parents=True)
                report = RegionReport(name, logs.enter_context(open(directory / DROPPED_FILE, "wb")))
                writers.append(writer_class(name)(directory, context, report))
            latest_change = ""
            for task in tasks:
                if task.updated_at and task.updated_at > latest_change:
                    latest_change = task.updated_at
                chosen, skipped = select_annotations(task, policy)
                image_ref = image_reference(task, context.image_key)
                size = known_image_size(task)
                if size is None and image_ref and context.media is not None:
                    local = context.media.local_path(image_ref)
                    size = image_size(local) if local else None
                item = TaskItem(task, chosen, image_ref, file_names.name_for(task.id, image_ref), size)
                regions = sum([len(a.regions) for a in chosen])
                skip_reasons = [reason for _, reason in skipped]
                for writer in writers:
                    report = writer.report
                    report.tasks += 1
                    report.annotations_exported += len(chosen)
                    if skip_reasons:
                        report.annotations_skipped.update(skip_reasons)
                    report.regions_in += regions
                    writer.write(item)
            for writer in writers:
                writer.dataset_date = latest_change
                writer.close()
                (writer.out_dir / REPORT_FILE).write_bytes(
                    orjson.dumps(writer.report.as_dict(), option=orjson.OPT_INDENT_2)
                )
        results = {}
        for writer in writers:
            destination = out_root / writer.name
            files = publish_directory(writer.out_dir, destination)
            results[writer.name] = FormatResult(writer.name, destination, writer.report.as_dict(), files)
        return results
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class PublishSummary:
    files_written: int  # new or changed files
    files_kept: int  # byte-identical to the published copy: the old file (inode, mtime) is kept
    files_removed: int  # published before, gone now (e.g. deleted tasks' label files)


def publish_directory(source: Path, destination: Path) -> PublishSummary:
    """Move a finished directory into place, replacing what was there.

    `rename` of a directory is atomic on one filesystem; the old copy is first moved aside (also a
    rename) so readers see either the old or the new dataset, never a mix. Files whose bytes did not
    change are carried over as hard links to the published ones, so an incremental re-export only
    touches the files of changed tasks (rsync, DVC and mtimes see just those).
    """
    summary = _carry_over_unchanged(source, destination)
    retired = None
    if destination.exists():
        retired = destination.with_name(f".retired-{destination.name}-{uuid.uuid4().hex[:8]}")
        os.rename(destination, retired)
    os.rename(source, destination)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
    return summary


def _carry_over_unchanged(new: Path, old: Path) -> PublishSummary:
    # Plain strings and os.walk: a per-task format holds one file per task, and pathlib objects
    # for each of them cost more than the comparison itself.
    new_files = _relative_files(str(new))
    if not old.exists():
        return PublishSummary(len(new_files), 0, 0)
    written = kept = 0
    for relative in new_files:
        fresh, published = os.path.join(new, relative), os.path.join(old, relative)
        if _same_bytes(published, fresh):
            link = os.path.join(os.path.dirname(fresh), f".{os.path.basename(fresh)}.link")
            try:
                os.link(published, link)
            except OSError:  # a filesystem without hard links: the fresh copy is just as good
                written += 1
                continue
            os.replace(link, fresh)
            kept += 1
        else:
            written += 1
    new_set = set(new_files)
    removed = sum(1 for relative in _relative_files(str(old)) if relative not in new_set)
    return PublishSummary(written, kept, removed)


def _relative_files(root: str, prefix: str = "") -> list[str]:
    """Files under `root` (symlinked folders not followed), relative; the entry types come with the
    directory listing, so this costs no stat per file."""
    files = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                files.extend(_relative_files(entry.path, f"{prefix}{entry.name}/"))
            elif entry.is_file():
                files.append(prefix + entry.name)
    return files


def _same_bytes(published: str, fresh: str) -> bool:
    """True when `published` is a regular file with exactly the bytes of `fresh`."""
    try:
        old_stat = os.stat(published)
    except OSError:
        return False
    if not stat.S_ISREG(old_stat.st_mode) or old_stat.st_size != os.stat(fresh).st_size:
        return False
    with open(published, "rb") as old_file, open(fresh, "rb") as new_file:
        while True:
            old_chunk, new_chunk = old_file.read(_COMPARE_CHUNK), new_file.read(_COMPARE_CHUNK)
            if old_chunk != new_chunk:
                return False
            if not old_chunk:
                return True
