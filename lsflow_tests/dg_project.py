"""A user's `dg` project as tests run it: outside the repository, with a Dagster instance of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lsflow_tests.paths import REPO_ROOT, SAMPLE_MEDIA, SAMPLE_PROJECTS

TOOLS = Path(sys.executable).parent
EXAMPLE = REPO_ROOT / "examples" / "label_studio_training"


def project_env(project: Path, home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment `dg` runs the project in: DAGSTER_HOME (default `<project>/dagster_home`, telemetry off)
    and the project's `src/` first on the path, so a copy is loaded rather than an installed (editable) package."""
    home = home or project / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(project / "src"), **extra}


def run_dg(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TOOLS / "dg"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)


def launch_everything(project: Path, env: dict[str, str], partition: str) -> subprocess.CompletedProcess:
    """`dg launch --assets '*'` for one partition; fails the test unless the run succeeded."""
    run = run_dg(project, env, "launch", "--assets", "*", "--partition", partition)
    assert run.returncode == 0 and "RUN_SUCCESS" in run.stdout + run.stderr, (run.stdout + run.stderr)[-4000:]
    return run


def copy_example(target: Path) -> Path:
    """examples/label_studio_training copied to `target`, reading the repository's sample by absolute path."""
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "*.egg-info", "__pycache__"))
    defs_yaml = target / "src" / "label_studio_training" / "defs" / "label_studio" / "defs.yaml"
    text = defs_yaml.read_text()
    assert "../../data/sample/projects" in text and "../../data/sample/media" in text
    defs_yaml.write_text(text.replace("../../data/sample/projects", str(SAMPLE_PROJECTS))
                         .replace("../../data/sample/media", str(SAMPLE_MEDIA)))
    return target
