"""Publishing a version: every file's recorded digest is its bytes', equal files become links to the previous
version's, and the inodes a version recorded are trusted only where they are still its files'."""

import hashlib
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq

from lsflow.core.pipeline.versions import FILES_FILE, publish_version, read_file_digests


def _stage(root, files):
    staging = root / ".staging"
    for relative, content in files.items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_bytes(content)
    return staging


def _sha(content):
    return hashlib.sha256(content).hexdigest()


def _publish(root, files):
    return publish_version(_stage(root, files), root / "versions", root / "dataset")


def test_equal_files_become_links_and_every_digest_is_its_files(tmp_path):
    first = _publish(tmp_path, {"labels/a.txt": b"one", "labels/b.txt": b"two", "gone.txt": b"old"})
    second = _publish(tmp_path, {"labels/a.txt": b"one", "labels/b.txt": b"TWO", "new.txt": b"new"})
    assert (second.files.files_written, second.files.files_kept, second.files.files_removed) == (2, 1, 1)
    assert (second.path / "labels/a.txt").stat().st_ino == (first.path / "labels/a.txt").stat().st_ino
    digests = read_file_digests(second.path)
    assert {path: digest.sha256 for path, digest in digests.items()} == {
        "labels/a.txt": _sha(b"one"), "labels/b.txt": _sha(b"TWO"), "new.txt": _sha(b"new")}
    recorded = pq.read_table(second.path / FILES_FILE).to_pylist()
    assert {row["path"]: row["inode"] for row in recorded} == {
        row["path"]: (second.path / row["path"]).stat().st_ino for row in recorded}


def test_a_file_linked_from_the_previous_version_keeps_its_digest(tmp_path):
    first = _publish(tmp_path, {"a.txt": b"one", "b.txt": b"two"})
    staging = _stage(tmp_path, {"b.txt": b"two"})
    os.link(first.path / "a.txt", staging / "a.txt")  # as a pass links an unchanged task's file
    second = publish_version(staging, tmp_path / "versions", tmp_path / "dataset")
    assert second.version_id == first.version_id and not second.new
    assert second.files.files_kept == 2


def test_inodes_recorded_by_a_copied_version_are_not_trusted(tmp_path):
    """A project tree copied elsewhere (a backup restored, another disk): its versions' files have other
    inodes than they recorded, and a new file may have one of the recorded numbers."""
    original = tmp_path / "original"
    _publish(original, {"a.txt": b"one"})
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, symlinks=True)
    staging = _stage(copy, {"a.txt": b"changed"})
    previous = (copy / "dataset").resolve()
    table = pq.read_table(previous / FILES_FILE)
    fresh_inode = (staging / "a.txt").stat().st_ino
    stale = table.set_column(table.schema.get_field_index("inode"), "inode", pa.array([fresh_inode], pa.int64()))
    pq.write_table(stale, previous / FILES_FILE)  # as if the original's file had had the fresh file's number
    published = publish_version(staging, copy / "versions", copy / "dataset")
    assert read_file_digests(published.path)["a.txt"].sha256 == _sha(b"changed")
    assert published.files.files_written == 1


def test_a_previous_version_without_its_file_table_still_lends_its_equal_files(tmp_path):
    first = _publish(tmp_path, {"a.txt": b"one", "b.txt": b"two"})
    (first.path / FILES_FILE).unlink()
    second = _publish(tmp_path, {"a.txt": b"one", "b.txt": b"TWO"})
    assert (second.path / "a.txt").stat().st_ino == (first.path / "a.txt").stat().st_ino
    assert (second.files.files_written, second.files.files_kept) == (1, 1)
    assert {p: d.sha256 for p, d in read_file_digests(second.path).items()} == {
        "a.txt": _sha(b"one"), "b.txt": _sha(b"TWO")}
