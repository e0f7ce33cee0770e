"""The names one lsflow instance gives its Dagster definitions, so that several live in one project.

The standalone code location (`lsflow.definitions`) is the unnamed instance: its keys and names are
lsflow's documented ones (`label_studio_snapshot`, `dataset_coco`, job `export_project`, resources
`task_source` and `settings`, partitions `label_studio_projects`). A named instance (the Component, or
`build_label_studio_defs(name=...)`) prefixes every one of them, so two instances never collide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from lsflow.core.formats import WRITERS


@dataclass(frozen=True)
class Names:
    name: str = ""
    key_prefix: tuple[str, ...] = ()
    # Unset: the snapshot and store in "label_studio", the datasets in "datasets".
    group_name: str | None = None

    def __post_init__(self) -> None:
        if self.name and not self.name.isidentifier():
            raise ValueError(f"instance name {self.name!r}: use letters, digits and underscores (a Python identifier)")
        if self.name and not self.key_prefix:
            object.__setattr__(self, "key_prefix", (self.name,))  # a named instance's assets are its own
        if self.key_prefix and not self.name:
            raise ValueError("a key prefix needs an instance name too: it tells the instance's resources, job, "
                             "sensor, schedule and partitions from the standalone ones")

    def _named(self, base: str) -> str:
        return f"{self.name}_{base}" if self.name else base

    def key(self, base: str) -> dg.AssetKey:
        return dg.AssetKey([*self.key_prefix, base])

    def op(self, base: str) -> str:
        """An op's name, unique as its asset keys are (Dagster names a prefixed asset's op so too)."""
        return "__".join([*self.key_prefix, base])

    def group(self, default: str) -> str:
        return self.group_name or default

    def format_keys(self, formats: Sequence[str] | None = None) -> dict[str, dg.AssetKey]:
        return {name: self.key(f"dataset_{name.lower()}") for name in (formats or WRITERS)}

    @property
    def task_source(self) -> str:
        return self._named("task_source")

    @property
    def settings(self) -> str:
        return self._named("settings")

    @property
    def job(self) -> str:
        return self._named("export_project")

    @property
    def sensor(self) -> str:
        return self._named("label_studio_projects")

    @property
    def schedule(self) -> str:
        return self._named("full_export")

    @property
    def partitions(self) -> str:
        return self._named("label_studio_projects")


STANDALONE = Names()
