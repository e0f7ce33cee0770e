"""One writer per project at a time: two `lsflow export`s into one `--path`, or two Dagster runs of one
partition, take turns instead of interleaving their snapshots, stores and datasets.

The lock is an advisory `flock` on `project-<id>/.lock`, released by the kernel when its holder exits,
even by SIGKILL. A waiter gives up after `timeout` seconds (`LSFLOW_LOCK_TIMEOUT`, default an hour)
with a message naming the holder. Holding it, a step first removes what a killed run left behind
(staging folders, half-switched links). A step that runs out of disk space fails with `OutOfSpace`,
naming the project and the output root; what it staged is gone, what was published is unchanged.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from lsflow.core.pipeline.publish import remove_leftovers
from lsflow.project.layout import ProjectLayout

LOCK_TIMEOUT = 3600.0  # seconds a step waits for another run of the same project
LOCK_TIMEOUT_ENV = "LSFLOW_LOCK_TIMEOUT"
_POLL = 0.2


class ProjectBusy(RuntimeError):
    """Another run holds the project and did not finish within the wait."""


class OutOfSpace(OSError):
    """The disk of the output root filled up during a step."""


@contextmanager
def project_lock(layout: ProjectLayout, timeout: float | None = None, shared: bool = False) -> Iterator[None]:
    """The project's lock; `shared`: held beside other shared holders (shard builds, each writing only
    its own shard), never beside an exclusive one, and without the exclusive holder's sweep of leftovers."""
    if timeout is None:
        timeout = float(os.environ.get(LOCK_TIMEOUT_ENV) or LOCK_TIMEOUT)
    layout.project_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = layout.lock_file.read_text(encoding="utf-8", errors="replace").strip() or "unknown"
                    raise ProjectBusy(
                        f"project {layout.project_id} in {layout.root} is being written by another run ({holder}); "
                        f"waited {timeout:.0f} s. Wait for it to finish, or stop it") from None
                time.sleep(_POLL)
        if not shared:  # the file names the exclusive holder, for whoever waits on it
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()} since "
                                 f"{datetime.now(UTC).isoformat(timespec='seconds')}: {' '.join(sys.argv[:3])}".encode())
            clear_leftovers(layout)
        try:
            yield
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT) or isinstance(error, OutOfSpace):
                raise
            raise OutOfSpace(error.errno, f"project {layout.project_id}: no space left on the disk of {layout.root} "
                             f"({_free(layout.root)} free): {error.strerror or error}. What the step staged is "
                             "removed; the published datasets and versions are whole. Free some space (`lsflow "
                             "versions prune` removes old versions) and run again") from error
    finally:
        os.close(descriptor)  # releases the lock


def _free(path: Path) -> str:
    try:
        status = os.statvfs(path)
    except OSError:
        return "unknown"
    return f"{status.f_bavail * status.f_frsize / 2**20:.1f} MiB"


def clear_leftovers(layout: ProjectLayout) -> None:
    """What a run killed mid-step left: staging folders, temporary links, versions half removed.
    Only called with the lock held, so nothing of a live run is touched. Only lsflow's own temporary
    names are removed: with `lsflow export --path`, the datasets folder is the user's."""
    def staging(name: str) -> bool:  # a step's private folder, or a published one moved aside to be removed
        return name.startswith((".staging-", ".retired-"))

    places = [(layout.project_dir, staging), (layout.reuse_dir, staging),
              (layout.datasets_dir, lambda name: staging(name) or (name.startswith(".") and ".link-" in name))]
    if layout.versions_root.is_dir():
        places += [(folder, lambda name: name.startswith((".removing-", ".pins.json.")))
                   for folder in layout.versions_root.iterdir()]
    for folder, leftover in places:
        remove_leftovers(folder, leftover)
