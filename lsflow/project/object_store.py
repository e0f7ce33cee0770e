"""Publishing a project's dataset versions to an object store (`s3://bucket/prefix`, any fsspec URL), so
that workers on other machines publish to one place.

The build itself stays local (a worker's own disk: the snapshot, store, reuse index and shards need a
filesystem with hard links and renames), and each new version is then published to the store:

    <url>/project-<id>/versions/<FORMAT>/<version>/...            the version's files: immutable
    <url>/project-<id>/datasets/<FORMAT>/_lsflow_current.json     the pointer: which version is the newest
    <url>/project-<id>/datasets/<FORMAT>/...                      a mirror of the newest version's files

An object store has no atomic rename of a prefix, so the switch is one object replaced by one PUT:

1. upload the version's files under its own prefix (a version id is its content's, so an upload that
   was interrupted, or made by another worker, holds the same bytes and is completed, never changed);
2. verify them: every file of the local version listed there with its size;
3. switch: PUT the pointer, conditionally (`If-Match` the pointer read before, `If-None-Match: *` for
   the first): a writer that switched meanwhile makes this one fail, instead of one silently undoing
   the other;
4. mirror: copy the version's objects into `datasets/<FORMAT>/` (server-side; objects already equal —
   size and ETag — are left alone), remove the ones the version does not have, then PUT the pointer
   again with `"mirrored": true`.

A reader that reads the pointer, then the files under its `prefix`, always reads one whole version: those
objects are never changed, and retention keeps the current version. A publish stopped before step 3
leaves the pointer (and the mirror) on the previous version. The mirror gives tools that want a fixed
prefix the newest dataset, but S3 has no multi-object atomicity: while step 4 runs it holds files of
two versions; it is whole when the pointer says `"mirrored": true` for the version its
`lsflow_version.json` names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from lsflow.core.pipeline.versions import MANIFEST_FILE
from lsflow.project.layout import ProjectLayout

POINTER_FILE = "_lsflow_current.json"
KEEP_VERSIONS = 10  # remote retention's default, as the local one
_UPLOAD_BATCH = 1000  # files handed to one fsspec `put` (it uploads them concurrently)


class ObjectStorePublishError(RuntimeError):
    """The version could not be published whole, or another writer switched the pointer meanwhile;
    what readers see is unchanged."""


def is_object_store(root: str | os.PathLike[str]) -> bool:
    """An output root that is an fsspec URL other than a local path (`s3://…`, `gs://…`, `memory://…`)."""
    text = str(root)
    return "://" in text and not text.startswith("file://")


@dataclass(frozen=True)
class ObjectStoreOutput:
    """Where versions are published: `url` (`s3://bucket/prefix`), with fsspec `storage_options`
    (credentials come from the environment, as s3fs reads them; never from here into logs)."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)

    def filesystem(self) -> Any:
        import fsspec  # imported here: only object-store outputs need it (the `s3` extra)

        protocol = self.url.split("://", 1)[0]
        return fsspec.filesystem(protocol, **self.storage_options)

    def project_path(self, project_id: str) -> str:
        """The project's prefix, as the filesystem names paths (no protocol)."""
        return f"{self.url.split('://', 1)[1].rstrip('/')}/project-{project_id}"


@dataclass(frozen=True)
class RemotePublish:
    format_name: str
    version: str
    uploaded: int  # files put (the others were there already, the same size)
    switched: bool  # the pointer now names this version (False: it already did)
    mirror_copied: int
    mirror_removed: int
    versions_removed: list[str]


def version_prefix(base: str, format_name: str, version: str) -> str:
    return f"{base}/versions/{format_name}/{version}"


def dataset_prefix(base: str, format_name: str) -> str:
    return f"{base}/datasets/{format_name}"


def read_pointer(fs: Any, base: str, format_name: str) -> tuple[dict | None, str | None]:
    """The pointer of the format's newest version, and its ETag (None, None: nothing published yet)."""
    path = f"{dataset_prefix(base, format_name)}/{POINTER_FILE}"
    try:
        info = fs.info(path, refresh=True)
        return orjson.loads(fs.cat_file(path)), info.get("ETag")
    except FileNotFoundError:
        return None, None


def publish_remote(layout: ProjectLayout, output: ObjectStoreOutput, format_name: str, version: str,
                   keep: int = KEEP_VERSIONS) -> RemotePublish:
    """Publish the local version `version` of the format to `output` and switch the pointer to it."""
    fs = output.filesystem()
    base = output.project_path(layout.project_id)
    local = layout.versions_dir(format_name) / version
    prefix = version_prefix(base, format_name, version)
    pointer, etag = read_pointer(fs, base, format_name)
    files = dict(_local_files(local))
    present = _sizes(fs, prefix)
    missing = [relative for relative, size in files.items() if present.get(relative) != size]
    # The manifest last: a version folder on the store is listed as a version once its manifest is there.
    data = [relative for relative in missing if relative != MANIFEST_FILE]
    batches = [data[start:start + _UPLOAD_BATCH] for start in range(0, len(data), _UPLOAD_BATCH)]
    if len(data) < len(missing):
        batches.append([MANIFEST_FILE])
    for batch in batches:
        fs.put([str(local / relative) for relative in batch], [f"{prefix}/{relative}" for relative in batch])
    uploaded = _sizes(fs, prefix)
    wrong = [relative for relative, size in files.items() if uploaded.get(relative) != size]
    if wrong:
        raise ObjectStorePublishError(f"{format_name} {version}: {len(wrong)} file(s) not uploaded whole to "
                                      f"{prefix}, e.g. {wrong[0]}; the pointer still names the previous version")
    manifest = orjson.loads((local / MANIFEST_FILE).read_bytes())
    document = {"version": version, "format": format_name, "prefix": f"versions/{format_name}/{version}/",
                "files": len(files), "bytes": sum(files.values()), "created_at": manifest.get("created_at"),
                "published_at": datetime.now(UTC).isoformat(),
                "previous_version": pointer.get("version") if pointer else None, "mirrored": False}
    switched = pointer is None or pointer.get("version") != version or not pointer.get("mirrored")
    copied = removed = 0
    if switched:
        if pointer is not None and pointer.get("version") == version:
            document["previous_version"] = pointer.get("previous_version")
        etag = _put_pointer(fs, base, format_name, document, etag)
        copied, removed = _mirror(fs, prefix, dataset_prefix(base, format_name), files)
        _put_pointer(fs, base, format_name, {**document, "mirrored": True}, etag)
    return RemotePublish(format_name, version, len(missing), switched, copied, removed,
                         _retain(fs, base, format_name, version, keep))


def list_remote_versions(output: ObjectStoreOutput, project_id: str, format_name: str) -> list[dict]:
    """The manifests of the format's versions on the store, newest first; `current` marks the pointer's."""
    fs = output.filesystem()
    base = output.project_path(project_id)
    pointer, _ = read_pointer(fs, base, format_name)
    found = []
    for version, manifest in _remote_manifests(fs, base, format_name):
        found.append({**manifest, "version": version,
                      "current": pointer is not None and pointer.get("version") == version})
    return sorted(found, key=lambda item: item.get("created_at") or "", reverse=True)


def _local_files(folder: Path) -> Iterator[tuple[str, int]]:
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            yield os.path.relpath(path, folder).replace(os.sep, "/"), os.stat(path).st_size


def _sizes(fs: Any, prefix: str) -> dict[str, int]:
    """The objects under `prefix` (relative) with their sizes."""
    return {relative: size for relative, size, _ in _listing(fs, prefix)}


def _listing(fs: Any, prefix: str) -> Iterator[tuple[str, int, str | None]]:
    """(relative key, size, ETag) of every object under `prefix`, listed afresh (no cached listing)."""
    fs.invalidate_cache(prefix)
    try:
        found = fs.find(prefix, detail=True)
    except FileNotFoundError:
        return
    for path, info in found.items():
        if info.get("type", "file") == "file" and path.startswith(prefix + "/"):
            yield path[len(prefix) + 1:], int(info.get("size") or 0), info.get("ETag")


def _put_pointer(fs: Any, base: str, format_name: str, document: dict, etag: str | None) -> str | None:
    """Replace the pointer in one conditional PUT; its new ETag. Fails if another writer replaced it
    since it was read (ETag `etag`, or absent when None)."""
    path = f"{dataset_prefix(base, format_name)}/{POINTER_FILE}"
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        fs.pipe_file(path, orjson.dumps(document, option=orjson.OPT_INDENT_2), **condition)
    except (FileExistsError, OSError) as error:
        if "pre-condition" in str(error) or isinstance(error, FileExistsError):
            raise ObjectStorePublishError(
                f"{format_name}: another writer switched {path} while version {document['version']} was being "
                "published; its version stands (one run per project partition at a time avoids this)") from error
        raise
    return fs.info(path, refresh=True).get("ETag")


def _mirror(fs: Any, source: str, mirror: str, files: dict[str, int]) -> tuple[int, int]:
    """`mirror` made to hold exactly the version's objects (the pointer aside); (copied, removed)."""
    version_objects = {relative: (size, etag) for relative, size, etag in _listing(fs, source)}
    mirrored = {relative: (size, etag) for relative, size, etag in _listing(fs, mirror) if relative != POINTER_FILE}
    # The description last: a mirror whose manifest names the new version has its data files already.
    order = sorted(files, key=lambda relative: (relative == MANIFEST_FILE, relative))
    copied = 0
    for relative in order:
        if mirrored.get(relative) != version_objects[relative]:
            fs.copy(f"{source}/{relative}", f"{mirror}/{relative}")
            copied += 1
    stale = [f"{mirror}/{relative}" for relative in mirrored if relative not in files]
    if stale:
        fs.rm(stale)
    return copied, len(stale)


def _remote_manifests(fs: Any, base: str, format_name: str) -> Iterator[tuple[str, dict]]:
    root = f"{base}/versions/{format_name}"
    fs.invalidate_cache(root)
    try:
        folders = fs.ls(root, detail=False)
    except FileNotFoundError:
        return
    for folder in folders:
        version = folder.rstrip("/").rsplit("/", 1)[-1]
        try:
            yield version, orjson.loads(fs.cat_file(f"{folder.rstrip('/')}/{MANIFEST_FILE}"))
        except FileNotFoundError:  # an upload under way or stopped: not a version yet
            continue


def _retain(fs: Any, base: str, format_name: str, current: str, keep: int) -> list[str]:
    """Remove the store's versions beyond the newest `keep` (by creation), never the current one."""
    versions = sorted(_remote_manifests(fs, base, format_name), key=lambda item: item[1].get("created_at") or "",
                      reverse=True)
    removed = []
    for version, _ in versions[keep:]:
        if version != current:
            fs.rm(version_prefix(base, format_name, version), recursive=True)
            removed.append(version)
    return removed
