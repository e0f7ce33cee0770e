"""Fixtures of the Dagster wiring's tests."""

import pytest
from dagster._core.storage.defs_state.base import set_defs_state_storage


@pytest.fixture(autouse=True)
def no_stale_defs_state_storage():
    """Each test starts with no current defs-state storage. Dagster 1.13 makes an instance's storage current
    on `__enter__` and loses the first reset when the instance is entered again while entered,
    so a closed test instance stays current and a later `Definitions` load fails on its dead weakref."""
    with set_defs_state_storage(None):
        yield
