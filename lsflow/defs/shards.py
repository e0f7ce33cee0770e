"""The `dataset_shards` asset: a large project's shards, each built in its own step, before `datasets` merges them.

A graph of three ops: `plan_shards` lists the shards of the project's store not yet built from it (none
for a project of fewer tasks than `shard_size`) as dynamic outputs; `build_shard` runs once per shard,
each its own step — its own process, or another Celery worker's —; `shards_built` collects them. The
datasets step then only merges (`lsflow.project.datasets`: a shard built here is not built again).
The formats built are the ones the run materializes (every format of the instance when the run
selects none of them).
"""

from collections.abc import Iterator

import dagster as dg

from lsflow.defs.names import Names
from lsflow.defs.resources import DatasetSettings
from lsflow.project.datasets import DatasetOptions, build_project_shard, pending_shards
from lsflow.project.layout import ProjectLayout


def shard_options(settings: DatasetSettings) -> DatasetOptions:
    """What the shards are built with: the `datasets` step's options (its stamp must be theirs)."""
    return DatasetOptions(policy=settings.policy(), options=settings.writer_options, workers=settings.workers,
                          write_inapplicable=False, shard_size=settings.shard_size)


def build_dataset_shards(names: Names, partitions_def: dg.PartitionsDefinition, store: dg.AssetsDefinition,
                         format_keys: dict[str, dg.AssetKey]) -> dg.AssetsDefinition:
    def layout(context: dg.OpExecutionContext) -> ProjectLayout:
        return ProjectLayout(getattr(context.resources, names.settings).layout_root(), context.partition_key)

    def run_formats(context: dg.OpExecutionContext) -> list[str]:
        selection = context.run.asset_selection
        chosen = [name for name, key in format_keys.items() if selection is None or key in selection]
        return chosen or list(format_keys)

    @dg.op(name=names.op("plan_shards"), ins={"store": dg.In(dg.Nothing)}, out=dg.DynamicOut(dict),
           required_resource_keys={names.settings})
    def plan_shards(context: dg.OpExecutionContext) -> Iterator[dg.DynamicOutput[dict]]:
        """One output per shard to build: its name (`<first id>-<end>`) and the formats to build."""
        settings: DatasetSettings = getattr(context.resources, names.settings)
        work = pending_shards(layout(context), run_formats(context), shard_options(settings))
        context.log.info(f"project {context.partition_key}: {work.planned} shards planned, {len(work.shards)} to "
                         f"build ({', '.join(work.formats) or 'no format written task by task'})")
        for shard in work.shards:
            yield dg.DynamicOutput({"shard": shard.name, "formats": work.formats},
                                   mapping_key=shard.name.replace("-", "_"))

    @dg.op(name=names.op("build_shard"), required_resource_keys={names.settings})
    def build_shard(context: dg.OpExecutionContext, shard: dict) -> dict:
        settings: DatasetSettings = getattr(context.resources, names.settings)
        media = settings.media()
        with media:
            built = build_project_shard(layout(context), shard["shard"], shard["formats"], media,
                                        shard_options(settings))
        context.log.info(f"shard {built.name}: {built.tasks} tasks, {', '.join(shard['formats'])}")
        return {"shard": built.name, "tasks": built.tasks}

    @dg.op(name=names.op("shards_built"), out=dg.Out(dg.Nothing))
    def shards_built(context: dg.OpExecutionContext, shards: list[dict]) -> None:
        context.add_output_metadata({
            "shards_built": len(shards),
            "tasks_built": sum(int(shard["tasks"]) for shard in shards),
            "shards": dg.MetadataValue.json(sorted(shards, key=lambda shard: int(str(shard["shard"]).split("-")[0]))),
        })

    @dg.graph_asset(
        key=names.key("dataset_shards"),
        partitions_def=partitions_def,
        group_name=names.group("datasets"),
        ins={"store": dg.AssetIn(key=store.key, dagster_type=dg.Nothing)},
        description="A large project's shards (bounded task-id ranges of `shard_size` ids), each built in its own "
                    "step from the normalized store; the datasets merge them. Nothing to build for a smaller project.",
    )
    def dataset_shards(store):
        return shards_built(plan_shards(store=store).map(build_shard).collect())

    return dataset_shards
