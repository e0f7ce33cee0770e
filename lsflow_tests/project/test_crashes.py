"""A run SIGKILLed anywhere — while the snapshot is taken, the store upserted, the datasets built, a
version published or old ones removed — leaves every published thing whole, and the next run finishes
with exactly what an uninterrupted run of the same project state gives.

Each trial moves a recorded project on (a few tasks edited, deleted or added, or most of them edited:
a build with forked workers), starts a run in a child process of its own process group and kills the
group with SIGKILL: every other trial after a delay drawn across a measured run's duration, the others
at the k-th rename, replace, symlink or folder removal of the run (before or after it), so the brief
switches of publishing and retention are hit as often as the long writes. Then, before any rerun:
the store, if there is one, reads whole and every visible version holds exactly the files its manifest
names. Then a rerun finishes; its datasets and store equal a reference run's in a fresh root, at most
`keep_versions` versions are kept, and no temporary name is left.

`LSFLOW_CRASH_TRIALS` sets the number of trials (default 30, about 75 s here); `LSFLOW_CRASH_SEED` the seed.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from lsflow.project.layout import ProjectLayout
from lsflow_tests.paths import SAMPLE_MEDIA
from lsflow_tests.project.recovery import (
    FORMATS,
    PROJECT_ID,
    Project,
    assert_same_output,
    check_versions,
    leftovers,
    read_store,
    run_pipeline,
)

TRIALS = int(os.environ.get("LSFLOW_CRASH_TRIALS") or 30)
SEED = int(os.environ.get("LSFLOW_CRASH_SEED") or 19)
TASKS = 300  # above the 256 a pass writes before it forks workers: a build of most tasks uses them
KEEP = 2
KINDS = ("edit", "delete", "add", "most")
WORKERS = 2

_FORK = multiprocessing.get_context("fork")


def _child(projects_dir: Path, root: Path, cache: Path, events: Path, kill_at: tuple[str, int] | None,
           after: bool) -> None:
    """The run, in its own process group. Notes each stage in `events` as it starts and, at the end, how
    many switches (rename, replace, symlink, rmtree) this process made in each; with `kill_at` (stage,
    k), SIGKILLs its group at the k-th switch of that stage, before or `after` it."""
    os.setsid()
    import lsflow.core.pipeline.build as build_module
    import lsflow.project.datasets as datasets_module
    import lsflow.project.snapshot as snapshot_module
    import lsflow.project.store as store_module
    import lsflow_tests.project.recovery as recovery

    log = open(events, "a", buffering=1)  # line-buffered: what was written survives the kill
    main, stage, counts = os.getpid(), "start", Counter[str]()

    def note(text: str) -> None:
        log.write(f"{time.monotonic():.6f} {text}\n")

    def kill(when: str, name: str) -> None:
        note(f"kill {when} {name}")
        os.killpg(0, signal.SIGKILL)

    def counted(name, operation):
        def switch(*args, **kwargs):
            if os.getpid() != main:  # a forked worker
                return operation(*args, **kwargs)
            counts[stage] += 1
            due = kill_at == (stage, counts[stage])
            if due and not after:
                kill("before", name)
            result = operation(*args, **kwargs)
            if due:
                kill("after", name)
            return result
        return switch

    for module, name in ((os, "rename"), (os, "replace"), (os, "symlink"), (shutil, "rmtree")):
        setattr(module, name, counted(name, getattr(module, name)))

    def staged(name, function):
        def wrapper(*args, **kwargs):
            nonlocal stage
            stage = name
            note(f"stage {name}")
            return function(*args, **kwargs)
        return wrapper

    recovery.take_project_snapshot = staged("snapshot", snapshot_module.take_project_snapshot)
    recovery.update_store = staged("store", store_module.update_store)
    recovery.build_datasets = staged("build", datasets_module.build_datasets)
    build_module.publish_version = staged("publish", build_module.publish_version)
    datasets_module.retain = staged("retention", datasets_module.retain)
    run_pipeline(projects_dir, root, cache, workers=WORKERS, keep_versions=KEEP)
    note(f"done {json.dumps(counts)}")
    log.close()


def run_child(projects_dir: Path, root: Path, cache: Path, events: Path, kill_at: tuple[str, int] | None = None,
              after: bool = False, delay: float | None = None) -> tuple[int | None, float]:
    """Start the run; SIGKILL its process group after `delay` s if given. (exit code, seconds)."""
    events.unlink(missing_ok=True)
    started = time.monotonic()
    child = _FORK.Process(target=_child, args=(projects_dir, root, cache, events, kill_at, after))
    child.start()
    if delay is not None:
        child.join(delay)
        if child.exitcode is None:
            for kill in (os.kill, os.killpg):  # the run, then what it forked (its group, once it has one)
                with contextlib.suppress(ProcessLookupError):
                    kill(child.pid, signal.SIGKILL)
    child.join(120)
    assert child.exitcode is not None, "the run hangs"
    return child.exitcode, time.monotonic() - started


def where_killed(events: Path, killed_at: float | None = None) -> str:
    """The stage the run was in when it died (from its own notes)."""
    lines = events.read_text().splitlines() if events.exists() else []
    last = "start"
    for line in lines:
        when, _, text = line.partition(" ")
        if killed_at is not None and float(when) > killed_at:
            break
        if text.startswith("stage "):
            last = text.split()[1]
        elif text.startswith("kill "):
            return f"{last} ({text.split()[1]} {text.split()[2]})"
        elif text.startswith("done"):
            return "finished"
    return last


def switches_of(events: Path) -> dict[str, int]:
    """Switches per stage of a finished run."""
    return json.loads(next(line for line in events.read_text().splitlines() if " done " in line).split(" ", 2)[2])


def assert_whole(layout: ProjectLayout, formats: list[str], versions_expected: bool) -> None:
    """Right after a kill: what is published reads whole (the store, every version, the links)."""
    if layout.store_dir.exists():
        read_store(layout)
    if versions_expected:
        check_versions(layout, formats)


def test_a_run_killed_anywhere_is_finished_by_the_next_with_an_uninterrupted_runs_output(tmp_path):
    rng = random.Random(SEED)
    project = Project.create(tmp_path, TASKS, SEED)
    root, cache, events = tmp_path / "out", tmp_path / "media-cache", tmp_path / "events.txt"
    layout = ProjectLayout(root, PROJECT_ID)

    for kind in ("first", "add", "edit"):  # version 1 (full), 2, then 3: an incremental run with retention, measured
        if kind != "first":
            project.change(kind)
        exit_code, duration = run_child(project.projects_dir, root, cache, events)
        assert exit_code == 0
    switches = switches_of(events)
    assert set(switches) == {"snapshot", "store", "build", "publish", "retention"}, switches

    stages: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    started = time.monotonic()
    for trial in range(TRIALS):
        kind = project.change(KINDS[trial % len(KINDS)])
        mark = time.monotonic()
        versions_before = {name: len(list(layout.versions_dir(name).iterdir())) for name in FORMATS}
        if trial % 2 == 0:
            delay = rng.uniform(0.0, 1.1 * duration)
            kill_time = time.monotonic() + delay
            exit_code, _ = run_child(project.projects_dir, root, cache, events, delay=delay)
            stage = where_killed(events, kill_time)
        else:
            exit_code, _ = run_child(project.projects_dir, root, cache, events,
                                     # The stages in turn, not drawn: each is hit, however few its switches.
                                     kill_at=(chosen := sorted(switches)[trial // 2 % len(switches)],
                                              rng.randint(1, switches[chosen])),
                                     after=rng.random() < 0.5)
            stage = where_killed(events)
        killed = exit_code == -signal.SIGKILL
        assert killed or exit_code == 0, f"trial {trial}: the run failed by itself ({exit_code})"
        stages[stage if killed else "finished"] += 1
        context = f"trial {trial} ({kind}, killed in {stage})" if killed else f"trial {trial} ({kind})"

        assert_whole(layout, FORMATS, versions_expected=all(versions_before.values()))

        phases["killed run"] += time.monotonic() - mark
        mark = time.monotonic()
        run_pipeline(project.projects_dir, root, cache, workers=WORKERS, keep_versions=KEEP)  # the rerun
        phases["rerun"] += time.monotonic() - mark
        mark = time.monotonic()
        reference_root = tmp_path / "reference"
        run_pipeline(project.projects_dir, reference_root, tmp_path / "reference-cache", workers=1)
        reference = ProjectLayout(reference_root, PROJECT_ID)
        try:
            assert_same_output(layout, reference, FORMATS)
            assert check_versions(layout, FORMATS, keep=KEEP) == check_versions(reference, FORMATS), context
        except AssertionError as error:
            raise AssertionError(f"{context}: {error}") from None
        assert not leftovers(root), f"{context}: {leftovers(root)}"
        trash = layout.reuse_dir / ".trash"
        assert not trash.exists() or len(list(trash.iterdir())) <= len(FORMATS), context
        shutil.rmtree(reference_root)
        phases["reference and checks"] += time.monotonic() - mark

    elapsed = time.monotonic() - started
    print(f"\n{TRIALS} trials in {elapsed:.1f} s (a run: {duration:.2f} s, switches by stage: {switches}); "
          f"killed in: {dict(sorted(stages.items()))}; "
          f"time in: {({phase: round(seconds, 1) for phase, seconds in phases.items()})}")
    killed = TRIALS - stages["finished"]
    assert killed >= TRIALS * 2 // 3, f"only {killed} of {TRIALS} runs were killed: {stages}"
    reached = {stage.split()[0] for stage in stages}
    assert {"snapshot", "store", "build", "publish", "retention"} <= reached or TRIALS < 30, stages


@pytest.fixture(autouse=True)
def _no_stray_children():
    yield
    for child in _FORK.active_children():  # a failed assertion mid-trial
        child.kill()


# ---- Real processes: `lsflow export` against a real Label Studio, and a Dagster run ----

LIVE_TRIALS = int(os.environ.get("LSFLOW_CRASH_LIVE_TRIALS") or 5)
LIVE_FORMATS = ["COCO", "YOLO", "YOLO_WITH_IMAGES"]
TOOLS = Path(sys.executable).parent


def start(command: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    """A process in a session (and process group) of its own, so a kill takes what it forked too."""
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_after(process: subprocess.Popen, delay: float) -> bool:
    """SIGKILL the process group after `delay` s; whether it was still running then."""
    try:
        process.wait(delay)
        killed = False
    except subprocess.TimeoutExpired:
        killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    return killed


def kill_after_line(process: subprocess.Popen, marker: str, delay: float) -> bool:
    """SIGKILL the process group `delay` s after it logs a line holding `marker`; whether it was still running."""
    seen = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if marker in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen.wait(300)
    killed = False
    try:
        process.wait(delay)
    except subprocess.TimeoutExpired:
        killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(60)
    reader.join(60)
    return killed


def finish(command: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.monotonic()
    run = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return time.monotonic() - started


def test_lsflow_export_killed_at_random_points_then_rerun_equals_an_uninterrupted_export(label_studio, tmp_path):
    from lsflow_tests.live_projects import _rectangle, build_image_project

    project = build_image_project(label_studio, "lsflow crash project")
    rng = random.Random(SEED)
    env = {**os.environ, "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.legacy_token}
    for name in ("DEBUG", "LOG_LEVEL", "LSFLOW_LOCK_TIMEOUT"):
        env.pop(name, None)

    def export(path: Path) -> list[str]:
        env["LSFLOW_MEDIA_CACHE"] = str(tmp_path / "media-cache" / path.name)  # each export downloads its media
        return [str(TOOLS / "lsflow"), "export", str(project.id), ",".join(LIVE_FORMATS), "--path", str(path),
                "--keep-versions", str(KEEP)]

    duration = finish(export(tmp_path / "measured"), env)
    killed = 0
    for trial in range(LIVE_TRIALS):
        # Every other trial kills a first export (snapshot download, store, build, first publish); the
        # others an incremental one after a new annotation (upsert, reuse, publish, retention).
        if trial % 2:
            task = rng.choice(project.task_ids)
            label_studio.annotate(task, [_rectangle(f"crash{trial}", "Car", (rng.uniform(0, 50), 10, 20, 20),
                                                    project.sizes[task])])
            path = tmp_path / "incremental"
            if not path.exists():
                finish(export(path), env)
        else:
            path = tmp_path / f"first-{trial}"
        killed += kill_after(start(export(path), env), rng.uniform(0.2, 1.1) * duration)
        layout = ProjectLayout.for_export_path(path, str(project.id))
        assert_whole(layout, LIVE_FORMATS, versions_expected=trial % 2 == 1)
        finish(export(path), env)
        finish(export(tmp_path / "reference"), env)
        reference = ProjectLayout.for_export_path(tmp_path / "reference", str(project.id))
        assert_same_output(layout, reference, LIVE_FORMATS)
        assert check_versions(layout, LIVE_FORMATS, keep=KEEP) == check_versions(reference, LIVE_FORMATS)
        assert not leftovers(path), leftovers(path)
        shutil.rmtree(tmp_path / "reference")
    print(f"\nlsflow export: {killed} of {LIVE_TRIALS} runs killed (an export: {duration:.1f} s)")
    assert killed >= LIVE_TRIALS // 2


# Dagster's start costs ~6 s a run here, so the CI loop is short; LSFLOW_CRASH_DAGSTER_TRIALS=20 for a long one.
DAGSTER_TRIALS = int(os.environ.get("LSFLOW_CRASH_DAGSTER_TRIALS") or 3)
DAGSTER_SELECTION = ",".join(["label_studio_snapshot", "normalized_tasks"] + [f"dataset_{name.lower()}" for name in FORMATS])
DAGSTER_STEPS = ("label_studio_snapshot", "normalized_tasks", "datasets", "datasets")
IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'  # one process a run: its steps die with it


def test_a_dagster_run_killed_at_random_points_then_rerun_equals_an_uninterrupted_run(tmp_path):
    rng = random.Random(SEED)
    project = Project.create(tmp_path, 40, SEED)
    root = tmp_path / "out"
    (tmp_path / "home").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "LSFLOW_SOURCE": "files",
           "LSFLOW_PROJECTS_DIR": str(project.projects_dir), "LSFLOW_OUTPUT_ROOT": str(root),
           "LSFLOW_MEDIA_ROOT": str(SAMPLE_MEDIA), "LSFLOW_MEDIA_CACHE": str(tmp_path / "media-cache"),
           "LSFLOW_KEEP_VERSIONS": str(KEEP)}
    env.pop("LSFLOW_LOCK_TIMEOUT", None)
    finish([str(TOOLS / "lsflow"), "partitions", "add", PROJECT_ID], env)
    materialize = [str(TOOLS / "dagster"), "asset", "materialize", "-m", "lsflow.definitions", "--select",
                   DAGSTER_SELECTION, "--partition", PROJECT_ID, "--config-json", IN_PROCESS]
    duration = finish(materialize, env, cwd=tmp_path)
    layout = ProjectLayout(root, PROJECT_ID)
    formats = sorted(p.name for p in layout.datasets_dir.iterdir() if not p.name.startswith("."))
    assert formats == sorted(FORMATS)
    stages: Counter[str] = Counter()
    for trial in range(DAGSTER_TRIALS):
        project.change(KINDS[trial % 3])
        # Dagster's own start takes most of a run: the kill comes a random time after a random step started.
        step = rng.choice(DAGSTER_STEPS)
        stages[step] += kill_after_line(start(materialize, env, cwd=tmp_path), f'STEP_START - Started execution of '
                                        f'step "{step}"', rng.uniform(0.0, 1.5 if step == "datasets" else 0.3))
        assert_whole(layout, formats, versions_expected=True)
        finish(materialize, env, cwd=tmp_path)
        run_pipeline(project.projects_dir, tmp_path / "reference", tmp_path / "reference-cache", formats=formats)
        reference = ProjectLayout(tmp_path / "reference", PROJECT_ID)
        assert_same_output(layout, reference, formats)
        assert check_versions(layout, formats, keep=KEEP) == check_versions(reference, formats)
        assert not leftovers(root), leftovers(root)
        shutil.rmtree(tmp_path / "reference")
    killed = sum(stages.values())
    print(f"\ndagster: {killed} of {DAGSTER_TRIALS} runs killed, in steps {dict(stages)} (a run: {duration:.1f} s)")
    assert killed >= DAGSTER_TRIALS // 2
