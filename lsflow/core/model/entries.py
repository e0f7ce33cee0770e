"""A task as the export pipeline first meets it: what naming, ordering and reuse need, and the task.

The pipeline names every task's image, tracks the newest change and decides which tasks to write
before anything is parsed into the model; the task itself comes parsed (`task`) or as its JSON
(`raw`), which another process can parse and write (see `lsflow.core.pipeline.parallel`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from lsflow.core.model.task import ImageSize, Task


@dataclass(slots=True)
class TaskEntry:
    id: Any
    updated_at: str | None
    image_ref: str | None  # the task's image reference (see `image_reference`)
    image_size: ImageSize | None  # from its regions (see `known_image_size`); None if none says
    raw: bytes | None = None  # the task's JSON, when another process may write it
    value: Any = None  # that JSON parsed, when it was (the model is built from it, not parsed again)
    task: Task | None = None
    content_hash: str | None = None  # of the task as stored, when it came from the store
    position: int = 0  # in the export, for error messages

    def parsed(self) -> Task:
        if self.task is None:
            # An entry without task or value has its raw JSON (see entry_of_json, the store); once per task: no assert
            value = orjson.loads(self.raw) if self.value is None else self.value  # type: ignore[arg-type]
            self.task = Task.from_dict(value, self.position)
        return self.task


def image_reference(data: dict[str, Any], image_key: str | None) -> str | None:
    """The media reference under the task's image key; multi-page image tasks: the first page."""
    value = data.get(image_key) if image_key else None
    if isinstance(value, list):  # regions belong to the first page here
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def known_image_size(raw: dict[str, Any]) -> ImageSize | None:
    """The image size the task's first sized region (of an annotation or prediction) carries."""
    for key in ("annotations", "predictions"):
        annotations = raw.get(key) if key == "predictions" else raw.get("annotations", raw.get("completions"))
        for annotation in annotations or ():
            if not isinstance(annotation, dict):  # predictions listed as bare ids
                continue
            for region in annotation.get("result") or ():
                width, height = region.get("original_width"), region.get("original_height")
                if width and height:
                    try:
                        size = ImageSize(int(width), int(height))
                    except (TypeError, ValueError, OverflowError):  # not a size: the region is dropped saying so
                        continue
                    if size.width > 0 and size.height > 0:
                        return size
    return None


def entry_of(task: Task, image_key: str | None, raw: bytes | None = None) -> TaskEntry:
    return TaskEntry(task.id, task.updated_at, image_reference(task.data, image_key), known_image_size(task.raw),
                     raw=raw, task=task)


def entry_of_json(raw: bytes, value: Any, position: int, image_key: str | None) -> TaskEntry:
    """An entry for a task read as `value` from its JSON `raw`. A value that is not a well-formed
    task is parsed into the model at once, which names what is wrong with it."""
    try:
        return TaskEntry(value["id"], value.get("updated_at"), image_reference(value["data"], image_key),
                         known_image_size(value), raw=raw, value=value, position=position)
    except (KeyError, TypeError, AttributeError):
        return entry_of(Task.from_dict(value, position), image_key)


def entries_of(tasks: Iterable[Task], image_key: str | None) -> Iterator[TaskEntry]:
    for task in tasks:
        yield entry_of(task, image_key)
