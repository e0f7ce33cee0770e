"""Downloaded media on disk, keyed by URL, with the validator that says whether a copy is still current.

Each URL gets a folder named by its SHA-256: the file under its own base name (so the extension
survives for readers that look at it) and `record.json` with the URL, size and validator (ETag /
Last-Modified). A copy is only trusted when the record matches the file's size; files are written
to a temporary name and renamed, so an interrupted run never leaves a half file that looks whole.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

RECORD_FILE = "record.json"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 120


def default_cache_dir() -> Path:
    """`LSFLOW_MEDIA_CACHE`, else the user's cache folder (`$XDG_CACHE_HOME` or `~/.cache`) / lsflow/media."""
    if configured := os.environ.get("LSFLOW_MEDIA_CACHE"):
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lsflow" / "media"


@dataclass(frozen=True, slots=True)
class CacheRecord:
    url: str
    size: int
    etag: str | None = None
    last_modified: str | None = None
    # True for Label Studio uploads: their names are unique per upload, so the bytes never change.
    immutable: bool = False

    @property
    def has_validator(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    folder: Path
    file: Path

    @property
    def record_path(self) -> Path:
        return self.folder / RECORD_FILE

    def record(self) -> CacheRecord | None:
        """The record of a complete cached copy, or None when there is none (or it does not match)."""
        try:
            record = CacheRecord(**orjson.loads(self.record_path.read_bytes()))
            return record if self.file.stat().st_size == record.size else None
        except (OSError, ValueError, TypeError):
            return None

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """A temporary file to write the download into; removed unless `commit` moved it into place."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".partial-{uuid.uuid4().hex}"
        try:
            yield partial
        finally:
            partial.unlink(missing_ok=True)

    def commit(self, partial: Path, record: CacheRecord) -> Path:
        # Drop the old record first: a crash between the two renames must not pair new bytes with it.
        self.record_path.unlink(missing_ok=True)
        os.replace(partial, self.file)
        pending = self.folder / f".record-{uuid.uuid4().hex}"
        pending.write_bytes(orjson.dumps(asdict(record)))
        os.replace(pending, self.record_path)
        return self.file


class MediaCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def entry(self, url: str, file_name: str) -> CacheEntry:
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()
        folder = self.root / key[:2] / key
        return CacheEntry(folder, folder / safe_file_name(file_name))


def safe_file_name(name: str) -> str:
    """A file name that cannot leave its folder or hide as a dot file, keeping the extension."""
    cleaned = _UNSAFE_NAME.sub("_", name).strip("._") or "media"
    if len(cleaned) > _MAX_NAME:
        stem, dot, suffix = cleaned.rpartition(".")
        cleaned = (stem[: _MAX_NAME - len(suffix) - 1] + dot + suffix) if dot and len(suffix) < 10 else cleaned[:_MAX_NAME]
    return cleaned
