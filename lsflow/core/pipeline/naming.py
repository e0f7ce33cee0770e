"""Image file names inside a dataset: the media's own name, made unique per stem across the project."""

from __future__ import annotations

import hashlib
from array import array
from pathlib import PurePosixPath

from lsflow.core.formats.base import file_stem
from lsflow.core.model.media_ref import MediaReference, media_file_name


class TaskFileNames:
    """Collision-free image file names: the media basename, made unique with the task id when two
    tasks share one (Label Studio would let the second overwrite the first).
    Uniqueness is per stem, because YOLO and VOC name label files by the image stem.
    """

    def __init__(self) -> None:
        self._stems = _StemDigests()

    def name_for(self, task_id: int, image_ref: str | None) -> str:
        name = plain_name(task_id, image_ref)
        stem = file_stem(name)
        if not self._stems.add(stem):
            name = PurePosixPath(name).with_stem(f"{stem}__task{task_id}").name
            self._stems.add(file_stem(name))
        return name


def plain_name(task_id: int, image_ref: str | None) -> str:
    """The task's image file name before collisions are resolved: the media basename, or `task-<id>`."""
    name = media_file_name(image_ref)  # one path component
    if not name:  # no reference, or one that names no file (a data: URI keeps its type's extension)
        name = f"task-{task_id}{MediaReference.parse(image_ref).suffix if image_ref else ''}"
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
        self._slots = array("Q", bytes(16 * len(old)))  # twice the slots (8 bytes each)
        slots, mask = self._slots, len(self._slots) - 1
        for digest in old:
            if digest:
                index = digest & mask
                while slots[index]:
                    index = (index + 1) & mask
                slots[index] = digest
