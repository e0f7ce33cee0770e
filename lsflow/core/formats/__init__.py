"""The format registry: Label Studio's format names to their writers. The one list of formats."""

from __future__ import annotations

from lsflow.core.formats.asr_manifest import AsrManifestWriter
from lsflow.core.formats.audio_segments import AudioSegmentsWriter
from lsflow.core.formats.base import DatasetWriter
from lsflow.core.formats.brush_coco import BrushToCocoWriter
from lsflow.core.formats.brush_numpy import BrushToNumpyWriter
from lsflow.core.formats.brush_png import BrushToPngWriter
from lsflow.core.formats.coco import CocoWithImagesWriter, CocoWriter
from lsflow.core.formats.coco_video import CocoVideoWriter
from lsflow.core.formats.conll import ConllWriter
from lsflow.core.formats.csv import CsvWriter, TsvWriter
from lsflow.core.formats.json import JsonWriter
from lsflow.core.formats.json_min import JsonMinWriter
from lsflow.core.formats.mot import MotWriter
from lsflow.core.formats.rttm import RttmWriter
from lsflow.core.formats.spacy import SpacyWriter
from lsflow.core.formats.timeseries_parquet import TimeseriesParquetWriter
from lsflow.core.formats.video_segments import VideoSegmentsWriter
from lsflow.core.formats.voc import VocWriter
from lsflow.core.formats.yolo import YoloWithImagesWriter, YoloWriter
from lsflow.core.formats.yolo_obb import YoloObbWithImagesWriter, YoloObbWriter
from lsflow.core.formats.yolo_pose import YoloPoseWriter
from lsflow.core.formats.yolo_seg import YoloSegWriter
from lsflow.core.formats.yolo_video import YoloObbVideoWriter, YoloVideoWriter

WRITERS: dict[str, type[DatasetWriter]] = {
    writer.name: writer
    for writer in (
        JsonWriter,
        JsonMinWriter,
        CsvWriter,
        TsvWriter,
        ConllWriter,
        SpacyWriter,
        AsrManifestWriter,
        CocoWriter,
        CocoWithImagesWriter,
        VocWriter,
        YoloWriter,
        YoloWithImagesWriter,
        YoloObbWriter,
        YoloObbWithImagesWriter,
        YoloSegWriter,
        YoloPoseWriter,
        BrushToNumpyWriter,
        BrushToPngWriter,
        BrushToCocoWriter,
        MotWriter,
        YoloVideoWriter,
        YoloObbVideoWriter,
        CocoVideoWriter,
        VideoSegmentsWriter,
        AudioSegmentsWriter,
        RttmWriter,
        TimeseriesParquetWriter,
    )
}


class UnknownFormatError(ValueError):
    pass


def writer_class(name: str) -> type[DatasetWriter]:
    try:
        return WRITERS[name]
    except KeyError:
        raise UnknownFormatError(
            f"unknown format '{name}'; lsflow writes: {', '.join(sorted(WRITERS))}"
        ) from None


def parse_formats(text: str) -> list[str]:
    """`COCO,YOLO` → ['COCO', 'YOLO'], each checked against the registry (names are case-insensitive)."""
    names = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not names:
        raise UnknownFormatError("no format given")
    for name in names:
        writer_class(name)
    return list(dict.fromkeys(names))
