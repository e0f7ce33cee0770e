"""lsflow: Label Studio projects to trustworthy training datasets.

`from lsflow import defs` gives the Dagster `Definitions`; it is loaded on first use so that the
command line does not pay for importing Dagster when it only converts files.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "defs":
        from lsflow.defs import defs

        # Importing the subpackage `lsflow.defs` bound that module to this name; the Definitions
        # object is what `from lsflow import defs` and `dagster -m lsflow` must find.
        globals()["defs"] = defs
        return defs
    raise AttributeError(f"module 'lsflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return ["__version__", "defs"]
