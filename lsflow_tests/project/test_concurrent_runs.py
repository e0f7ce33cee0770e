"""Two runs of one project at once take turns on the project's lock: two `lsflow export`s into one
`--path` (a real Label Studio), two Dagster runs of one partition. The second waits and then goes on,
or, given a short wait (`LSFLOW_LOCK_TIMEOUT`), fails naming the run that holds the project; the
output is never a mix of the two: it equals one run's, and every file is the one its version's
manifest names."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lsflow.project.layout import ProjectLayout
from lsflow_tests.paths import SAMPLE_MEDIA
from lsflow_tests.project.recovery import (
    FORMATS,
    PROJECT_ID,
    Project,
    assert_same_output,
    check_versions,
    leftovers,
    run_pipeline,
)

TOOLS = Path(sys.executable).parent
LIVE_FORMATS = ["COCO", "YOLO", "YOLO_WITH_IMAGES"]


def both(commands: list[list[str]], env: dict[str, str], cwd: Path | None = None,
         stagger: float = 0.0) -> list[subprocess.CompletedProcess]:
    processes = []
    for command in commands:
        processes.append(subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
        time.sleep(stagger)
    results = []
    for process, command in zip(processes, commands):
        out, err = process.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return results


def live_env(label_studio, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.legacy_token,
           "LSFLOW_MEDIA_CACHE": str(tmp_path / "media-cache"), **extra}
    for name in ("DEBUG", "LOG_LEVEL"):
        env.pop(name, None)
    if "LSFLOW_LOCK_TIMEOUT" not in extra:
        env.pop("LSFLOW_LOCK_TIMEOUT", None)
    return env


def export(project_id: int, path: Path) -> list[str]:
    return [str(TOOLS / "lsflow"), "export", str(project_id), ",".join(LIVE_FORMATS), "--path", str(path)]


def test_two_exports_into_one_path_take_turns_and_equal_a_single_export(label_studio, image_project, tmp_path):
    env = live_env(label_studio, tmp_path)
    shared = tmp_path / "shared"
    first, second = both([export(image_project.id, shared)] * 2, env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    assert all(f"project {image_project.id}: snapshot " in run.stdout for run in (first, second))
    single = subprocess.run(export(image_project.id, tmp_path / "single"), env=env, capture_output=True, text=True,
                            timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    layout = ProjectLayout.for_export_path(shared, str(image_project.id))
    reference = ProjectLayout.for_export_path(tmp_path / "single", str(image_project.id))
    assert_same_output(layout, reference, LIVE_FORMATS)
    # Never interleaved: one version per format (the second run's content is the first's), each file its own.
    assert check_versions(layout, LIVE_FORMATS) == check_versions(reference, LIVE_FORMATS)
    assert all(len(list(layout.versions_dir(name).iterdir())) == 1 for name in LIVE_FORMATS)
    assert not leftovers(shared)


HOLD = """
import sys, time
from pathlib import Path
from lsflow.project.layout import ProjectLayout
from lsflow.project.lock import project_lock
with project_lock(ProjectLayout.for_export_path(Path(sys.argv[1]), sys.argv[2])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_an_export_that_waits_too_long_fails_naming_the_holder_and_removes_nothing(label_studio, image_project,
                                                                                   tmp_path):
    shared = tmp_path / "shared"
    env = live_env(label_studio, tmp_path, LSFLOW_LOCK_TIMEOUT="0.5")
    done = subprocess.run(export(image_project.id, shared), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    layout = ProjectLayout.for_export_path(shared, str(image_project.id))
    before = check_versions(layout, LIVE_FORMATS)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(shared), str(image_project.id)], stdout=subprocess.PIPE,
                              text=True)  # another run, in the middle of a step
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        hasty = subprocess.run(export(image_project.id, shared), env=env, capture_output=True, text=True, timeout=300)
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert hasty.returncode == 1
    assert f"Error: project {image_project.id} in {shared / '.lsflow'} is being written by another run " \
           f"(pid {holder.pid} " in hasty.stderr, hasty.stderr
    assert "waited 0 s" in hasty.stderr and "Traceback" not in hasty.stderr and waited < 30
    # Nothing of the other run's was removed: the export in PATH is whole and unchanged.
    assert check_versions(layout, LIVE_FORMATS) == before
    assert (shared / "COCO" / "result.json").is_file() and not leftovers(shared)


def test_two_dagster_runs_of_one_partition_take_turns_and_equal_one_run(tmp_path):
    project = Project.create(tmp_path, 40, seed=3)
    root = tmp_path / "out"
    (tmp_path / "home").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "LSFLOW_SOURCE": "files",
           "LSFLOW_PROJECTS_DIR": str(project.projects_dir), "LSFLOW_OUTPUT_ROOT": str(root),
           "LSFLOW_MEDIA_ROOT": str(SAMPLE_MEDIA), "LSFLOW_MEDIA_CACHE": str(tmp_path / "media-cache")}
    env.pop("LSFLOW_LOCK_TIMEOUT", None)
    added = subprocess.run([str(TOOLS / "lsflow"), "partitions", "add", PROJECT_ID], env=env, capture_output=True,
                           text=True, timeout=300)
    assert added.returncode == 0, added.stderr
    selection = ",".join(["label_studio_snapshot", "normalized_tasks"] + [f"dataset_{n.lower()}" for n in FORMATS])
    materialize = [str(TOOLS / "dagster"), "asset", "materialize", "-m", "lsflow.definitions", "--select", selection,
                   "--partition", PROJECT_ID, "--config-json", '{"execution": {"config": {"in_process": {}}}}']
    runs = both([materialize] * 2, env, cwd=tmp_path)
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    run_pipeline(project.projects_dir, tmp_path / "reference", tmp_path / "reference-cache")
    layout, reference = ProjectLayout(root, PROJECT_ID), ProjectLayout(tmp_path / "reference", PROJECT_ID)
    assert_same_output(layout, reference, FORMATS)
    assert check_versions(layout, FORMATS) == check_versions(reference, FORMATS)
    assert all(len(list(layout.versions_dir(name).iterdir())) == 1 for name in FORMATS)
    assert not leftovers(root)
