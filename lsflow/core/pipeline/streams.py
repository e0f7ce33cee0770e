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

from lsflow.core.formats.base import Span, Stream

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
        self._copy_run()
        if not self._empty:
            self._file.write(self._separator)
            self._position += len(self._separator)
        self._file.write(records)
        start, self._position, self._empty = self._position, self._position + len(records), False
        return (start, len(records))

    def add_from(self, source: int, span: Span) -> Span:
        """`add` for records that lie at `span` in the open file `source` (a worker's spill file): the
        kernel appends them, they do not pass through this process."""
        start, length = span
        if not length:
            return (self._position, 0)
        self._copy_run()
        if not self._empty:
            self._file.write(self._separator)
            self._position += len(self._separator)
        self._file.flush()
        _send(source, self._file.fileno(), start, length)
        start, self._position, self._empty = self._position, self._position + length, False
        return (start, length)

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
            self._copy_run()
            if not self._empty:
                self._file.write(self._separator)
                self._position += len(self._separator)
            self._run = (source, start, start + length)
        new_start, self._position, self._empty = self._position, self._position + length, False
        return (new_start, length)

    def close(self) -> None:
        self._copy_run()
        self._file.write(self._footer)
        self._file.close()

    def abandon(self) -> None:
        # The file is thrown away: bytes its buffer could not write (the disk is full) do not matter, and
        # an error here would keep the build from removing its staging folder.
        with contextlib.suppress(OSError):
            self._file.close()

    def _copy_run(self) -> None:
        if self._run is None:
            return
        source, start, end = self._run
        self._run = None
        self._file.flush()
        target = self._file.fileno()
        while start < end:  # copied by the kernel where it can: the bytes need not pass through here
            try:
                copied = os.copy_file_range(source.fileno(), target, end - start, start)
            except (AttributeError, OSError):  # another platform or filesystem
                source.seek(start)
                chunk = memoryview(source.read(min(_COPY_CHUNK, end - start)))
                copied = len(chunk)
                while chunk:
                    chunk = chunk[os.write(target, chunk):]
            if not copied:
                raise ValueError(f"{source.name} ends at byte {start}, before the records kept from it")
            start += copied


def _send(source: int, target: int, start: int, length: int) -> None:
    """`length` bytes from `start` in `source` appended to `target` by the kernel (`sendfile`), or read
    and written where it cannot (another system)."""
    end = start + length
    while start < end:
        try:
            sent = os.sendfile(target, source, start, end - start)
        except OSError:
            chunk = memoryview(os.pread(source, min(_COPY_CHUNK, end - start), start))
            sent = len(chunk)
            while chunk:
                chunk = chunk[os.write(target, chunk):]
        if not sent:
            raise ValueError(f"a spill file ends at byte {start}, before the records it should hold")
        start += sent
