"""`importer_python`: the Python of the importer virtualenv (Datumaro, supervision), made by `make test`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsflow_tests.paths import REPO_ROOT

DEFAULT_PYTHON = REPO_ROOT / ".venv-importers" / "bin" / "python"


@pytest.fixture(scope="session")
def importer_python() -> Path:
    """LSFLOW_IMPORTERS_PYTHON, else `.venv-importers/bin/python`. Missing: skipped with the reason, except
    in CI (CI=true), where these tests must run and their absence fails them."""
    python = Path(os.environ.get("LSFLOW_IMPORTERS_PYTHON") or DEFAULT_PYTHON)
    if not python.is_file():
        message = (f"no importer virtualenv at {python}: `make test` creates .venv-importers (datumaro, "
                   "supervision) and sets LSFLOW_IMPORTERS_PYTHON")
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return python
