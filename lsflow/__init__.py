"""lsflow: Label Studio projects to trustworthy training datasets.

The Dagster definitions load from `lsflow.definitions`; the command line is `lsflow.cli`.
"""

__version__ = "0.1.0"
