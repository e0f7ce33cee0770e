"""The `lsflow` command line.

    lsflow convert EXPORT.json --format COCO,YOLO --out DIR [--config XML] [--media-root DIR]
    lsflow partitions add [PROJECT_ID ...]
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from lsflow.core.export import export_context, export_datasets
from lsflow.core.formats import UnknownFormatError, parse_formats
from lsflow.core.label_config import LabelConfig, LabelConfigError
from lsflow.core.model import ExportFormatError
from lsflow.core.selection import POLICIES, AnnotationPolicy
from lsflow.sources.export_file import iter_export_tasks
from lsflow.sources.media import LocalMedia, MediaRefused


def _warn(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group()
@click.version_option(package_name="lsflow")
def main() -> None:
    """Label Studio projects to training datasets."""
    warnings.showwarning = _warn


@main.command()
@click.argument("export_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "formats", required=True, help="One or more Label Studio format names, comma-separated.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; each format is written to OUT/<FORMAT>/.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The project's label config XML: class order and ids, keypoint order.")
@click.option("--media-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Local copy of Label Studio's media folder (holds upload/), for image sizes.")
@click.option("--annotations", "policy_text", default="all", show_default=True,
              help=f"Which annotations of a task to export: {', '.join(POLICIES)}.")
def convert(export_file: Path, formats: str, out_dir: Path, config_path: Path | None, media_root: Path | None,
            policy_text: str) -> None:
    """Convert a Label Studio JSON export into one or more dataset formats, in one pass."""
    try:
        names = parse_formats(formats)
        policy = AnnotationPolicy.parse(policy_text)
        config = LabelConfig.from_file(config_path) if config_path else None
        context = export_context(config, lambda: iter_export_tasks(export_file), media=LocalMedia(media_root))
        results = export_datasets(iter_export_tasks(export_file), names, out_dir, context, policy)
    except (ExportFormatError, UnknownFormatError, LabelConfigError, MediaRefused, ValueError) as error:
        raise click.ClickException(str(error)) from None
    for name, result in results.items():
        report = result.report
        click.echo(f"{name}: {result.path}  tasks={report['tasks']} regions written={report['regions_written']} "
                   f"clipped={report['regions_clipped']} dropped={report['regions_dropped']}")
        for reason, count in report["dropped_by_reason"].items():
            click.echo(f"    dropped {count}: {reason}")


@main.group()
def partitions() -> None:
    """Label Studio projects as Dagster partitions (needs DAGSTER_HOME)."""


@partitions.command("add")
@click.argument("project_ids", nargs=-1)
def partitions_add(project_ids: tuple[str, ...]) -> None:
    """Register projects as partitions; without ids, every project the configured source knows."""
    import dagster as dg

    from lsflow.defs.definitions import task_source_from_environment
    from lsflow.defs.partitions import register_projects

    ids = list(project_ids) or [p.project_id for p in task_source_from_environment().open().list_projects()]
    with dg.DagsterInstance.get() as instance:
        added = register_projects(instance, ids)
    click.echo(f"partitions: {', '.join(ids) or 'none found'} (new: {', '.join(added) or 'none'})")


if __name__ == "__main__":
    sys.exit(main())
