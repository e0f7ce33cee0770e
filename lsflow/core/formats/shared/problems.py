"""A check's problems over a folder of a million files, in bounded memory.

A check reports how many problems it found and the first few in file order. Sorting a million file
paths first costs ~200 bytes a file (the `Path` objects); instead the files are walked in whatever
order the folder lists them and only the problems with the smallest keys are kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROBLEMS_SHOWN = 20


class Problems:
    def __init__(self, shown: int = PROBLEMS_SHOWN):
        self.shown = shown
        self.count = 0
        self._kept: list[tuple[Any, int, str]] = []

    def add(self, key: Any, text: str) -> None:
        """A problem, placed by `key` (a file's path parts, then a line number): the same first problems
        as walking the files sorted."""
        self.count += 1
        self._kept.append((key, self.count, text))
        if len(self._kept) > 4 * self.shown:
            self._kept = sorted(self._kept)[:self.shown]

    def first(self) -> list[str]:
        return [text for _, _, text in sorted(self._kept)[:self.shown]]


def files_in(folder: Path, suffix: str) -> Iterator[Path]:
    """The files of `folder` ending in `suffix`, in the order the folder lists them (never all at once)."""
    if folder.is_dir():
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(suffix) and entry.is_file():
                    yield Path(entry.path)
