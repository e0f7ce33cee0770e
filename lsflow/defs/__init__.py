"""Dagster wiring for lsflow; `defs` is the `Definitions` object."""

from lsflow.defs.definitions import defs

__all__ = ["defs"]
