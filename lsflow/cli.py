"""The `lsflow` command line.

    lsflow convert EXPORT.json --format COCO,YOLO --out DIR [--config XML] [--media-root DIR]
                   [--allow-host HOST ...] [--cache-dir DIR] [--local-files-root DIR] [--option NAME=VALUE ...]
                   [--workers N]
    lsflow export PROJECT_ID FORMAT --path DIR [--full] [--media-root DIR] [--annotations POLICY] [--option NAME=VALUE ...]
                  [--workers N] [--keep-versions N]
    lsflow versions list PROJECT_ID FORMAT [--root DIR | --path DIR] [--json]
    lsflow versions diff PROJECT_ID FORMAT V1 V2 [--root DIR | --path DIR] [--json]
    lsflow versions lineage PROJECT_ID FORMAT VERSION [--task ID] [--root DIR | --path DIR] [--json]
    lsflow versions pin|unpin PROJECT_ID FORMAT VERSION [--root DIR | --path DIR]
    lsflow versions prune PROJECT_ID FORMAT [--keep N] [--root DIR | --path DIR] [--json]
    lsflow partitions add [PROJECT_ID ...]
    lsflow review EXPORT.json [--out DIR] | lsflow review --path DIR --project PROJECT_ID
    lsflow agreement EXPORT.json [--out DIR] | lsflow agreement --path DIR --project PROJECT_ID
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lsflow.core.formats import UnknownFormatError, parse_formats, writer_class
from lsflow.core.model.label_config import LabelConfig, LabelConfigError
from lsflow.core.model.selection import POLICIES, AnnotationPolicy
from lsflow.core.model.task import ExportFormatError
from lsflow.core.pipeline.build import FormatResult
from lsflow.core.pipeline.parallel import usable_cores
from lsflow.project.convert import convert_export
from lsflow.project.datasets import DatasetOptions
from lsflow.project.layout import ProjectLayout
from lsflow.project.versions import KEEP_VERSIONS, VersionInfo, VersionNotFound
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
@click.option("--keep-versions", type=click.IntRange(min=1), default=KEEP_VERSIONS, show_default=True,
              help="Versions kept per format besides pinned ones (`lsflow versions pin`); older ones are removed.")
@click.option("--max-wait", type=click.FloatRange(min=0, min_open=True), show_default="1800",
              help="Seconds the snapshot may take to build on the server.")
@click.option("--storage", "storage_url", metavar="URL",
              help="Read the project's target storage instead of the API: file://, s3://, gs:// or azure:// and the "
                   "prefix Label Studio writes to ({project} stands for PROJECT_ID); only changed objects are read.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --storage: the project's labeling config (target storage holds none).")
def export(project_id: str, formats: str, out_dir: Path, full: bool, media_root: Path | None, policy_text: str,
           option_pairs: tuple[str, ...], workers: int, keep_versions: int, max_wait: float | None,
           storage_url: str | None, config_path: Path | None) -> None:
    """Export project PROJECT_ID of a running Label Studio into FORMAT (comma-separated names).

    `label-studio export PROJECT FORMAT --path DIR`, but over the API from any machine. The first run
    takes a full snapshot; later runs into the same PATH fetch only the tasks changed since (and
    remove deleted ones), then rebuild every format from the local store — the same files a full
    export gives, with unchanged files left untouched. The server and token come from
    LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (a personal access token or a legacy token);
    `DEBUG=1 LOG_LEVEL=DEBUG` shows each step. With --storage, tasks come from the project's target
    storage (cloud credentials from the environment, as the cloud SDKs read them).
    """
    import shutil

    from tqdm import tqdm

    from lsflow.project.datasets import build_datasets
    from lsflow.project.lock import OutOfSpace, ProjectBusy
    from lsflow.project.snapshot import take_project_snapshot
    from lsflow.project.store import update_store
    from lsflow.sources.base import TaskSource
    from lsflow.sources.label_studio import LabelStudioError, LabelStudioSource, Timing
    from lsflow.sources.target_storage import StorageError, TargetStorageSource

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

            source: TaskSource
            if storage_url:
                source = TargetStorageSource(storage_url, config_path)
            else:
                timing = Timing(max_wait=max_wait) if max_wait else Timing()
                source = LabelStudioSource(url, os.environ.get("LABEL_STUDIO_API_KEY", ""), timing=timing,
                                           progress=downloaded)
            record = take_project_snapshot(source, layout, full=full)
        summary, changes, _ = update_store(layout)
        media = MediaResolver.from_environment(media_root=media_root, label_studio_url=url)
        with media, _MediaProgress() as media_progress:
            built = build_datasets(layout, names, media, DatasetOptions(
                policy=policy, options=options, workers=workers, on_not_applicable=_warn_not_applicable,
                on_media_resolved=media_progress, keep_versions=keep_versions, label_studio_url=url or None,
                progress=lambda tasks: tqdm(tasks, desc="tasks", unit=" tasks", total=summary.tasks, disable=None)))
    except ProjectBusy as error:  # another run is writing PATH: nothing of it is this run's to remove
        raise click.ClickException(str(error)) from None
    except (LabelStudioError, StorageError, ExportFormatError, UnknownFormatError, LabelConfigError, ValueError,
            OutOfSpace) as error:
        if first_export:  # nothing of a failed first export stays behind
            shutil.rmtree(layout.project_dir, ignore_errors=True)
            if layout.root.is_dir() and not any(layout.root.iterdir()):
                layout.root.rmdir()
        raise click.ClickException(str(error)) from None
    click.echo(f"project {project_id}: snapshot {record.snapshot_id} ({record.mode}), {record.task_count} tasks, "
               f"md5 {record.md5}")
    if record.counts:
        click.echo("source: " + ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in record.counts.items()))
    click.echo(f"store: {summary.tasks} tasks — {changes.new} new, {changes.changed} changed, "
               f"{changes.deleted} deleted")
    _echo_results(built.results, files=True)
    _echo_media_report(media.report())


def _log_from_environment() -> None:
    """Label Studio's own switches: `LOG_LEVEL=DEBUG` (or `DEBUG=1`) logs each request and step to stderr.

    httpcore stays quiet: at DEBUG it prints raw response headers, session cookies included.
    """
    import logging

    level = os.environ.get("LOG_LEVEL") or ("DEBUG" if os.environ.get("DEBUG") == "1" else "WARNING")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpcore").setLevel(max(logging.INFO, logging.getLogger().level))


# --- lsflow versions ---------------------------------------------------------------------------------

_DEFAULT_OUTPUT_ROOT = "data/output"


def _version_location(command: Callable[..., Any]) -> Callable[..., Any]:
    """PROJECT_ID FORMAT and where the project's output is: --root (Dagster's) or --path (`lsflow export`)."""
    command = click.option("--path", "export_path", type=click.Path(file_okay=False, path_type=Path),
                           help="An `lsflow export --path` folder (instead of --root).")(command)
    command = click.option("--root", type=click.Path(file_okay=False, path_type=Path),
                           help=f"The output root projects are built under [env LSFLOW_OUTPUT_ROOT; default "
                                f"{_DEFAULT_OUTPUT_ROOT}].")(command)
    command = click.argument("format_name", metavar="FORMAT")(command)
    return click.argument("project_id")(command)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document, for scripts.")


def _versions_layout(project_id: str, format_text: str, root: Path | None,
                     export_path: Path | None) -> tuple[ProjectLayout, str]:
    """The project's layout and the format's name, or a ClickException naming what is missing."""
    if root is not None and export_path is not None:
        raise click.UsageError("--root and --path are mutually exclusive")
    try:
        names = parse_formats(format_text)
    except UnknownFormatError as error:
        raise click.ClickException(str(error)) from None
    if len(names) != 1:
        raise click.UsageError(f"one FORMAT at a time, not {format_text!r}")
    format_name = names[0]
    if export_path is not None:
        layout = ProjectLayout.for_export_path(export_path, project_id)
        where = f"export folder {export_path}"
    else:
        root = root or Path(os.environ.get("LSFLOW_OUTPUT_ROOT") or _DEFAULT_OUTPUT_ROOT)
        layout = ProjectLayout(root, project_id)
        where = f"output root {root}"
    if not layout.project_dir.is_dir():
        raise click.ClickException(f"project {project_id}: no project folder in {where} ({layout.project_dir})")
    if not layout.versions_dir(format_name).is_dir():
        kept = sorted(p.name for p in layout.versions_root.iterdir() if p.is_dir()) \
            if layout.versions_root.is_dir() else []
        raise click.ClickException(f"project {project_id} {format_name}: no versions in {where} "
                                   f"(formats with versions: {', '.join(kept) or 'none'})")
    return layout, format_name


def _echo_json(document: Any) -> None:
    import orjson

    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def _echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> None:
    """Aligned plain-text columns: numbers to the right, text to the left."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [bool(rows) and all(isinstance(row[i], int) or str(row[i]).lstrip("+-").isdigit() for row in rows)
               for i in range(len(headers))]
    for row in cells:
        click.echo(indent + "  ".join(cell.rjust(w) if num else cell.ljust(w)
                                      for cell, w, num in zip(row, widths, numeric)).rstrip())


def _regions_per_split(version: VersionInfo) -> dict[str, int]:
    from lsflow.project.versions import class_counts, read_tasks

    return {split: sum(counts.values()) for split, counts in class_counts(read_tasks(version)).items()}


def _changes_text(changes: dict[str, int] | None) -> str:
    if changes is None:
        return "-"
    return (f"tasks +{changes['tasks_added']} -{changes['tasks_removed']} ~{changes['tasks_changed']}, "
            f"annotations +{changes['annotations_added']} -{changes['annotations_removed']} "
            f"~{changes['annotations_edited']}")


def _find(layout: ProjectLayout, format_name: str, wanted: str) -> VersionInfo:
    from lsflow.project.versions import find_version

    try:
        return find_version(layout, format_name, wanted)
    except VersionNotFound as error:
        raise click.ClickException(str(error)) from None


@main.group()
def versions() -> None:
    """A project's immutable dataset versions: list, diff, lineage, pins and retention.

    VERSION is a version id, a unique prefix of one, or `current`.
    """


@versions.command("list")
@_version_location
@_json_option
def versions_list(project_id: str, format_name: str, root: Path | None, export_path: Path | None,
                  as_json: bool) -> None:
    """The versions of PROJECT_ID's FORMAT dataset, newest first."""
    from lsflow.project.versions import list_versions

    layout, format_name = _versions_layout(project_id, format_name, root, export_path)
    found = [(v, _regions_per_split(v)) for v in list_versions(layout, format_name)]
    if as_json:
        _echo_json({"project_id": project_id, "format": format_name, "versions": [{
            "version": v.version, "created_at": v.manifest.get("created_at"), "current": v.current,
            "pinned": v.pinned, "previous_version": v.manifest.get("previous_version"),
            "tasks": v.manifest.get("tasks"), "regions_written": v.manifest.get("regions_written"),
            "regions_dropped": v.manifest.get("regions_dropped"), "regions_per_split": splits,
            "changes": v.manifest.get("changes"), "path": str(v.path)} for v, splits in found]})
        return
    click.echo(f"project {project_id} {format_name}: {len(found)} version{'s' if len(found) != 1 else ''}")
    _echo_table(["VERSION", "CREATED", "MARKS", "TASKS", "WRITTEN", "DROPPED", "REGIONS PER SPLIT", "CHANGES"], [
        [v.version, v.manifest.get("created_at"),
         ",".join(mark for mark, on in (("current", v.current), ("pinned", v.pinned)) if on) or "-",
         v.manifest.get("tasks"), v.manifest.get("regions_written"), v.manifest.get("regions_dropped"),
         " ".join(f"{split}={count}" for split, count in splits.items()) or "-",
         _changes_text(v.manifest.get("changes"))] for v, splits in found])


@versions.command("diff")
@_version_location
@click.argument("first", metavar="V1")
@click.argument("second", metavar="V2")
@_json_option
def versions_diff(project_id: str, format_name: str, root: Path | None, export_path: Path | None, first: str,
                  second: str, as_json: bool) -> None:
    """What changed from version V1 to V2: tasks, annotations, and regions per class and split."""
    from lsflow.project.versions import diff_versions

    layout, format_name = _versions_layout(project_id, format_name, root, export_path)
    before, after = _find(layout, format_name, first), _find(layout, format_name, second)
    diff = diff_versions(layout, format_name, before.version, after.version)
    classes = []
    for split in sorted(set(diff.classes_before) | set(diff.classes_after)):
        was, now = diff.classes_before.get(split, {}), diff.classes_after.get(split, {})
        for name in sorted(set(was) | set(now)):
            classes.append({"split": split, "class": name, "before": was.get(name, 0), "after": now.get(name, 0),
                            "delta": now.get(name, 0) - was.get(name, 0)})
    if as_json:
        _echo_json({"project_id": project_id, "format": format_name, "from": before.version, "to": after.version,
                    **diff.as_dict(), "classes": classes})
        return
    click.echo(f"project {project_id} {format_name}: {before.version} -> {after.version}")
    for label, ids in (("added", diff.tasks_added), ("removed", diff.tasks_removed),
                       ("changed", diff.tasks_changed)):
        click.echo(f"tasks {label} ({len(ids)}): {', '.join(map(str, ids)) or '-'}")
    for label, changes in (("added", diff.annotations_added), ("removed", diff.annotations_removed),
                           ("edited", diff.annotations_edited)):
        click.echo(f"annotations {label} ({len(changes)})")
        if changes:
            _echo_table(["TASK", "ANNOTATION", "ANNOTATOR", "UPDATED_AT"],
                        [[c.task_id, c.annotation_id, c.annotator, c.updated_at] for c in changes], indent="    ")
    click.echo("regions per class")
    _echo_table(["SPLIT", "CLASS", "BEFORE", "AFTER", "DELTA"],
                [[c["split"], c["class"], c["before"], c["after"], f"{c['delta']:+d}"] for c in classes],
                indent="    ")


@versions.command("lineage")
@_version_location
@click.argument("version", metavar="VERSION")
@click.option("--task", "task_id", type=int, help="Only this task's annotations.")
@_json_option
def versions_lineage(project_id: str, format_name: str, root: Path | None, export_path: Path | None, version: str,
                     task_id: int | None, as_json: bool) -> None:
    """The annotations VERSION holds: task, split, annotation, annotator, updated_at, ground truth."""
    from lsflow.project.versions import lineage, read_tasks

    layout, format_name = _versions_layout(project_id, format_name, root, export_path)
    found = _find(layout, format_name, version)
    if task_id is not None and task_id not in read_tasks(found).column("task_id").to_pylist():
        raise click.ClickException(f"project {project_id} {format_name}: task {task_id} is not in version "
                                   f"{found.version}")
    rows = lineage(layout, format_name, found.version, task_id)
    if as_json:
        _echo_json({"project_id": project_id, "format": format_name, "version": found.version, "task_id": task_id,
                    "annotations": rows})
        return
    click.echo(f"project {project_id} {format_name} {found.version}: {len(rows)} annotation"
               f"{'s' if len(rows) != 1 else ''}")
    _echo_table(["TASK", "SPLIT", "ANNOTATION", "ANNOTATOR", "UPDATED_AT", "GROUND_TRUTH"], [
        [r["task_id"], r["split"], r["annotation_id"], r["annotator"], r["updated_at"],
         "yes" if r["ground_truth"] else "no"] for r in rows])


def _set_pin(project_id: str, format_name: str, root: Path | None, export_path: Path | None, version: str,
             pinned: bool) -> None:
    from lsflow.project.lock import project_lock
    from lsflow.project.versions import pin

    layout, format_name = _versions_layout(project_id, format_name, root, export_path)
    found = _find(layout, format_name, version)  # its message names the project and format
    with project_lock(layout):  # not while a build publishes or prunes
        pin(layout, format_name, found.version, pinned)
    click.echo(f"project {project_id} {format_name}: {'pinned' if pinned else 'unpinned'} {found.version}")


@versions.command("pin")
@_version_location
@click.argument("version", metavar="VERSION")
def versions_pin(project_id: str, format_name: str, root: Path | None, export_path: Path | None,
                 version: str) -> None:
    """Keep VERSION whatever retention says."""
    _set_pin(project_id, format_name, root, export_path, version, True)


@versions.command("unpin")
@_version_location
@click.argument("version", metavar="VERSION")
def versions_unpin(project_id: str, format_name: str, root: Path | None, export_path: Path | None,
                   version: str) -> None:
    """Let retention remove VERSION again."""
    _set_pin(project_id, format_name, root, export_path, version, False)


@versions.command("prune")
@_version_location
@click.option("--keep", type=click.IntRange(min=1), default=KEEP_VERSIONS, show_default=True,
              help="The newest versions kept; pinned versions and the current one are always kept.")
@_json_option
def versions_prune(project_id: str, format_name: str, root: Path | None, export_path: Path | None, keep: int,
                   as_json: bool) -> None:
    """Remove the versions beyond the newest KEEP (retention by hand); prints the removed ids."""
    from lsflow.project.lock import project_lock
    from lsflow.project.versions import retain

    layout, format_name = _versions_layout(project_id, format_name, root, export_path)
    with project_lock(layout):
        removed = retain(layout, format_name, keep)
    if as_json:
        _echo_json({"project_id": project_id, "format": format_name, "keep": keep, "removed": removed})
        return
    click.echo(f"project {project_id} {format_name}: removed {len(removed)} version"
               f"{'s' if len(removed) != 1 else ''}")
    for version in removed:
        click.echo(version)


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

# --- lsflow review -----------------------------------------------------------------------------------


@main.command("review")
@click.argument("export_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the review of EXPORT_FILE goes [default: ./review]; with --path it goes to "
                   "PATH/.lsflow/project-<id>/review/.")
@click.option("--path", "export_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An `lsflow export --path` folder: review the store of its project --project instead of a file.")
@click.option("--project", "project_id", help="With --path: the project.")
def review(export_file: Path | None, out_dir: Path | None, export_path: Path | None, project_id: str | None) -> None:
    """Review a project's predictions per model version: what people kept, edited, deleted and added, and
    the predictions' quality against the annotations (P/R/F1, COCO mAP, confusion matrices, span scores,
    WER). Writes review.json, a README.md report and its pictures."""
    from lsflow.project.review import REPORT_FILE, review_export, review_project

    result, out = _file_or_store("review", export_file, out_dir, export_path, project_id,
                                 review_export, review_project, lambda layout: layout.review_dir)
    for version in result["model_versions"]:
        lineage, quality = version["lineage"], version["quality"]
        edits = ", ".join(f"{name.replace('_', ' ')} {lineage[name]}" for name in
                          ("moved", "resized", "reshaped", "relabelled", "value_changed") if lineage[name])
        scores = []
        if quality["detection"]:
            scores.append(f"F1@0.5 {_score(quality['detection']['micro']['f1'])}")
        if quality["coco"]:
            scores.append(f"AP@0.5 {_score(quality['coco']['AP50'])}")
        if quality["spans"]:
            scores.append(f"span F1 {_score(quality['spans']['micro']['f1'])}")
        scores += [f"{control} accuracy {_score(m['accuracy'])}" for control, m in quality["choices"].items()]
        scores += [f"{control} WER {_score(w['wer'])}" for control, w in quality["transcription"].items()]
        click.echo(f"{version['model_version']}: {version['predictions']} predictions on {version['tasks_predicted']} "
                   f"tasks ({version['regions_predicted']} regions), {version['tasks_annotated']} annotated; "
                   f"{lineage['annotations_from_predictions']} annotations from them: unchanged {lineage['unchanged']}, "
                   f"edited {lineage['edited']}{f' ({edits})' if edits else ''}, deleted {lineage['deleted']}, "
                   f"added {lineage['added']}{'; ' + ', '.join(scores) if scores else ''}")
    comparison = result["comparison"]
    if comparison:
        worse = [m["metric"] for m in comparison["metrics"] if m["worse"]]
        click.echo(f"newest {comparison['newest']} against {comparison['previous']} on {comparison['tasks']} tasks: "
                   + (f"worse on {', '.join(worse)}" if worse else "not worse"))
    click.echo(f"review: {out / REPORT_FILE}")


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _file_or_store(report: str, export_file: Path | None, out_dir: Path | None, export_path: Path | None,
                   project_id: str | None, of_file: Callable[[Path, Path], dict[str, Any]],
                   of_project: Callable[[ProjectLayout], dict[str, Any]],
                   folder: Callable[[ProjectLayout], Path]) -> tuple[dict[str, Any], Path]:
    """A report (`lsflow review`, `lsflow agreement`) of an export file into --out (default ./<report>), or
    of the store of an `lsflow export --path` folder's project into its folder there; and where it went."""
    if (export_file is None) == (export_path is None) or (export_path is None) != (project_id is None):
        raise click.UsageError("give an EXPORT_FILE, or --path and --project")
    if export_path is not None and out_dir is not None:
        raise click.UsageError(f"--out is for an export file; with --path the report goes to the project's {report}/")
    try:
        if export_file is not None:
            out = out_dir or Path(report)
            return of_file(export_file, out), out
        assert export_path is not None and project_id is not None
        layout = ProjectLayout.for_export_path(export_path, project_id)
        if not layout.store_dir.is_dir():
            raise click.ClickException(f"project {project_id}: no store in {layout.project_dir} (run "
                                       f"`lsflow export {project_id} FORMAT --path {export_path}` first)")
        return of_project(layout), folder(layout)
    except (ExportFormatError, ValueError) as error:
        raise click.ClickException(str(error)) from None



# --- lsflow agreement --------------------------------------------------------------------------------


@main.command("agreement")
@click.argument("export_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the agreement of EXPORT_FILE goes [default: ./agreement].")
@click.option("--path", "export_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An `lsflow export --path` folder: the store of its project --project instead of a file; the "
                   "report goes to PATH/.lsflow/project-<id>/agreement/.")
@click.option("--project", "project_id", help="With --path: the project.")
def agreement_command(export_file: Path | None, out_dir: Path | None, export_path: Path | None,
                      project_id: str | None) -> None:
    """Agreement between annotators on tasks annotated more than once: region F1 (IoU-matched, same label)
    per class, annotator pair and task; Krippendorff's alpha, Fleiss' and Cohen's kappa for choices.
    Writes agreement.json and a README.md report."""
    from lsflow.project.agreement import REPORT_FILE, agreement_export, agreement_project, number

    result, out = _file_or_store("agreement", export_file, out_dir, export_path, project_id,
                                 agreement_export, agreement_project, lambda layout: layout.agreement_dir)
    regions = result["regions"]
    click.echo(f"{result['tasks_compared']} of {result['tasks']} tasks annotated by two or more annotators; "
               f"region F1 {number(regions['overall']['f1'])}")
    for label, row in regions["by_class"].items():
        click.echo(f"    {label}: F1 {number(row['f1'])} ({row['matched']} matched)")
    for pair, row in regions["by_pair"].items():
        click.echo(f"    {pair}: F1 {number(row['f1'])}")
    for control, stats in result["classifications"].items():
        click.echo(f"{control}: {stats['items']} items, Krippendorff's alpha {number(stats['krippendorff_alpha'])}, "
                   f"Fleiss' kappa {number(stats['fleiss_kappa'])}")
    click.echo(f"report: {out / REPORT_FILE}")


if __name__ == "__main__":
    sys.exit(main())
