"""Two runs of one project take turns; a killed run's leftovers are cleared by the next."""

import subprocess
import sys
import time

import pytest

from lsflow.project.layout import ProjectLayout
from lsflow.project.lock import ProjectBusy, project_lock

HOLD = """
import sys, time
from pathlib import Path
from lsflow.project.layout import ProjectLayout
from lsflow.project.lock import project_lock
with project_lock(ProjectLayout(Path(sys.argv[1]), "7")):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold(root, seconds):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_waits_for_the_first_then_goes_on(tmp_path):
    holder = hold(tmp_path, 1.5)
    started = time.monotonic()
    with project_lock(ProjectLayout(tmp_path, "7"), timeout=30):
        waited = time.monotonic() - started
    holder.wait()
    assert waited >= 1.0


def test_a_run_that_waits_too_long_fails_naming_the_holder(tmp_path):
    holder = hold(tmp_path, 30)
    try:
        with pytest.raises(ProjectBusy, match=rf"project 7 .* another run \(pid {holder.pid} "), \
                project_lock(ProjectLayout(tmp_path, "7"), timeout=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()
    with project_lock(ProjectLayout(tmp_path, "7"), timeout=5):  # a killed holder's lock is released
        pass


def test_the_next_run_clears_what_a_killed_one_left(tmp_path):
    layout = ProjectLayout.for_export_path(tmp_path / "out", "7")
    leftovers = [layout.project_dir / ".staging-store", layout.project_dir / ".retired-store-1a2b",
                 layout.datasets_dir / ".staging-0a1b2c", layout.reuse_dir / ".staging-COCO-77",
                 layout.versions_dir("COCO") / ".removing-abc-1"]
    for folder in leftovers:
        (folder / "sub").mkdir(parents=True)
    (layout.datasets_dir / ".COCO.link-1234").symlink_to("nowhere")
    kept = [layout.datasets_dir / ".my-own-dotfile", layout.datasets_dir / "notes.txt"]
    for path in kept:
        path.write_text("the user's")
    with project_lock(layout):
        pass
    assert not any(path.exists() for path in leftovers)
    assert not (layout.datasets_dir / ".COCO.link-1234").is_symlink()
    assert all(path.read_text() == "the user's" for path in kept) and layout.project_dir.is_dir()
