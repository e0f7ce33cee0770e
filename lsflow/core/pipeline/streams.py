"""The aggregate files of a dataset being written: each task's records appended in task order.

A `StreamSink` knows where every task's records landed (offset, length), so the next export can
copy an unchanged task's records out of this file instead of making them again; consecutive
unchanged tasks are copied as one range, separators included.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from lsflow.core.formats.base import Span, Stream, write_all

_COPY_CHUNK = 1 << 20


class StreamSink:
    def __init__(self, path: Path, stream: Stream):
        self._file = open(path, "wb")
        self._file.write(stream.header)
        self._separator = stream.separator
        self._footer = stream.footer
        self._position = len(stream.header)  # where the next byte goes, counting the range not yet copied
        self._empty = True
        self._run: tuple[BinaryIO, int, int] | None = None  # (earlier file, start, end) still to copy

    def add(self, records: bytes) -> Span:
        """Append a task's records (already joined by the separator)."""
        if not records:
            return (self._position, 0)
        self._next_records()
        self._file.write(records)
        return self._placed(len(records))

    def add_from(self, source: int, span: Span) -> Span:
        """`add` for records that lie at `span` in the open file `source` (a worker's spill file): the
        kernel appends them, they do not pass through this process."""
        start, length = span
        if not length:
            return (self._position, 0)
        self._next_records()
        self._file.flush()
        _append_range(source, self._file.fileno(), start, start + length, "a spill file")
        return self._placed(length)

    def copy(self, source: BinaryIO, span: Span) -> Span:
        """Append a task's records from an earlier file of this stream (`span` is where they are there)."""
        start, length = span
        if not length:
            return (self._position, 0)
        run = self._run
        if run is not None and run[0] is source and run[2] + len(self._separator) == start:
            # The next task of the same run: the separator between the two is in the earlier file too.
            self._run = (source, run[1], start + length)
            self._position += len(self._separator)
        else:
            self._next_records()
            self._run = (source, start, start + length)
        return self._placed(length)

    def close(self) -> None:
        self._copy_run()
        self._file.write(self._footer)
        self._file.close()

    def abandon(self) -> None:
        # The file is thrown away: bytes its buffer could not write (the disk is full) do not matter, and
        # an error here would keep the build from removing its staging folder.
        with contextlib.suppress(OSError):
            self._file.close()

    def _next_records(self) -> None:
        """Before a task's records that are not part of the run being gathered: that run, then a separator."""
        self._copy_run()
        if not self._empty:
            self._file.write(self._separator)
            self._position += len(self._separator)

    def _placed(self, length: int) -> Span:
        """The span of the `length` bytes of records just appended (or to be copied with the run)."""
        start, self._position, self._empty = self._position, self._position + length, False
        return (start, length)

    def _copy_run(self) -> None:
        if self._run is None:
            return
        source, start, end = self._run
        self._run = None
        self._file.flush()
        _append_range(source.fileno(), self._file.fileno(), start, end, source.name)


def _append_range(source: int, target: int, start: int, end: int, source_name: str) -> None:
    """Bytes [start, end) of the file `source` appended to `target`, by the kernel where it can
    (`copy_file_range`: a reflink on filesystems that share blocks; `sendfile` across filesystems, e.g.
    from /dev/shm), read and written here where it cannot (another system)."""
    while start < end:
        try:
            copied = os.copy_file_range(source, target, end - start, start)
        except (AttributeError, OSError):
            try:
                copied = os.sendfile(target, source, start, end - start)
            except (AttributeError, OSError):
                chunk = os.pread(source, min(_COPY_CHUNK, end - start), start)
                write_all(target, chunk)
                copied = len(chunk)
        if not copied:
            raise ValueError(f"{source_name} ends at byte {start}, before the records it should hold")
        start += copied
