"""lsflow's Dagster wiring: assets, checks, resources, partitions, jobs, sensors and schedules.

`lsflow.definitions` gathers them into the `Definitions` Dagster loads.
"""
