"""The `lsflow` command line.

    lsflow convert EXPORT.json --format COCO,YOLO --out DIR [--config XML] [--media-root DIR]
                   [--allow-host HOST ...] [--cache-dir DIR] [--local-files-root DIR] [--option NAME=VALUE ...]
                   [--workers N]
    lsflow export PROJECT_ID FORMAT --path DIR [--full] [--media-root DIR] [--annotations POLICY] [--option NAME=VALUE ...]
                  [--workers N]
    lsflow partitions add [PROJECT_ID ...]
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lsflow.core.formats import UnknownFormatError, parse_formats, writer_class
from lsflow.core.model.label_config import LabelConfig, LabelConfigError
from lsflow.core.model.selection import POLICIES, AnnotationPolicy
from lsflow.core.model.task import ExportFormatError
from lsflow.core.pipeline.build import FormatResult
from lsflow.core.pipeline.parallel import usable_cores
from lsflow.project.convert import convert_export
from lsflow.project.datasets import DatasetOptions
from lsflow.sources.media import MediaOutcome, MediaReport, MediaResolver
from lsflow.sources.media_download import DownloadLimits

if TYPE_CHECKING:
    from tqdm import tqdm

_DEFAULT_LIMITS = DownloadLimits()


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
              help="Local copy of Label Studio's media folder (holds upload/), read before downloading.")
@click.option("--local-files-root", envvar="LOCAL_FILES_DOCUMENT_ROOT",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The folder /data/local-files/?d= paths are relative to [env LOCAL_FILES_DOCUMENT_ROOT].")
@click.option("--label-studio-url", envvar="LABEL_STUDIO_URL", metavar="URL",
              help="Label Studio to download uploads from [env LABEL_STUDIO_URL]; the token is read from "
                   "LABEL_STUDIO_API_KEY only, and sent only to this URL's host.")
@click.option("--allow-host", "allowed", multiple=True, metavar="HOST",
              help="Also download media from this host (host, host:port, *.example.com) or bucket "
                   "(s3://bucket, gs://bucket, azure-blob://container). Repeatable.")
@click.option("--cache-dir", envvar="LSFLOW_MEDIA_CACHE", type=click.Path(file_okay=False, path_type=Path),
              help="Where downloaded media is kept between runs [env LSFLOW_MEDIA_CACHE; default "
                   "~/.cache/lsflow/media].")
@click.option("--max-file-mb", type=click.FloatRange(min=0, min_open=True), show_default=True,
              default=_DEFAULT_LIMITS.max_bytes / 2**20, help="Refuse media files larger than this.")
@click.option("--media-timeout", type=click.FloatRange(min=0, min_open=True), show_default=True,
              default=_DEFAULT_LIMITS.timeout_seconds, help="Seconds one media download may take.")
@click.option("--prefetch-media/--no-prefetch-media", default=None,
              help="Download all task media first, concurrently [default: when a format copies media].")
@click.option("--annotations", "policy_text", default="all", show_default=True,
              help=f"Which annotations of a task to export: {', '.join(POLICIES)}.")
@click.option("--option", "option_pairs", multiple=True, metavar="NAME=VALUE",
              help="A writer option, e.g. csv_header=false or csv_multi_value_separator='|' (CSV/TSV). Repeatable.")
@click.option("--workers", type=click.IntRange(min=1), default=usable_cores, show_default="the usable cores",
              help="Processes writing tasks (1: all in this one).")
def convert(export_file: Path, formats: str, out_dir: Path, config_path: Path | None, media_root: Path | None,
            local_files_root: Path | None, label_studio_url: str | None, allowed: tuple[str, ...],
            cache_dir: Path | None, max_file_mb: float, media_timeout: float, prefetch_media: bool | None,
            policy_text: str, option_pairs: tuple[str, ...], workers: int) -> None:
    """Convert a Label Studio JSON export into one or more dataset formats, in one pass.

    Task media (for image sizes, *_WITH_IMAGES copies, audio durations) is read from --media-root and
    --local-files-root, else downloaded from Label Studio and the --allow-host hosts into a cache.
    Media that cannot be had is reported and counted, not fatal.
    """
    try:
        names = parse_formats(formats)
        options = _writer_options(option_pairs, names)
        policy = AnnotationPolicy.parse(policy_text)
        config = LabelConfig.from_file(config_path) if config_path else None
        limits = DownloadLimits(max_bytes=int(max_file_mb * 2**20), timeout_seconds=media_timeout)
        media = MediaResolver.from_environment(media_root=media_root, local_files_root=local_files_root,
                                               label_studio_url=label_studio_url, allowed=allowed,
                                               cache_dir=cache_dir, limits=limits)
        with media, _MediaProgress() as media_progress:
            built = convert_export(export_file, names, out_dir, config, media, DatasetOptions(
                policy=policy, options=options, workers=workers, on_not_applicable=_warn_not_applicable,
                prefetch_media=prefetch_media, on_media_resolved=media_progress))
    except (ExportFormatError, UnknownFormatError, LabelConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    _echo_results(built.results)
    _echo_media_report(media.report())


def _writer_options(pairs: tuple[str, ...], formats: list[str]) -> dict[str, str]:
    """`NAME=VALUE` pairs, each an option of one of the chosen formats (a typo must not pass unnoticed)."""
    known = {name for f in formats for name in writer_class(f).option_help}
    options = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or name.strip() not in known:
            raise click.BadParameter(
                f"{pair!r}: the options of {', '.join(formats)} are "
                f"{', '.join(sorted(known)) or 'none'} (given as NAME=VALUE)", param_hint="--option")
        options[name.strip()] = value
    return options


def _warn_not_applicable(name: str, reason: str) -> None:
    warnings.warn(f"{reason}: written as asked, with every region reported as dropped", stacklevel=2)


class _MediaProgress:
    """A progress bar of the media prefetch, shown once the first file is resolved (tqdm writes to
    stderr and turns itself off when that is not a terminal)."""

    def __init__(self) -> None:
        self._bar: tqdm | None = None
        self._problems = 0

    def __call__(self, outcome: MediaOutcome) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(desc="media", unit=" files", disable=None)
        self._bar.update()
        if not outcome.status.resolved:
            self._problems += 1
            self._bar.set_postfix(missing_or_refused=self._problems)

    def __enter__(self) -> _MediaProgress:
        return self

    def __exit__(self, *_exc) -> None:
        if self._bar is not None:
            self._bar.close()


def _echo_results(results: dict[str, FormatResult], files: bool = False) -> None:
    for name, result in results.items():
        report = result.report
        counts = (f"  files: {result.files.files_written} written, {result.files.files_kept} unchanged, "
                  f"{result.files.files_removed} removed") if files else ""
        click.echo(f"{name}: {result.path}  tasks={report['tasks']} regions written={report['regions_written']} "
                   f"clipped={report['regions_clipped']} dropped={report['regions_dropped']}{counts}")
        for reason, count in report["dropped_by_reason"].items():
            click.echo(f"    dropped {count}: {reason}")


def _echo_media_report(report: MediaReport) -> None:
    counts = report.as_dict()
    if not counts["references"]:
        return
    click.echo(f"media: {counts['references']} files — {counts['local']} on disk, {counts['downloaded']} downloaded, "
               f"{counts['cached']} from cache, {counts['missing']} missing, {counts['refused']} refused")
    for problem in counts["problems"]:
        click.echo(f"    {problem['status']} {problem['references']}: {problem['reason']} "
                   f"(e.g. {problem['example']})")


@main.command("export")
@click.argument("project_id")
@click.argument("formats", metavar="FORMAT")
@click.option("--path", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; each format is written to PATH/<FORMAT>/, lsflow's state to PATH/.lsflow/.")
@click.option("--full", is_flag=True,
              help="Export every task again, even though PATH holds an earlier export of the project.")
@click.option("--media-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Local copy of Label Studio's media folder (holds upload/), read before downloading.")
@click.option("--annotations", "policy_text", default="all", show_default=True,
              help=f"Which annotations of a task to export: {', '.join(POLICIES)}.")
@click.option("--option", "option_pairs", multiple=True, metavar="NAME=VALUE",
              help="A writer option, as for `lsflow convert`. Repeatable.")
@click.option("--workers", type=click.IntRange(min=1), default=usable_cores, show_default="the usable cores",
              help="Processes writing tasks (1: all in this one).")
def export(project_id: str, formats: str, out_dir: Path, full: bool, media_root: Path | None, policy_text: str,
           option_pairs: tuple[str, ...], workers: int) -> None:
    """Export project PROJECT_ID of a running Label Studio into FORMAT (comma-separated names).

    `label-studio export PROJECT FORMAT --path DIR`, but over the API from any machine. The first run
    takes a full snapshot; later runs into the same PATH fetch only the tasks changed since (and
    remove deleted ones), then rebuild every format from the local store — the same files a full
    export gives, with unchanged files left untouched. The server and token come from
    LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (a personal access token or a legacy token);
    `DEBUG=1 LOG_LEVEL=DEBUG` shows each step.
    """
    import os
    import shutil

    from tqdm import tqdm

    from lsflow.project.datasets import build_datasets
    from lsflow.project.layout import ProjectLayout
    from lsflow.project.snapshot import take_project_snapshot
    from lsflow.project.store import update_store
    from lsflow.sources.label_studio import LabelStudioError, LabelStudioSource

    _log_from_environment()
    url = os.environ.get("LABEL_STUDIO_URL", "")
    layout = ProjectLayout.for_export_path(out_dir, project_id)
    first_export = not layout.project_dir.exists()
    try:
        names = parse_formats(formats)
        options = _writer_options(option_pairs, names)
        policy = AnnotationPolicy.parse(policy_text)
        with tqdm(desc=f"snapshot of project {project_id}", unit="B", unit_scale=True, disable=None) as bar:
            def downloaded(done: int, total: int | None) -> None:
                bar.total = total
                bar.update(done - bar.n)

            source = LabelStudioSource(url, os.environ.get("LABEL_STUDIO_API_KEY", ""), progress=downloaded)
            record = take_project_snapshot(source, layout, full=full)
        summary, changes, _ = update_store(layout)
        media = MediaResolver.from_environment(media_root=media_root, label_studio_url=url)
        with media, _MediaProgress() as media_progress:
            built = build_datasets(layout, names, media, DatasetOptions(
                policy=policy, options=options, workers=workers, on_not_applicable=_warn_not_applicable,
                on_media_resolved=media_progress,
                progress=lambda tasks: tqdm(tasks, desc="tasks", unit=" tasks", total=summary.tasks, disable=None)))
    except (LabelStudioError, ExportFormatError, UnknownFormatError, LabelConfigError, ValueError) as error:
        if first_export:  # nothing of a failed first export stays behind
            shutil.rmtree(layout.project_dir, ignore_errors=True)
            if layout.root.is_dir() and not any(layout.root.iterdir()):
                layout.root.rmdir()
        raise click.ClickException(str(error)) from None
    click.echo(f"project {project_id}: snapshot {record.snapshot_id} ({record.mode}), {record.task_count} tasks, "
               f"md5 {record.md5}")
    click.echo(f"store: {summary.tasks} tasks — {changes.new} new, {changes.changed} changed, "
               f"{changes.deleted} deleted")
    _echo_results(built.results, files=True)
    _echo_media_report(media.report())


def _log_from_environment() -> None:
    """Label Studio's own switches: `LOG_LEVEL=DEBUG` (or `DEBUG=1`) logs each request and step to stderr.

    httpcore stays quiet: at DEBUG it prints raw response headers, session cookies included.
    """
    import logging
    import os

    level = os.environ.get("LOG_LEVEL") or ("DEBUG" if os.environ.get("DEBUG") == "1" else "WARNING")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpcore").setLevel(max(logging.INFO, logging.getLogger().level))


@main.group()
def partitions() -> None:
    """Label Studio projects as Dagster partitions (needs DAGSTER_HOME)."""


@partitions.command("add")
@click.argument("project_ids", nargs=-1)
def partitions_add(project_ids: tuple[str, ...]) -> None:
    """Register projects as partitions; without ids, every project the configured source knows."""
    import dagster as dg

    from lsflow.defs.partitions import register_projects
    from lsflow.defs.resources import task_source_from_environment

    ids = list(project_ids)
    if not ids:
        from lsflow.sources.label_studio import LabelStudioError

        try:
            # Resolving the resource's config reads LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY for the live source.
            source = task_source_from_environment().process_config_and_initialize().open()
            ids = [p.project_id for p in source.list_projects()]
        except LabelStudioError as error:
            raise click.ClickException(str(error)) from None
    with dg.DagsterInstance.get() as instance:
        added = register_projects(instance, ids)
    click.echo(f"partitions: {', '.join(ids) or 'none found'} (new: {', '.join(added) or 'none'})")


if __name__ == "__main__":
    sys.exit(main())
