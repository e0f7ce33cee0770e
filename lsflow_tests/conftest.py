"""Session-wide fixtures. `label_studio` is a real Label Studio server (see label_studio_server.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lsflow_tests.label_studio_server import LabelStudioServer, LabelStudioUnavailable, label_studio_binary


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """A running Label Studio with an admin user, a legacy token and a personal access token.

    A missing binary fails the test (CI must run these) unless LSFLOW_SKIP_LIVE=1 says to skip.
    """
    if os.environ.get("LSFLOW_SKIP_LIVE") == "1":
        pytest.skip("LSFLOW_SKIP_LIVE=1: real Label Studio tests skipped")
    try:
        server = LabelStudioServer(label_studio_binary(), tmp_path_factory.mktemp("label-studio")).start()
    except LabelStudioUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


# Projects on that server, built once per session; tests only read them (or make their own to change).
@pytest.fixture(scope="session")
def image_project(label_studio):
    from lsflow_tests.live_projects import build_image_project

    return build_image_project(label_studio, "lsflow image project")


@pytest.fixture(scope="session")
def text_project(label_studio):
    from lsflow_tests.live_projects import build_text_project

    return build_text_project(label_studio, "lsflow text project")


@pytest.fixture(scope="session")
def audio_project(label_studio, tmp_path_factory):
    from lsflow_tests.live_projects import build_audio_project

    return build_audio_project(label_studio, "lsflow audio project", tmp_path_factory.mktemp("wavs"))
