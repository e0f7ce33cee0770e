"""Load a dataset lsflow wrote with a third-party importer, as a user would; print what it read as JSON.

Runs in the importer virtualenv (`.venv-importers`, made by `make test`), never imports lsflow:

    python load_with_importer.py TOOL FORMAT DATASET_DIR [--voc-mode MODE]

TOOL is `datumaro` or `supervision`, FORMAT `coco`, `voc` or `yolo`. The output is
`{"images": {<image file stem>: [{"label": <class name or null>, "box": [x1, y1, x2, y2]}, ...]},
"image_files": {<image file stem>: <image file the importer points at exists>}, "warnings": [...]}`:
every axis-aligned box the importer read, in its own pixel coordinates (x2, y2
the far edges), labelled with the name the importer gives its class (null when it has none), and the
warnings the importer logged. Where an importer wants a layout lsflow does not write (Datumaro's
`annotations/instances_<subset>.json`, VOC's `ImageSets/Main/<subset>.txt` and `labelmap.txt`), the
files are arranged in a scratch folder beside the dataset the way docs/formats.md tells users to.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

BOXES: dict[str, list[dict]] = {}
IMAGE_FILES: dict[str, bool] = {}


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def add(image: str, label: str | None, box) -> None:
    BOXES.setdefault(Path(image).stem, []).append({"label": label, "box": [float(v) for v in box]})


def datumaro(fmt: str, dataset: Path, scratch: Path, voc_mode: str) -> None:
    import datumaro as dm

    if fmt == "coco":
        # Datumaro finds COCO as <root>/annotations/instances_<subset>.json with images in <root>/images;
        # lsflow's file_name is `images/<file>` relative to the dataset folder, so Datumaro looks for
        # <root>/images/images/<file>. (Copies: it refuses image paths that resolve outside <root>/images.)
        (scratch / "annotations").mkdir()
        shutil.copyfile(dataset / "result.json", scratch / "annotations" / "instances_default.json")
        shutil.copytree(dataset / "images", scratch / "images" / "images")
        loaded = dm.Dataset.import_from(str(scratch), "coco_instances")
    elif fmt == "voc":
        # The VOC devkit lists each subset's images in ImageSets/Main/<subset>.txt; Datumaro also needs
        # the class names in labelmap.txt (without it, only the 20 PASCAL classes exist).
        shutil.copytree(dataset / "Annotations", scratch / "Annotations")
        shutil.copytree(dataset / "images", scratch / "JPEGImages")
        stems = sorted(path.stem for path in (dataset / "Annotations").glob("*.xml"))
        names = sorted({node.findtext("name") for stem in stems
                        for node in ElementTree.parse(dataset / "Annotations" / f"{stem}.xml").getroot().iter("object")})
        (scratch / "ImageSets" / "Main").mkdir(parents=True)
        (scratch / "ImageSets" / "Main" / "default.txt").write_text("".join(f"{stem}\n" for stem in stems))
        (scratch / "labelmap.txt").write_text("".join(f"{name}:::\n" for name in names))
        loaded = dm.Dataset.import_from(str(scratch), "voc_detection", coordinate_mode=voc_mode)
    else:
        # "yolo" detects the Ultralytics layout (data.yaml); the sizes come from the images.
        loaded = dm.Dataset.import_from(str(dataset), "yolo")
    labels = loaded.categories()[dm.AnnotationType.label]
    for item in loaded:
        BOXES.setdefault(Path(item.id).stem, [])
        IMAGE_FILES[Path(item.id).stem] = bool(getattr(item.media, "path", None)) and Path(item.media.path).is_file()
        for annotation in item.annotations:
            if annotation.type == dm.AnnotationType.bbox:
                x, y, w, h = annotation.get_bbox()
                add(item.id, None if annotation.label is None else labels[annotation.label].name, (x, y, x + w, y + h))


def supervision(fmt: str, dataset: Path) -> None:
    import supervision as sv

    if fmt == "coco":
        # `file_name` is relative to the folder given as images_directory_path: the dataset folder.
        parts = [sv.DetectionDataset.from_coco(images_directory_path=str(dataset),
                                               annotations_path=str(dataset / "result.json"))]
    elif fmt == "voc":
        parts = [sv.DetectionDataset.from_pascal_voc(images_directory_path=str(dataset / "images"),
                                                     annotations_directory_path=str(dataset / "Annotations"))]
    else:
        parts = [sv.DetectionDataset.from_yolo(images_directory_path=str(dataset / "images" / split),
                                               annotations_directory_path=str(dataset / "labels" / split),
                                               data_yaml_path=str(dataset / "data.yaml"))
                 for split in ("train", "val", "test") if any((dataset / "images" / split).iterdir())]
    for part in parts:
        for image_path, detections in part.annotations.items():
            BOXES.setdefault(Path(image_path).stem, [])
            IMAGE_FILES[Path(image_path).stem] = Path(image_path).is_file()
            for box, class_id in zip(detections.xyxy, detections.class_id):
                add(image_path, part.classes[int(class_id)], box)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", choices=("datumaro", "supervision"))
    parser.add_argument("format", choices=("coco", "voc", "yolo"))
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--voc-mode", default="dm-zero-based", choices=("dm-zero-based", "voc-one-based"),
                        help="Datumaro's VOC coordinate_mode")
    args = parser.parse_args()
    warnings = Warnings()
    logging.getLogger().addHandler(warnings)
    dataset = args.dataset.resolve()
    # Only the JSON goes to stdout: whatever the importers print goes to stderr.
    with tempfile.TemporaryDirectory(prefix="importer-view-") as scratch, contextlib.redirect_stdout(sys.stderr):
        if args.tool == "datumaro":
            datumaro(args.format, dataset, Path(scratch), args.voc_mode)
        else:
            supervision(args.format, dataset)
    json.dump({"images": BOXES, "image_files": IMAGE_FILES, "warnings": warnings.messages}, sys.stdout)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
