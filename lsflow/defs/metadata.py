"""How lsflow's results read in the Dagster UI: metadata tables and check results."""

from __future__ import annotations

from typing import Any

import dagster as dg
import orjson

from lsflow.core.formats.base import CheckOutcome
from lsflow.core.pipeline.versions import CARD_DIR, CARD_FILE, MANIFEST_FILE, PublishedVersion
from lsflow.project.datasets import check_is_blocking
from lsflow.sources.media import MediaResolver


def label_table(labels: dict[str, int]) -> dg.MetadataValue:
    rows = "\n".join(f"| {name} | {count} |" for name, count in sorted(labels.items(), key=lambda kv: -kv[1]))
    return dg.MetadataValue.md("| label | regions |\n|---|---|\n" + rows if rows else "no labelled regions")


def media_metadata(log: dg.DagsterLogManager, media: MediaResolver) -> dict[str, Any]:
    """Counts of the task media this run looked up; each missing or refused kind logged with its reason."""
    report = media.report().as_dict()
    for problem in report["problems"]:
        log.warning(f"media {problem['status']} ({problem['references']}, e.g. {problem['example']}): "
                    f"{problem['reason']}")
    rows = "\n".join(f"| {p['status']} | {p['references']} | {_cell(p['reason'])} | `{_cell(p['example'])}` |"
                     for p in report["problems"])
    return {
        **{f"media_{count}": report[count] for count in ("resolved", "downloaded", "cached", "missing", "refused")},
        "media_problems": dg.MetadataValue.md(
            "| outcome | files | reason | example |\n|---|---|---|---|\n" + rows if rows else "none"
        ),
    }


def version_metadata(version: PublishedVersion) -> dict[str, Any]:
    """The version a materialization published (or found unchanged): its id, immutable path, what changed, card."""
    manifest = orjson.loads((version.path / MANIFEST_FILE).read_bytes())
    # Against the version shown before: a build that changed nothing published nothing and changed nothing.
    changes = manifest.get("changes") or {}
    if not version.new:
        changes = dict.fromkeys(changes, 0)
    metadata: dict[str, Any] = {
        "dataset_version": version.version_id,
        "version_path": dg.MetadataValue.path(str(version.path)),
        "new_version": version.new,
        "previous_version": version.previous or "",
        **{f"version_{name}": count for name, count in changes.items()},
    }
    if (version.path / CARD_FILE).is_file():
        metadata["dataset_card"] = dg.MetadataValue.path(str(version.path / CARD_FILE))
        for picture in sorted((version.path / CARD_DIR).glob("*.png")):
            metadata[f"card_{picture.stem}"] = dg.MetadataValue.path(str(picture))
    return metadata


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def check_result(key: dg.AssetKey, outcome: CheckOutcome, format_name: str,
                 partition: str | None = None) -> dg.AssetCheckResult:
    """A blocking check fails as an ERROR (downstream assets do not run); the others WARN.

    The project is named in the metadata: partitioned asset checks are a preview feature of Dagster 1.13
    (breaking changes allowed in patch releases), so the results are recorded without a partition."""
    metadata: dict = {"project": partition} if partition is not None else {}
    metadata.update(outcome.metadata)
    if outcome.problems:
        metadata["problems"] = dg.MetadataValue.md("\n".join(f"- {p}" for p in outcome.problems))
    severity = dg.AssetCheckSeverity.ERROR if check_is_blocking(format_name, outcome.name) else \
        dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(asset_key=key, check_name=outcome.name, passed=outcome.passed, metadata=metadata,
                               severity=severity)
