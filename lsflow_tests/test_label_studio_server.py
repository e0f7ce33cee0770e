"""The real-server harness itself: CI must not pass by silently skipping the real-server tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USES_SERVER = """
def test_needs_the_server(label_studio):
    pass
"""


def run_pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    test = tmp_path / "test_uses_server.py"
    test.write_text(USES_SERVER)
    conftest = Path(__file__).parent / "conftest.py"
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(test), "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path),
         "--confcutdir", str(tmp_path), "-p", "lsflow_tests.conftest"],
        env={**{k: v for k, v in os.environ.items() if k != "LSFLOW_SKIP_LIVE"}, **env},
        cwd=conftest.parent.parent, capture_output=True, text=True, timeout=300,
    )


def test_missing_label_studio_fails_and_says_to_run_make_test(tmp_path):
    run = run_pytest(tmp_path, LABEL_STUDIO_BIN=str(tmp_path / "no-such-label-studio"))
    assert run.returncode == 1, run.stdout
    assert "1 error" in run.stdout and "run `make test`" in run.stdout


def test_skipping_needs_an_explicit_switch(tmp_path):
    run = run_pytest(tmp_path, LABEL_STUDIO_BIN=str(tmp_path / "no-such-label-studio"), LSFLOW_SKIP_LIVE="1")
    assert run.returncode == 0 and "1 skipped" in run.stdout
