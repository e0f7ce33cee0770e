"""Label Studio JSON exports on disk: streamed task by task, and a source of recorded snapshots.

`ExportFileSource` is the offline twin of the live Label Studio source: a folder per project holding
`export.json` (a Label Studio JSON export or snapshot) and `label_config.xml`.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import numpy as np
import orjson
from ijson.common import ObjectBuilder

from lsflow.core.incremental.changes import changed_after
from lsflow.core.model.entries import TaskEntry, entry_of, entry_of_json
from lsflow.core.model.task import ExportFormatError, Task
from lsflow.sources.base import EXPORT_FILE, LABEL_CONFIG_FILE, ProjectInfo, Snapshot

_COPY_CHUNK = 1 << 20
_SCAN_CHUNK = 1 << 20
_JSON_WHITESPACE = b" \t\r\n"
_OPENING_EVENTS = frozenset({"start_map", "start_array"})
_CLOSING_EVENTS = frozenset({"end_map", "end_array"})
_WIDE_DIGITS = 19  # 9223372036854775807, the largest integer ijson reads, has 19


def iter_export_tasks(path: Path) -> Iterator[Task]:
    """Tasks of a JSON export one at a time; the file is never held in memory whole.

    An array is split into items by a vectorized scan and each item parsed with orjson, about twice
    as fast as ijson; whatever that reader does not take (invalid JSON, items that are not objects or
    arrays, numbers orjson does not read) is left to ijson, which resumes after the tasks already
    given and decides exactly as it always did.
    """
    for entry in iter_export_entries(path, None):
        yield entry.parsed()


def iter_export_entries(path: Path, image_key: str | None) -> Iterator[TaskEntry]:
    """`iter_export_tasks` for the export pipeline: each task read but not yet parsed into the model
    (its JSON comes along, for a worker process to parse), or parsed where the fast reader gave up."""
    with open(path, "rb") as stream:
        first = _first_significant_byte(stream, path)
        skip = 0
        if first == b"[":
            try:
                for raw, value in _array_items(stream):
                    entry = entry_of_json(raw, value, skip, image_key)
                    skip += 1
                    yield entry
                return
            except _LeftToIjson:
                pass
        stream.seek(0)
        if first == b"{":  # a single task, as Label Studio's converter also accepts
            items = _json_values_at(stream, 0)
        elif first == b"[":
            items = _json_values_at(stream, 1)
        else:
            raise ExportFormatError(f"{path} is not a Label Studio JSON export (it does not start with '[' or '{{')")
        position, last_id = 0, None
        try:
            for position, raw in enumerate(items):
                if position < skip:  # given already by the fast reader
                    last_id = raw["id"]
                    continue
                task = Task.from_dict(raw, position)
                last_id = task.id
                yield entry_of(task, image_key)
        except ijson.JSONError as error:
            after = f"after task {last_id} (item {position})" if last_id is not None else "before the first task"
            raise ExportFormatError(f"{path} is not valid JSON {after}: {error}") from None


def _json_values_at(stream: BinaryIO, level: int) -> Iterator[Any]:
    """The values at nesting `level` of the JSON document in `stream` (0: the document, 1: the items of
    its top array), built from ijson's parse events. Not `ijson.items`: it keeps the prefix of every open
    container, so memory grows with the square of the nesting (25 kB of '[' took 1.5 GB, 100 kB was OOM-killed);
    here it stays proportional to the value being built."""
    depth, builder = 0, None
    for event, value in ijson.basic_parse(stream, use_float=True):
        opens, closes = event in _OPENING_EVENTS, event in _CLOSING_EVENTS
        if opens and depth == level:
            builder = ObjectBuilder()
        if builder is not None:
            builder.event(event, value)
        elif depth == level and not closes and event != "map_key":  # a scalar item
            yield value
        if opens:
            depth += 1
        elif closes:
            depth -= 1
            if depth == level and builder is not None:
                yield builder.value
                builder = None


class _LeftToIjson(Exception):
    """The fast array reader met something it leaves to a full streaming parser."""


def _array_items(stream: BinaryIO) -> Iterator[tuple[bytes, Any]]:
    """The items of the JSON array whose '[' was just read from `stream`, each as (its JSON, the
    value orjson parsed from it).

    Boundaries come from numpy over a chunk: a quote preceded by an odd run of backslashes is
    escaped, the others delimit strings; outside strings the brackets give the depth, and an item
    is a bracketed value at depth 1. orjson then parses each item strictly and the bytes between
    items must be one comma, so the items are exactly those of a valid document — and on anything
    else `_LeftToIjson` is raised once the items before it were given.
    """
    buffer = b""
    read_size = _SCAN_CHUNK
    need_comma = False
    while True:
        more = stream.read(read_size)
        buffer += more
        codes = np.frombuffer(buffer, dtype=np.uint8)
        quotes = np.flatnonzero(codes == 34)  # "
        after_first = quotes[quotes > 0]
        maybe_escaped = after_first[codes[after_first - 1] == 92]  # a backslash before: count the run
        escaped = [q for q in maybe_escaped.tolist() if _backslashes_before(buffer, q) % 2]
        if escaped:
            quotes = np.setdiff1d(quotes, np.array(escaped), assume_unique=True)
        brackets = np.flatnonzero((codes == 123) | (codes == 125) | (codes == 91) | (codes == 93))  # {}[]
        brackets = brackets[np.searchsorted(quotes, brackets) % 2 == 0]  # outside strings
        wide = _first_wide_integer(codes, quotes)
        kinds = codes[brackets]
        opening = (kinds == 123) | (kinds == 91)
        depth = np.cumsum(np.where(opening, 1, -1)) + 1  # after each bracket; the array itself is 1
        closes = brackets[depth == 0]
        limit = int(closes[0]) if len(closes) else len(buffer)
        starts = brackets[opening & (depth == 2)]
        ends = brackets[~opening & (depth == 1)]
        cut = 0
        for start, end in zip(starts.tolist(), ends.tolist()):
            if end >= limit:
                break
            if buffer[cut:start].strip(_JSON_WHITESPACE) != (b"," if need_comma else b"") or start < wide < end:
                raise _LeftToIjson
            item = buffer[start:end + 1]
            try:
                value = orjson.loads(item)
            except orjson.JSONDecodeError:
                raise _LeftToIjson from None
            yield item, value
            need_comma, cut = True, end + 1
        if len(closes):  # the array ends here: only whitespace may lie between the last item and EOF
            if buffer[limit] != 93 or buffer[cut:limit].strip(_JSON_WHITESPACE):  # ]
                raise _LeftToIjson
            rest = buffer[limit + 1:]
            while True:
                if rest.strip(_JSON_WHITESPACE):
                    raise _LeftToIjson
                if not (rest := stream.read(_SCAN_CHUNK)):
                    return
        if not more:
            raise _LeftToIjson  # the array never closes
        buffer = buffer[cut:]
        # No item ended in this chunk: read more at once, so a huge task is not rescanned per MiB.
        read_size = _SCAN_CHUNK if cut else read_size * 2


def _first_wide_integer(codes: np.ndarray, quotes: np.ndarray) -> int:
    """Where the first integer of 19 digits or more starts (outside strings), else -1. ijson rejects
    integers beyond 64 bits where orjson turns some into floats, so those are left to ijson."""
    digit = ((codes >= 48) & (codes <= 57)).view(np.int8)  # 0-9
    edges = np.diff(digit, prepend=np.int8(0), append=np.int8(0))
    run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for start in run_starts[run_ends - run_starts >= _WIDE_DIGITS].tolist():
        fraction = start > 0 and codes[start - 1] == 46  # .
        if not fraction and np.searchsorted(quotes, start) % 2 == 0:
            return start
    return -1


def _backslashes_before(buffer: bytes, position: int) -> int:
    count = 0
    while position - count - 1 >= 0 and buffer[position - count - 1] == 92:
        count += 1
    return count


def count_tasks(path: Path) -> int:
    return sum(1 for _ in iter_export_tasks(path))


def _first_significant_byte(stream, path: Path) -> bytes:
    while chunk := stream.read(1):
        if not chunk.isspace():
            return chunk
    raise ExportFormatError(f"{path} is empty")


def write_export(tasks: Iterable[dict], destination: Path) -> str:
    """Write tasks as a JSON export, streaming; returns the file's md5."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(destination, "wb") as writer:
        separator = b"["
        for raw in tasks:
            chunk = separator + orjson.dumps(raw)
            digest.update(chunk)
            writer.write(chunk)
            separator = b","
        closing = b"[]" if separator == b"[" else b"]"
        digest.update(closing)
        writer.write(closing)
    return digest.hexdigest()


def copy_with_md5(source: Path, destination: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        while chunk := reader.read(_COPY_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


class ExportFileSource:
    """Projects recorded on disk: `<root>/<project id>/export.json` + `label_config.xml`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def describe(self) -> str:
        return f"files:{self.root}"

    def list_projects(self) -> list[ProjectInfo]:
        projects = []
        for folder in sorted(self.root.iterdir() if self.root.is_dir() else []):
            export = folder / EXPORT_FILE
            if export.is_file():
                projects.append(ProjectInfo(folder.name, folder.name, count_tasks(export), None))
        return projects

    def _export(self, project_id: str) -> Path:
        export = self.root / str(project_id) / EXPORT_FILE
        if not export.is_file():
            known = ", ".join(p.project_id for p in self.list_projects()) or "none"
            raise FileNotFoundError(f"project {project_id}: no {export} (projects on disk: {known})")
        return export

    def deleted_task_ids(self, project_id: str, known_ids: list[int]) -> set[int]:
        return set(known_ids) - {task.id for task in iter_export_tasks(self._export(project_id))}

    def take_snapshot(self, project_id: str, destination: Path, changed_since: str | None = None,
                      store_dir: Path | None = None) -> Snapshot:
        export = self._export(project_id)
        folder = export.parent
        destination.mkdir(parents=True, exist_ok=True)
        if changed_since is None:
            md5 = copy_with_md5(export, destination / EXPORT_FILE)
        else:
            changed = (t.raw for t in iter_export_tasks(export) if changed_after(t.updated_at, changed_since))
            md5 = write_export(changed, destination / EXPORT_FILE)
        label_config = None
        if (folder / LABEL_CONFIG_FILE).is_file():
            shutil.copyfile(folder / LABEL_CONFIG_FILE, destination / LABEL_CONFIG_FILE)
            label_config = (folder / LABEL_CONFIG_FILE).read_text(encoding="utf-8")
        return Snapshot(
            project_id=str(project_id),
            export_path=destination / EXPORT_FILE,
            label_config=label_config,
            snapshot_id=f"file-{md5[:12]}",
            md5=md5,
            source=self.describe(),
        )
