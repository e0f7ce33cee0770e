"""Immutable dataset versions: each build that changes a dataset's content publishes a new version.

    <versions dir>/<version id>/     a version, never changed once published (retention removes it whole)
    <versions dir>/pins.json         the pinned versions: retention never removes them
    <stable path> → <versions dir>/<id>   a symlink, switched atomically to the newest version

A version's id is derived from its content: the sha256 of every dataset file's relative path and
sha256 (the version's own description — manifest, card — left out), so the same content always gets
the same id and a rebuild that changes nothing publishes nothing. Files whose bytes did not change are
hard links to the previous version's, so a version where 1 % of the tasks changed costs about the disk
of the files those tasks wrote (and of the aggregate files, which every change rewrites).

A reader that resolved the stable path, or was given a version's own path, keeps reading that version
whole: nothing in it is replaced, and it is only removed by retention.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lsflow.core.pipeline.publish import PublishSummary, carry_over_unchanged, remove_tree, same_bytes

# A version's description of itself, written beside the dataset's files and not part of its id.
MANIFEST_FILE = "lsflow_version.json"
FILES_FILE = "lsflow_version_files.parquet"
TASKS_FILE = "lsflow_version_tasks.parquet"
CARD_FILE = "README.md"
CARD_DIR = "lsflow_card"
DESCRIPTION = frozenset({MANIFEST_FILE, FILES_FILE, TASKS_FILE, CARD_FILE, CARD_DIR})
PINS_FILE = "pins.json"
# `inode`: the file's inode when the version was published, valid while its folder is the one recorded in the
# table's metadata (`_FOLDER_KEY`); the next version takes the digest of a file linked from this one by it.
FILES_SCHEMA = pa.schema([("path", pa.string()), ("sha256", pa.string()), ("size", pa.int64()), ("inode", pa.int64())])
_FOLDER_KEY = b"lsflow.folder"
_HASH_CHUNK = 1 << 20
# Paths, digests and the previous version's rows of one batch are Python strings (~300 bytes a file
# in all): 65 536 a batch took the merge step of 200 000 tasks from ~230 to ~290 MB.
_DIGEST_BATCH = 8_192


@dataclass(frozen=True, slots=True)
class FileDigest:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    version_id: str
    path: Path  # the version's own folder: a path that never changes content
    new: bool  # False when the build's content equals an existing version's (nothing was published)
    previous: str | None  # the version the stable path showed before
    files: PublishSummary  # against the previous version


# Describes a version being published, in its staging folder: (folder, version id, previous id, files).
Describe = Callable[[Path, str, "str | None", "FilesSummary"], None]


def current_version(stable_path: Path) -> str | None:
    """The id of the version the stable path shows, or None."""
    return Path(os.readlink(stable_path)).name if stable_path.is_symlink() else None


def read_file_digests(version_dir: Path) -> dict[str, FileDigest]:
    try:
        table = pq.ParquetFile(version_dir / FILES_FILE, pre_buffer=False).read(use_threads=False)
    except (OSError, pa.ArrowException):
        return {}
    return {path: FileDigest(sha, size) for path, sha, size in zip(
        table.column("path").to_pylist(), table.column("sha256").to_pylist(), table.column("size").to_pylist())}


def version_id(digests: dict[str, FileDigest]) -> str:
    """The id of a version with these files (what `_write_digests` computes walking them in path order)."""
    digest = hashlib.sha256()
    for path in sorted(digests):
        digest.update(f"{path}\0{digests[path].sha256}\n".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class FilesSummary:
    """A version's dataset files, counted (their digests are in its `FILES_FILE`)."""

    files: int
    bytes: int


def publish_version(staging: Path, versions_dir: Path, stable_path: Path, describe: Describe | None = None,
                    ) -> PublishedVersion:
    """Publish the finished dataset in `staging` as a version, and point `stable_path` at it."""
    previous = current_version(stable_path)
    previous_dir = versions_dir / previous if previous else None
    if previous_dir is not None and not previous_dir.is_dir():
        previous_dir = None
    version, summary, files = _write_digests(staging, previous_dir)
    _release_arrow_memory()
    destination = versions_dir / version
    new = not destination.is_dir()
    if new:
        if describe is not None:
            describe(staging, version, previous, summary)
            _release_arrow_memory()
        versions_dir.mkdir(parents=True, exist_ok=True)
        os.rename(staging, destination)
    else:
        remove_tree(staging)
    if version != previous:
        point(stable_path, destination)
    return PublishedVersion(version, destination, new, previous, files)


def _release_arrow_memory() -> None:
    """Hand the memory Arrow freed back to the system: its default pool (mimalloc) keeps freed pages for
    reuse, so each format's listing and task tables would add to the process's size (~55 MB at 200 000
    tasks over five formats)."""
    pa.default_memory_pool().release_unused()


def point(stable_path: Path, version_dir: Path) -> None:
    """Switch the stable path to `version_dir` in one rename (a relative link: the tree can move)."""
    stable_path.parent.mkdir(parents=True, exist_ok=True)
    link = stable_path.parent / f".{stable_path.name}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(version_dir, stable_path.parent), link)
    if stable_path.is_dir() and not stable_path.is_symlink():
        # A dataset published before versions existed: replaced (not atomically, once) by the link.
        shutil.rmtree(stable_path)
    os.replace(link, stable_path)


def _write_digests(folder: Path, previous_dir: Path | None) -> tuple[str, FilesSummary, PublishSummary]:
    """Every dataset file's sha256 into `folder/FILES_FILE` (sorted by path), and the version id they give;
    on the way, each file whose bytes equal the previous version's file of its path becomes a hard link to it.

    Both file lists are walked side by side in path order, a batch at a time: a version of a million files
    holds only its paths and inodes (~55 bytes a file) and looks at a file when its batch comes. A file the
    pass hard-linked from the previous version has the inode that version recorded for it, so it takes that
    file's digest and size without a system call: an incremental build whose tasks mostly did not change
    costs the listing, not a stat of every file in both versions."""
    if previous_dir is not None and not _files_file_readable(previous_dir):
        # A previous version without its file table (damaged): link its equal files by walking it instead.
        carried = carry_over_unchanged(folder, previous_dir, ignore=DESCRIPTION)
        version, summary = _write_digests_of(folder, None)[:2]
        return version, summary, carried
    return _write_digests_of(folder, previous_dir)


def _write_digests_of(folder: Path, previous_dir: Path | None) -> tuple[str, FilesSummary, PublishSummary]:
    paths, inodes = _listing(folder)
    order = pc.sort_indices(paths)  # taken a batch at a time: the listing is never copied whole in order
    here = os.stat(folder)
    previous_rows, inodes_trusted = _previous_files(previous_dir, here.st_dev)
    previous_row = next(previous_rows, None)
    digest = hashlib.sha256()
    total = written = kept = removed = 0
    with pq.ParquetWriter(folder / FILES_FILE, FILES_SCHEMA.with_metadata(_folder_identity(here))) as writer:
        for start in range(0, len(paths), _DIGEST_BATCH):
            batch_order = order.slice(start, _DIGEST_BATCH)
            batch_paths = paths.take(batch_order).to_pylist()
            batch_inodes = inodes.take(batch_order).to_pylist()
            shas, sizes, kept_inodes = [], [], []
            for relative, inode in zip(batch_paths, batch_inodes):
                while previous_row is not None and previous_row.path < relative:
                    removed += 1
                    previous_row = next(previous_rows, None)
                same_path = None
                if previous_row is not None and previous_row.path == relative:
                    same_path, previous_row = previous_row, next(previous_rows, None)
                if same_path is not None and inodes_trusted and same_path.inode == inode:
                    found = _Found(same_path.sha256, same_path.size, inode, True)  # linked by the pass: that very file
                else:
                    found = _look_at(folder, relative, same_path, previous_dir)
                kept += found.kept
                written += not found.kept
                shas.append(found.sha256)
                sizes.append(found.size)
                kept_inodes.append(found.inode)
                digest.update(f"{relative}\0{found.sha256}\n".encode())
            total += sum(sizes)
            writer.write_table(pa.table([batch_paths, shas, sizes, kept_inodes], schema=FILES_SCHEMA))
    while previous_row is not None:
        removed += 1
        previous_row = next(previous_rows, None)
    return digest.hexdigest()[:16], FilesSummary(len(paths), total), PublishSummary(written, kept, removed)


class _Found(NamedTuple):
    sha256: str
    size: int
    inode: int
    kept: bool  # the previous version's file itself (linked)


def _look_at(folder: Path, relative: str, previous: _PreviousFile | None, previous_dir: Path | None) -> _Found:
    """A file the pass wrote (or linked, when the previous version's inodes cannot be trusted); one whose
    bytes equal the previous version's file of its path is replaced by a link to that."""
    path = f"{folder}/{relative}"
    status = os.lstat(path)  # the entry's own inode, as the listing's; a symlink's size is its target's
    size = os.stat(path).st_size if stat.S_ISLNK(status.st_mode) else status.st_size
    if previous is None:
        return _Found(file_sha256(path), size, status.st_ino, False)
    assert previous_dir is not None  # rows come from the previous version
    published = f"{previous_dir}/{relative}"
    try:
        published_inode = os.lstat(published).st_ino
    except OSError:
        return _Found(file_sha256(path), size, status.st_ino, False)
    if published_inode == status.st_ino:
        return _Found(previous.sha256, size, published_inode, True)
    if size != previous.size or not same_bytes(published, path):
        return _Found(file_sha256(path), size, status.st_ino, False)
    link = f"{os.path.dirname(path)}/.{os.path.basename(path)}.link"
    try:
        os.link(published, link)
    except OSError:  # a filesystem without hard links: the fresh copy is just as good
        return _Found(previous.sha256, size, status.st_ino, False)
    os.replace(link, path)
    return _Found(previous.sha256, size, published_inode, True)


def _folder_identity(status: os.stat_result) -> dict[bytes, bytes]:
    """Where a file table's inodes are valid: its version folder's device and inode (a rename keeps both; a
    copied or restored tree has another folder, and its files other inodes)."""
    return {_FOLDER_KEY: f"{status.st_dev}:{status.st_ino}".encode()}


def _listing(folder: Path) -> tuple[pa.LargeStringArray, pa.Int64Array]:
    """The relative path of every dataset file under `folder`, as one Arrow array built in place (its
    bytes and offsets appended to two growing buffers: never a Python string per file, nor a second copy
    of the column as joining chunks would make), and each file's inode (from the listing: no stat)."""
    data = bytearray()
    ends = array("q", [0])
    inodes = array("q")
    pending = [("", str(folder))]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if not prefix and entry.name in DESCRIPTION:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file():
                    data += f"{prefix}{entry.name}".encode()
                    ends.append(len(data))
                    inodes.append(entry.inode())
    paths = pa.LargeStringArray.from_buffers(len(ends) - 1, pa.py_buffer(ends), pa.py_buffer(data))
    return paths, pa.Int64Array.from_buffers(pa.int64(), len(inodes), [None, pa.py_buffer(inodes)])


class _PreviousFile(NamedTuple):
    path: str
    sha256: str
    size: int
    inode: int | None


def _files_file_readable(version_dir: Path) -> bool:
    try:
        pq.ParquetFile(version_dir / FILES_FILE, pre_buffer=False).close()
    except (OSError, pa.ArrowException):
        return False
    return True


def _previous_files(previous_dir: Path | None, device: int) -> tuple[Iterator[_PreviousFile], bool]:
    """The previous version's files in path order (its file table is written sorted), and whether the inodes
    it recorded are still its files' and comparable with inodes of `device`: recorded for its folder as it
    is now, on that device."""
    if previous_dir is None:
        return iter(()), False
    parquet = pq.ParquetFile(previous_dir / FILES_FILE, pre_buffer=False)
    recorded = (parquet.schema_arrow.metadata or {}).get(_FOLDER_KEY)
    status = os.stat(previous_dir)
    trusted = ("inode" in parquet.schema_arrow.names and status.st_dev == device
               and recorded == _folder_identity(status)[_FOLDER_KEY])
    columns = ["path", "sha256", "size", "inode"] if trusted else ["path", "sha256", "size"]

    def rows() -> Iterator[_PreviousFile]:
        with parquet:
            for batch in parquet.iter_batches(batch_size=_DIGEST_BATCH, columns=columns):
                lists = [column.to_pylist() for column in batch.columns]
                if not trusted:
                    lists.append([None] * batch.num_rows)
                yield from map(_PreviousFile._make, zip(*lists))

    return rows(), trusted


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_pins(versions_dir: Path) -> set[str]:
    try:
        return set(orjson.loads((versions_dir / PINS_FILE).read_bytes()))
    except FileNotFoundError:
        return set()


def set_pinned(versions_dir: Path, version: str, pinned: bool) -> None:
    pins = read_pins(versions_dir)
    pins = pins | {version} if pinned else pins - {version}
    staging = versions_dir / f".{PINS_FILE}.{uuid.uuid4().hex[:8]}"
    staging.write_bytes(orjson.dumps(sorted(pins)))
    os.replace(staging, versions_dir / PINS_FILE)


def apply_retention(versions_dir: Path, stable_path: Path, keep: int, newest_first: list[str]) -> list[str]:
    """Remove the versions beyond the newest `keep`, except pinned ones and the current one; the removed ids."""
    protected = read_pins(versions_dir) | {current_version(stable_path)}
    removed = []
    for version in newest_first[keep:]:
        if version in protected:
            continue
        # Out of sight in one rename first, so a listing never sees half a version.
        retired = versions_dir / f".removing-{version}-{uuid.uuid4().hex[:8]}"
        os.rename(versions_dir / version, retired)
        remove_tree(retired)
        removed.append(version)
    return removed
