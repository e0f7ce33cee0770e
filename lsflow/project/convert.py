"""Converting a Label Studio export file: `lsflow convert`."""

from __future__ import annotations

from pathlib import Path

from lsflow.core.model.label_config import LabelConfig
from lsflow.project.datasets import BuiltDatasets, DatasetOptions, write_datasets
from lsflow.sources.export_file import iter_export_entries, iter_export_tasks
from lsflow.sources.media import MediaResolver


def convert_export(export_file: Path, formats: list[str], out_dir: Path, config: LabelConfig | None,
                   media: MediaResolver | None, settings: DatasetOptions = DatasetOptions()) -> BuiltDatasets:
    """Every format from one pass over the export, each published under `out_dir/<FORMAT>/` atomically."""
    return write_datasets(lambda: iter_export_tasks(export_file),
                          lambda image_key: iter_export_entries(export_file, image_key),
                          formats, out_dir, config, media, settings)
