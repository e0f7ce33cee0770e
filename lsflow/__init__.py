"""lsflow: Label Studio projects to trustworthy training datasets.

`from lsflow import defs` gives the Dagster `Definitions`; it is loaded on first use so that the
command line does not pay for importing Dagster (~1.7 s) when it only converts files.
"""

import sys
import types

__version__ = "0.1.0"


class _Package(types.ModuleType):
    """Keeps `lsflow.defs` the Definitions object: the import system binds each subpackage to its
    parent's attribute when it is first imported (`import lsflow.defs.assets` would otherwise leave
    the `lsflow.defs` *module* under the name users import)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "defs" and isinstance(value, types.ModuleType):
            value = value.defs
        super().__setattr__(name, value)

    def __getattr__(self, name: str):
        if name == "defs":
            import lsflow.defs  # binds the Definitions through __setattr__

            return self.__dict__["defs"]
        raise AttributeError(f"module 'lsflow' has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {"defs"})


sys.modules[__name__].__class__ = _Package
