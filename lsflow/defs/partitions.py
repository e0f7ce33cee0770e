"""Label Studio projects as dynamic partitions: one partition key per project id."""

import dagster as dg

PROJECTS_PARTITION_NAME = "label_studio_projects"
project_partitions = dg.DynamicPartitionsDefinition(name=PROJECTS_PARTITION_NAME)


def register_projects(instance: dg.DagsterInstance, project_ids: list[str]) -> list[str]:
    """Add the projects that are not partitions yet; returns the ones added."""
    known = set(instance.get_dynamic_partitions(PROJECTS_PARTITION_NAME))
    new = [pid for pid in dict.fromkeys(project_ids) if pid not in known]
    if new:
        instance.add_dynamic_partitions(PROJECTS_PARTITION_NAME, new)
    return new
