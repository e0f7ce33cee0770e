"""One writer per project at a time: two `lsflow export`s into one `--path`, or two Dagster runs of one
partition, take turns instead of interleaving their snapshots, stores and datasets.

The lock is an advisory `flock` on `project-<id>/.lock`, released by the kernel when its holder exits,
even by SIGKILL. A waiter gives up after `timeout` seconds with a message naming the holder. Holding
it, a step first removes what a killed run left behind (staging folders, half-switched links).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from lsflow.project.layout import ProjectLayout

LOCK_TIMEOUT = 3600.0  # seconds a step waits for another run of the same project
_POLL = 0.2


class ProjectBusy(RuntimeError):
    """Another run holds the project and did not finish within the wait."""


@contextmanager
def project_lock(layout: ProjectLayout, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    layout.project_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = layout.lock_file.read_text(encoding="utf-8", errors="replace").strip() or "unknown"
                    raise ProjectBusy(
                        f"project {layout.project_id} in {layout.root} is being written by another run ({holder}); "
                        f"waited {timeout:.0f} s. Wait for it to finish, or stop it") from None
                time.sleep(_POLL)
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()} since "
                             f"{datetime.now(UTC).isoformat(timespec='seconds')}: {' '.join(sys.argv[:3])}".encode())
        clear_leftovers(layout)
        yield
    finally:
        os.close(descriptor)  # releases the lock


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
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if not leftover(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
