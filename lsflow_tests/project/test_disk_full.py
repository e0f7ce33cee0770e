"""A build that fills the disk of the output root: a clear error naming the project and the root, the
published version untouched byte for byte, and the space it staged given back.

The output root is a small tmpfs mounted for the test (root only; skipped, saying why, where mounting
is not allowed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.lock import OutOfSpace
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.export_file import ExportFileSource
from lsflow_tests.project.recovery import (
    FORMATS,
    PROJECT_ID,
    Project,
    check_versions,
    leftovers,
    media_resolver,
    run_pipeline,
)

SIZE_KIB = 3072  # version 1 takes about 0.9 MiB, the next build's snapshot and store 0.9, its datasets 3


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the output root needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_KIB}k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def free_bytes(path: Path) -> int:
    status = os.statvfs(path)
    return status.f_bavail * status.f_frsize


def tree(path: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every link's target under `path`, by relative path."""
    found: dict[str, bytes | str] = {}
    for entry in sorted(path.rglob("*")):
        relative = entry.relative_to(path).as_posix()
        if entry.is_symlink():
            found[relative] = os.readlink(entry)
        elif entry.is_file():
            found[relative] = entry.read_bytes()
    return found


def test_a_build_that_fills_the_disk_fails_clearly_and_leaves_the_last_version_whole(small_disk, tmp_path):
    project = Project.create(tmp_path, 30, seed=7)
    cache = tmp_path / "media-cache"
    run_pipeline(project.projects_dir, small_disk, cache)
    layout = ProjectLayout(small_disk, PROJECT_ID)
    first = check_versions(layout, FORMATS)
    published = {name: tree(layout.versions_dir(name)) for name in FORMATS}
    links = {name: os.readlink(layout.dataset_dir(name)) for name in FORMATS}

    # 300 more tasks: their snapshot and store fit, the datasets (a file per task and format, images) do not.
    while len(project.tasks) < 330:
        project.change("add")
    take_project_snapshot(ExportFileSource(project.projects_dir), layout)
    update_store(layout)
    free_before = free_bytes(small_disk)
    with pytest.raises(OutOfSpace) as raised, media_resolver(cache) as media:
        build_datasets(layout, FORMATS, media, DatasetOptions(keep_versions=2))

    message = str(raised.value)
    assert f"project {PROJECT_ID}: no space left on the disk of {small_disk}" in message, message
    assert "published datasets and versions are whole" in message and "run again" in message
    assert raised.value.errno == 28
    # Version 1 of every format and its link, byte for byte; nothing staged stays.
    assert check_versions(layout, FORMATS) == first
    assert {name: tree(layout.versions_dir(name)) for name in FORMATS} == published
    assert {name: os.readlink(layout.dataset_dir(name)) for name in FORMATS} == links
    assert not leftovers(small_disk)
    assert free_bytes(small_disk) == free_before

    # With room again (the store back to version 1's tasks), the next build goes through.
    del project.tasks[40:]
    project.save()
    run_pipeline(project.projects_dir, small_disk, cache)
    assert check_versions(layout, FORMATS, keep=2)
