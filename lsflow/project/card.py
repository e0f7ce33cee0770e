"""The dataset card of a version: `README.md` (Hugging Face dataset-card style) and `lsflow_card/*.png`.

    README.md                    YAML front matter (pretty_name, tags, task_categories, size_categories),
                                 then: summary, classes per split, annotators, dates, drops, how it was made
    lsflow_card/class_counts.png regions per class and split, a grouped bar chart
    lsflow_card/preview.png      image formats only: up to 9 sample images with the dataset's own shapes

Counts, annotators and dates come from the version's task table (one row per task). The preview is
drawn from the dataset's own files — what a trainer reads: COCO `bbox`/`segmentation`/`keypoints`,
VOC `bndbox` (its pixel numbering undone), YOLO rows de-normalized with the image's size — on the
image the dataset holds, else the task's media found through `media`. Only what the preview needs is
read: COCO's file once in chunks (only the chosen images' records are parsed), the chosen tasks' label
files otherwise. Everything is a function of the inputs: the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
import xml.etree.ElementTree as ElementTree
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from lsflow.core.formats.shared.vision import FILES_FILE as MAPPING_FILE
from lsflow.core.model.media_files import MediaLookup
from lsflow.core.pipeline.versions import CARD_DIR, CARD_FILE, FILES_FILE, TASKS_FILE

CLASS_COUNTS_PNG = "class_counts.png"
PREVIEW_PNG = "preview.png"
REPORT_FILE = "lsflow_report.json"
DROPPED_FILE = "lsflow_dropped.jsonl"

COCO_FORMATS = {"COCO": "result.json", "COCO_WITH_IMAGES": "result.json", "BRUSH_TO_COCO": "result_coco.json"}
YOLO_FORMATS = {"YOLO": "box", "YOLO_WITH_IMAGES": "box", "YOLO_OBB": "obb", "YOLO_OBB_WITH_IMAGES": "obb",
                "YOLO_SEG": "seg", "YOLO_POSE": "pose"}
VISION_FORMATS = frozenset({*COCO_FORMATS, *YOLO_FORMATS, "VOC"})
TASK_CATEGORIES = {"YOLO_SEG": "image-segmentation", "BRUSH_TO_COCO": "image-segmentation",
                   "BRUSH_TO_NUMPY": "image-segmentation", "BRUSH_TO_PNG": "image-segmentation",
                   "YOLO_POSE": "keypoint-detection", "CONLL2003": "token-classification",
                   "SPACY": "token-classification", "ASR_MANIFEST": "automatic-speech-recognition"}
SPLIT_ORDER = ("train", "val", "test")
NO_SPLIT = "all"

# Preview: a grid of tiles, each an image scaled to fit TILE × TILE under a caption strip.
TILE = 320
CAPTION = 20
GRID_COLUMNS = 3
PREVIEW_TASKS = 9
IMAGE_LOOKUPS = 60  # tasks whose image is looked for at most (a lookup may download)
LINE_WIDTH = 2
# Shape colours: the dataset's classes in name order take the palette's colours in turn (see `class_colours`).
PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (0, 170, 170),
           (240, 50, 230), (128, 0, 0), (0, 128, 128), (170, 110, 40), (128, 128, 0), (0, 0, 128),
           (255, 200, 0), (90, 90, 90))  # strong colours only: a shape stays visible on a photo
SPLIT_COLOURS = {"train": (31, 119, 180), "val": (255, 127, 14), "test": (44, 160, 44), NO_SPLIT: (31, 119, 180)}
CHART_CLASSES = 40  # the chart shows the most frequent classes; the table lists them all
CHART_WIDTH = 960
FONT_SIZE = 14


Colour = tuple[int, int, int]


def class_colours(names: Iterable[str]) -> dict[str, Colour]:
    """Each class's colour in the preview: the classes sorted by name take the palette in turn, so
    the first len(PALETTE) classes never share one. `names`: the task table's and the report's labels."""
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(sorted(set(names)))}


def _colour(name: str, colours: dict[str, Colour]) -> Colour:
    """A class outside `colours` (COCO's `keypoints` category, an unknown YOLO id) gets one from its name."""
    found = colours.get(name)
    if found is None:
        found = PALETTE[int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % len(PALETTE)]
    return found


def write_card(folder: Path, manifest: dict, tasks: pa.Table | Path, media: MediaLookup | None = None) -> None:
    """Write README.md and lsflow_card/*.png into `folder` (a finished dataset of one format). `tasks`: the
    version's task table, or its Parquet file (read a batch at a time: a million tasks never in memory)."""
    report = _read_json(folder / REPORT_FILE)
    format_name = str(manifest.get("format") or report.get("format") or "")
    card_dir = folder / CARD_DIR
    card_dir.mkdir(exist_ok=True)
    facts = task_facts(tasks)
    _save_png(class_counts_chart(facts.splits, facts.counts), card_dir / CLASS_COUNTS_PNG)
    colours = class_colours([*facts.counts, *(report.get("labels") or {})])
    try:
        preview_note = write_preview(folder, format_name, manifest, facts, media, card_dir / PREVIEW_PNG, colours)
    except (OSError, ValueError, KeyError, IndexError) as error:  # the card describes; it never blocks a version
        (card_dir / PREVIEW_PNG).unlink(missing_ok=True)
        preview_note = f"drawing it failed ({type(error).__name__}: {error})"
    text = render_card(manifest, report, facts, preview_note)
    (folder / CARD_FILE).write_text(text, encoding="utf-8")


# --- facts from the task table ------------------------------------------------------------------------


_FACTS_BATCH = 8192  # tasks summed up at a time (65 536 took ~50 MB more)


@dataclass
class TaskFacts:
    """What the card says about a version's tasks, summed up a batch of tasks at a time."""

    tasks: int = 0
    splits: list[str] = field(default_factory=list)  # train, val, test order; "all" for formats without splits
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # class → split → regions
    annotators: list[tuple[str, int]] = field(default_factory=list)  # annotator → annotations, most first
    first_update: str | None = None  # the first and last `updated_at` of the annotations
    last_update: str | None = None
    ground_truth: int = 0  # annotations marked ground truth
    labelled: np.ndarray | None = None  # the ids of tasks with labels; None for no tasks


def task_facts(tasks: pa.Table | Path) -> TaskFacts:
    facts = TaskFacts()
    present: set[str] = set()
    annotators: Counter[str] = Counter()
    labelled: list[np.ndarray] = []
    for batch in _task_batches(tasks):
        facts.tasks += batch.num_rows
        split_column = pc.fill_null(batch.column("split"), NO_SPLIT)
        present.update(s for s in pc.unique(split_column).to_pylist() if s is not None)
        labels = batch.column("labels")
        flat = pc.list_flatten(labels)
        if len(flat):
            region_splits = pc.take(split_column, pc.list_parent_indices(labels))
            grouped = pa.table({"label": pc.fill_null(flat, "(no label)"), "split": region_splits}).group_by(
                ["label", "split"]).aggregate([([], "count_all")])
            for label, split, count in zip(grouped.column("label").to_pylist(), grouped.column("split").to_pylist(),
                                           grouped.column("count_all").to_pylist()):
                per_split = facts.counts.setdefault(label, {})
                per_split[split] = per_split.get(split, 0) + count
        lengths = pc.fill_null(pc.list_value_length(labels), 0)
        labelled.append(pc.filter(batch.column("task_id"), pc.greater(lengths, 0)).to_numpy())
        annotations = pc.list_flatten(batch.column("annotations"))
        if isinstance(annotations, pa.StructArray) and len(annotations):
            counted = pc.value_counts(pc.fill_null(annotations.field("annotator"), "(unknown)"))
            annotators.update(dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist())))
            extremes = pc.min_max(annotations.field("updated_at"))
            first, last = extremes["min"].as_py(), extremes["max"].as_py()
            if first is not None and (facts.first_update is None or first < facts.first_update):
                facts.first_update = first
            if last is not None and (facts.last_update is None or last > facts.last_update):
                facts.last_update = last
            facts.ground_truth += pc.sum(pc.fill_null(annotations.field("ground_truth"), False).cast(pa.int64())
                                         ).as_py() or 0
    facts.splits = [s for s in SPLIT_ORDER if s in present] + sorted(s for s in present if s not in SPLIT_ORDER)
    if not facts.splits:
        facts.splits = [NO_SPLIT]
    facts.annotators = sorted(annotators.items(), key=lambda pair: (-pair[1], pair[0]))
    if facts.tasks:
        facts.labelled = np.concatenate(labelled)
    return facts


def _task_batches(tasks: pa.Table | Path) -> Iterator[pa.RecordBatch]:
    if isinstance(tasks, pa.Table):
        return iter(tasks.to_batches(max_chunksize=_FACTS_BATCH))
    return pq.ParquetFile(tasks, pre_buffer=False).iter_batches(batch_size=_FACTS_BATCH)


def size_category(count: int) -> str:
    """Hugging Face's size_categories bucket for `count` rows."""
    bounds = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
    for bound, name in bounds:
        if count < bound:
            return name
    return "n>1B"


# --- README.md ----------------------------------------------------------------------------------------


def render_card(manifest: dict, report: dict, facts: TaskFacts, preview_note: str | None) -> str:
    format_name = str(manifest.get("format") or report.get("format") or "")
    project = manifest.get("project_id")
    pretty = f"Label Studio project {project} ({format_name})" if project else f"Label Studio dataset ({format_name})"
    front: dict[str, Any] = {"pretty_name": pretty, "tags": ["lsflow", "label-studio", format_name.lower()]}
    category = TASK_CATEGORIES.get(format_name) or ("object-detection" if format_name in VISION_FORMATS else None)
    if category:
        front["task_categories"] = [category]
    front["size_categories"] = [size_category(facts.tasks)]
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip(),
             "---", "", f"# {pretty}", ""]
    lines += _summary(manifest, report, facts.tasks)
    lines += _class_table(facts.splits, facts.counts, report)
    lines += _annotators(facts)
    lines += _drops(report)
    lines += _how_made(manifest, format_name)
    lines += ["## Pictures", "", f"![Regions per class and split]({CARD_DIR}/{CLASS_COUNTS_PNG})", ""]
    if preview_note is None:
        lines += [f"![Sample images with the dataset's own shapes]({CARD_DIR}/{PREVIEW_PNG})", "",
                  "The shapes are drawn from this dataset's files, as a trainer reads them, on the task images "
                  "(first tasks by id that have shapes), the class name beside each.", ""]
    else:
        lines += [f"No preview: {preview_note}.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _summary(manifest: dict, report: dict, tasks: int) -> list[str]:
    project = manifest.get("project_id")
    url = manifest.get("label_studio_url")
    project_text = _code(project) if project is not None else "—"
    if url and project is not None:
        project_text += f" on {str(url).rstrip('/')}/projects/{project}"
    snapshot = manifest.get("snapshot") or {}
    options = manifest.get("options") or {}
    rows = [
        ("Project", project_text),
        ("Format", _code(manifest.get("format"))),
        ("Version", _code(manifest.get("version"))),
        ("Previous version", _code(manifest.get("previous_version")) if manifest.get("previous_version") else "none"),
        ("Created", _text(manifest.get("created_at"))),
        ("Snapshot", f"{_code(snapshot.get('id'))} (md5 {_code(snapshot.get('md5'))})" if snapshot.get("id")
         else "none"),
        ("Label config sha256", _code(manifest.get("label_config_sha256"))),
        ("lsflow", _code(manifest.get("lsflow_version"))),
        ("Annotation policy", _code(manifest.get("annotation_policy"))),
        ("Options", ", ".join(f"{_code(k)}={_code(v)}" for k, v in sorted(options.items())) or "none"),
        ("Tasks", f"{tasks:,}"),
    ]
    if report:
        rows.append(("Regions", f"{report.get('regions_in', 0):,} in the annotations, "
                                f"{report.get('regions_written', 0):,} written ({report.get('regions_clipped', 0):,} "
                                f"clipped to the image), {report.get('regions_dropped', 0):,} dropped"))
    changes = manifest.get("changes")
    if changes:
        rows.append(("Since the previous version", f"{changes.get('tasks_added', 0):,} tasks added, "
                                                   f"{changes.get('tasks_removed', 0):,} removed, "
                                                   f"{changes.get('tasks_changed', 0):,} changed"))
    return ["## Summary", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]


def _class_table(splits: list[str], counts: dict[str, dict[str, int]], report: dict) -> list[str]:
    written = report.get("labels") or {}
    classes = sorted(set(counts) | set(written),
                     key=lambda name: (-sum(counts.get(name, {}).values()), name))
    lines = ["## Classes per split", "",
             "Regions per class (the first label of each region of the exported annotations) and split, from "
             f"the task table; the last column is what this format's files hold (`{REPORT_FILE}`), after drops.", ""]
    if not classes:
        return [*lines, "No labelled regions.", ""]
    header = ["class", *splits, "total", "in files"]
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    totals = [0] * (len(splits) + 2)
    for name in classes:
        per_split = [counts.get(name, {}).get(split, 0) for split in splits]
        values = [*per_split, sum(per_split), int(written.get(name, 0))]
        totals = [a + b for a, b in zip(totals, values)]
        lines.append(f"| {_cell(name)} | " + " | ".join(f"{v:,}" for v in values) + " |")
    lines += ["| **total** | " + " | ".join(f"**{v:,}**" for v in totals) + " |", ""]
    return lines


def _annotators(facts: TaskFacts) -> list[str]:
    annotators, first, last, ground_truth = facts.annotators, facts.first_update, facts.last_update, facts.ground_truth
    lines = ["## Annotators", ""]
    if not annotators:
        return [*lines, "No annotations.", ""]
    lines += ["| annotator | annotations |", "|---|---:|"]
    lines += [f"| {_cell(name)} | {count:,} |" for name, count in annotators]
    lines += ["", "## Dates", "",
              f"Annotations last updated between {_text(first)} and {_text(last)}"
              f" ({sum(c for _, c in annotators):,} annotations, {ground_truth:,} marked ground truth).", ""]
    return lines


def _drops(report: dict) -> list[str]:
    dropped = report.get("dropped_by_reason") or {}
    lines = ["## Drops", ""]
    if dropped:
        lines += ["Regions of the annotations this format could not hold, by reason "
                  f"(each one listed in `{DROPPED_FILE}`):", "", "| reason | regions |", "|---|---:|"]
        lines += [f"| {_cell(reason)} | {count:,} |"
                  for reason, count in sorted(dropped.items(), key=lambda pair: (-pair[1], pair[0]))]
        lines.append("")
    else:
        lines += ["No region was dropped.", ""]
    for key, what in (("annotations_skipped", "Annotations left out"), ("images_skipped", "Images left out")):
        skipped = report.get(key) or {}
        if skipped:
            lines += [f"{what}: " + "; ".join(f"{_text(reason)}: {count:,}" for reason, count in sorted(
                skipped.items(), key=lambda pair: (-pair[1], pair[0]))) + ".", ""]
    return lines


def _how_made(manifest: dict, format_name: str) -> list[str]:
    snapshot = (manifest.get("snapshot") or {}).get("id")
    return ["## How it was made", "",
            f"lsflow {manifest.get('lsflow_version') or ''} took a snapshot of the Label Studio project"
            f"{' (' + _code(snapshot) + ')' if snapshot else ''}, normalized it into its Parquet store "
            f"(tasks, annotations, regions), chose each task's annotations by the policy "
            f"{_code(manifest.get('annotation_policy'))} and wrote them as {format_name}. Every region is either "
            f"written or dropped with its reason: the dropped ones are listed in `{DROPPED_FILE}`, the totals in "
            f"`{REPORT_FILE}`. The version's files with their sha256 are in `{FILES_FILE}`, its tasks (content hash, "
            f"media, annotations and annotators) in `{TASKS_FILE}`; the version id is derived from the files' "
            "sha256s, so the same content always has the same id.", ""]


def _code(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return "`" + str(value).replace("`", "'") + "`"


def _text(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def _cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _read_json(path: Path) -> dict:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# --- class_counts.png ---------------------------------------------------------------------------------


def _font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: Any) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    if _text_width(draw, text, font) <= width:
        return text
    while text and _text_width(draw, text + "…", font) > width:
        text = text[:-1]
    return text + "…"


def _nice_step(maximum: int, ticks: int = 5) -> int:
    raw = max(maximum, 1) / ticks
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw:
            return max(int(multiple * magnitude), 1)
    return int(10 * magnitude)


def class_counts_chart(splits: list[str], counts: dict[str, dict[str, int]]) -> Image.Image:
    """Horizontal grouped bars: one group per class (most frequent first), one bar per split."""
    font, small = _font(FONT_SIZE), _font(FONT_SIZE - 2)
    classes = sorted(counts, key=lambda name: (-sum(counts[name].values()), name))
    shown = classes[:CHART_CLASSES]
    bar, gap, top, bottom = 14, 10, 56, 40
    group = bar * len(splits) + gap
    height = top + max(len(shown), 1) * group + bottom
    image = Image.new("RGB", (CHART_WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    name_width = min(max((_text_width(draw, n, font) for n in shown), default=60) + 10, 240)
    x0, x1 = name_width + 12, CHART_WIDTH - 70
    title = "Regions per class and split"
    if len(classes) > len(shown):
        title += f" (the {len(shown)} most frequent of {len(classes)} classes)"
    draw.text((10, 8), title, fill="black", font=font)
    legend_x = 10
    for split in splits:
        draw.rectangle((legend_x, 32, legend_x + 12, 44), fill=_split_colour(split, splits))
        draw.text((legend_x + 16, 30), split, fill="black", font=small)
        legend_x += 16 + _text_width(draw, split, small) + 18
    maximum = max((max(c.values()) for c in counts.values() if c), default=0)
    step = _nice_step(maximum)
    axis_max = max(step * math.ceil(maximum / step), step)
    plot_bottom = top + max(len(shown), 1) * group
    for tick in range(0, axis_max + 1, step):
        x = x0 + (x1 - x0) * tick / axis_max
        draw.line((x, top - 4, x, plot_bottom), fill=(225, 225, 225) if tick else "black", width=1)
        label = f"{tick:,}"
        draw.text((x - _text_width(draw, label, small) / 2, plot_bottom + 6), label, fill="black", font=small)
    if not shown:
        draw.text((x0 + 10, top + 4), "no labelled regions", fill="black", font=font)
    for index, name in enumerate(shown):
        y = top + index * group
        draw.text((10, y + (bar * len(splits)) / 2 - FONT_SIZE / 2 - 1), _fit(draw, name, font, name_width),
                  fill="black", font=font)
        for position, split in enumerate(splits):
            value = counts[name].get(split, 0)
            yb = y + position * bar
            xe = x0 + (x1 - x0) * value / axis_max
            if value:
                draw.rectangle((x0, yb + 1, max(xe, x0 + 1), yb + bar - 1), fill=_split_colour(split, splits))
            draw.text((xe + 4, yb), f"{value:,}", fill="black", font=small)
    draw.line((x0, top - 4, x0, plot_bottom), fill="black", width=1)
    return image


def _split_colour(split: str, splits: list[str]) -> tuple[int, int, int]:
    return SPLIT_COLOURS.get(split) or PALETTE[splits.index(split) % len(PALETTE)]


def _save_png(image: Image.Image, path: Path) -> None:
    """PNG without metadata chunks: the same pixels always give the same bytes."""
    image.save(path, format="PNG", optimize=False, compress_level=6)


# --- preview.png --------------------------------------------------------------------------------------


@dataclass
class Mark:
    """One exported object as the dataset's file states it, in the image's pixels."""

    name: str
    box: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax
    polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    keypoints: list[tuple[float, float]] = field(default_factory=list)
    mask: Any = None  # a COCO RLE (decoded only for the chosen images)


@dataclass
class Sample:
    task_id: int
    image: Path
    marks: list[Mark]
    normalized: bool = False  # YOLO: coordinates in [0, 1], de-normalized with the image's own size


def write_preview(folder: Path, format_name: str, manifest: dict, facts: TaskFacts, media: MediaLookup | None,
                  path: Path, colours: dict[str, Colour] | None = None) -> str | None:
    """Draw the preview into `path`; None when written, else why there is none (said in the card)."""
    if format_name not in VISION_FORMATS:
        path.unlink(missing_ok=True)
        return f"{format_name or 'this format'} is not an image format"
    samples = list(_samples(folder, format_name, manifest, facts.labelled, media))
    if not samples:
        path.unlink(missing_ok=True)
        return ("no task with exported shapes has an image that could be read "
                "(the dataset holds no copies and the media was not reachable)")
    tiles = [tile for tile in (_tile(sample, colours or {}) for sample in samples) if tile is not None]
    if not tiles:
        path.unlink(missing_ok=True)
        return "no sample image could be read"
    _save_png(_grid(tiles), path)
    return None


def _samples(folder: Path, format_name: str, manifest: dict, labelled: np.ndarray | None,
             media: MediaLookup | None) -> Iterator[Sample]:
    mapping = _FilesMapping(folder)
    if format_name in COCO_FORMATS:
        yield from _coco_samples(folder / COCO_FORMATS[format_name], folder, mapping, media)
        return
    lookups = 0
    found = 0
    origin = int(str((manifest.get("options") or {}).get("voc_pixel_origin", "1")))
    kind = YOLO_FORMATS.get(format_name, "")
    names = _yolo_names(folder) if kind else []
    for task_id in _candidates(mapping.task_ids(), labelled):
        entry = mapping.get(task_id) or {}
        marks = _voc_marks(folder, entry, origin) if format_name == "VOC" else _yolo_marks(folder, entry, kind, names)
        if not marks:
            continue
        lookups += 1
        image = _image_path(folder, entry, media)
        if image is not None:
            yield Sample(task_id, image, marks, normalized=bool(kind))
            found += 1
            if found == PREVIEW_TASKS:
                return
        if lookups >= IMAGE_LOOKUPS:
            return


_CANDIDATES_BATCH = 4096


def _candidates(listed: np.ndarray, labelled: np.ndarray | None) -> Iterator[int]:
    """The listed task ids (sorted, unique) that have labels, in order, found a batch at a time: the
    preview stops after a few, and a million ids are never sorted together (as `np.isin` would)."""
    if labelled is not None and len(labelled) > 1 and not np.all(labelled[1:] >= labelled[:-1]):
        labelled = np.sort(labelled)
    for start in range(0, len(listed), _CANDIDATES_BATCH):
        batch = listed[start:start + _CANDIDATES_BATCH]
        if labelled is not None:
            if not len(labelled):
                return
            found = labelled[np.minimum(np.searchsorted(labelled, batch), len(labelled) - 1)]
            batch = batch[found == batch]
        yield from map(int, batch)


_MAPPING_TASK = re.compile(rb'^\{"task":(-?\d+),')


class _FilesMapping:
    """`lsflow_files.jsonl` by task id: each task's line found by its offset, parsed only when asked for.
    Ids and offsets are two integer arrays, so a million-task dataset's mapping takes 16 MB."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / MAPPING_FILE
        ids, offsets = array("q"), array("q")
        try:
            with open(self._path, "rb") as lines:
                offset = 0
                for line in lines:
                    match = _MAPPING_TASK.match(line)
                    if match is not None:
                        ids.append(int(match.group(1)))
                        offsets.append(offset)
                    elif line.strip():  # not as lsflow writes it: parsed, then
                        ids.append(int(orjson.loads(line)["task"]))
                        offsets.append(offset)
                    offset += len(line)
        except OSError:
            pass
        self._ids = np.frombuffer(ids, dtype=np.int64)
        self._offsets = np.frombuffer(offsets, dtype=np.int64)
        # Lines in task order (as a build writes them) are used as read: no sorted copies.
        self._unique = len(self._ids) < 2 or bool(np.all(self._ids[1:] > self._ids[:-1]))
        if not self._unique:
            order = np.argsort(self._ids, kind="stable")
            self._ids, self._offsets = self._ids[order], self._offsets[order]

    def task_ids(self) -> np.ndarray:
        """The tasks listed, by id, each once."""
        return self._ids if self._unique else np.unique(self._ids)

    def get(self, task_id: int) -> dict | None:
        position = int(np.searchsorted(self._ids, task_id, side="right")) - 1  # the last line of the id, as a dict would
        if position < 0 or self._ids[position] != task_id:
            return None
        with open(self._path, "rb") as lines:
            lines.seek(int(self._offsets[position]))
            return orjson.loads(lines.readline())


def _image_path(folder: Path, entry: dict, media: MediaLookup | None) -> Path | None:
    image_file = entry.get("image_file")
    if image_file:
        local = folder / image_file
        if local.is_file():
            return local
    reference = entry.get("image")
    if media is None or not reference:
        return None
    try:
        return media.local_path(reference)
    except OSError:
        return None


def _voc_marks(folder: Path, entry: dict, origin: int) -> list[Mark]:
    marks: list[Mark] = []
    for label_file in entry.get("label_files") or ():
        try:
            root = ElementTree.parse(folder / label_file).getroot()
        except (OSError, ElementTree.ParseError):
            continue
        for node in root.iter("object"):
            try:
                xmin, ymin, xmax, ymax = (float(node.findtext(f"bndbox/{k}") or "")
                                          for k in ("xmin", "ymin", "xmax", "ymax"))
            except ValueError:
                continue
            # Pixel numbers back to edges: the first pixel numbered `origin` starts at 0; xmax is the
            # last pixel's number when 1-based (its far edge), the far edge itself when 0-based.
            marks.append(Mark(node.findtext("name") or "?", box=(xmin - origin, ymin - origin, xmax, ymax)))
    return marks


def _yolo_names(folder: Path) -> list[str]:
    try:
        return (folder / "classes.txt").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def _yolo_marks(folder: Path, entry: dict, kind: str, names: list[str]) -> list[Mark]:
    """The rows still normalized: `_tile` de-normalizes them with the image's size."""
    marks: list[Mark] = []
    for label_file in entry.get("label_files") or ():
        try:
            text = (folder / label_file).read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split()
            try:
                class_id, values = int(parts[0]), [float(v) for v in parts[1:]]
            except (ValueError, IndexError):
                continue
            name = names[class_id] if 0 <= class_id < len(names) else str(class_id)
            if kind in ("box", "pose") and len(values) >= 4:
                xc, yc, w, h = values[:4]
                mark = Mark(name, box=(xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2))
                if kind == "pose":
                    rest = values[4:]
                    mark.keypoints = [(rest[i], rest[i + 1]) for i in range(0, len(rest) - 2, 3) if rest[i + 2] > 0]
                marks.append(mark)
            elif kind in ("obb", "seg") and len(values) >= 6:
                marks.append(Mark(name, polygons=[list(zip(values[0::2], values[1::2]))]))
    return marks


# COCO: lsflow's writer puts images and categories first, then one record per annotation beginning
# `{"id":N,"image_id":M,`; JSON strings escape their quotes, so the pattern only matches a record's start.
_COCO_HEAD_START = b'{"images":['
_COCO_IMAGE = re.compile(rb'\{"id":(-?\d+),')
_COCO_IMAGES_END = b'],"categories":'
_COCO_HEAD_END = b',"annotations":['
_COCO_RECORD = re.compile(rb'\{"id":\d+,"image_id":(\d+),')
_COCO_TAIL = b'],"info":'
_CHUNK = 1 << 22
_ANNOTATED_BATCH = 65536


def _coco_samples(result: Path, folder: Path, mapping: _FilesMapping,
                  media: MediaLookup | None) -> Iterator[Sample]:
    scanned = _scan_coco(result)
    if scanned is None:
        return
    layout, image_ids = scanned  # the smallest annotated ids with an image record, ascending
    chosen: list[tuple[int, Path, dict]] = []
    lookups = 0
    with open(result, "rb") as stream:
        for image_id in image_ids.tolist():
            image = layout.image(stream, image_id)
            if image is None:
                continue
            entry = mapping.get(image_id) or {"image_file": image.get("file_name")}
            entry = {**entry, "image_file": image.get("file_name") or entry.get("image_file")}
            lookups += 1
            path = _image_path(folder, entry, media)
            if path is not None:
                chosen.append((image_id, path, image))
                if len(chosen) == PREVIEW_TASKS:
                    break
            if lookups >= IMAGE_LOOKUPS:
                break
    if not chosen:
        return
    wanted = {image_id for image_id, _, _ in chosen}
    records: dict[int, list[dict]] = {image_id: [] for image_id in wanted}
    for record in _coco_records(result, layout, wanted):
        records[record["image_id"]].append(record)
    for image_id, path, _ in chosen:
        yield Sample(image_id, path, [_coco_mark(record, categories=layout.categories) for record in records[image_id]])


@dataclass
class _CocoLayout:
    """Where things are in a COCO file as lsflow writes it: each image record's id and offset (16 bytes an
    image), the categories, and the annotations' byte range. Images are parsed only when looked up."""

    image_ids: np.ndarray  # in file order
    image_starts: np.ndarray
    images_end: int  # where the images array's `]` is
    categories: dict[Any, str]
    annotations: tuple[int, int]  # [start, end) of the annotation records

    def image(self, stream: BinaryIO, image_id: int) -> dict | None:
        found = np.flatnonzero(self.image_ids == image_id)
        if not len(found):
            return None
        index = int(found[-1])  # the last record of the id, as a dict built from the list would keep
        end = int(self.image_starts[index + 1]) - 1 if index + 1 < len(self.image_starts) else self.images_end
        stream.seek(int(self.image_starts[index]))
        return orjson.loads(stream.read(end - int(self.image_starts[index])))


def _chunks(stream: BinaryIO, start: int, end: int, keep: int = 64) -> Iterator[tuple[int, bytes, int]]:
    """(file offset of the buffer, buffer, limit) over [start, end): a match starting before `limit` is
    whole in the buffer (records' starts are shorter than `keep`), one after it is found next time."""
    stream.seek(start)
    offset, buffer = start, b""
    while True:
        chunk = stream.read(min(_CHUNK, end - offset - len(buffer)))
        limit = len(buffer) if not chunk else max(len(buffer) - keep, 0)
        yield offset, buffer, limit
        if not chunk:
            return
        offset += limit
        buffer = buffer[limit:] + chunk


def _scan_coco(result: Path) -> tuple[_CocoLayout, np.ndarray] | None:
    """One pass in chunks: each image record's offset and id, the categories, each annotation record's
    image id, all found without parsing the records. None when the file is missing or not laid out as
    lsflow writes it (then no preview rather than a guess)."""
    try:
        stream = open(result, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError:
        return None
    with stream:
        size = os.fstat(stream.fileno()).st_size
        if stream.read(len(_COCO_HEAD_START)) != _COCO_HEAD_START:
            return None
        image_ids, image_starts = array("q"), array("q")
        images_end = None
        for offset, buffer, limit in _chunks(stream, len(_COCO_HEAD_START), size):
            at = buffer.find(_COCO_IMAGES_END)
            for match in _COCO_IMAGE.finditer(buffer, 0, at if at >= 0 else len(buffer)):
                if at < 0 and match.start() >= limit:
                    break
                image_starts.append(offset + match.start())
                image_ids.append(int(match.group(1)))
            if at >= 0:
                images_end = offset + at
                break
        if images_end is None:
            return None
        stream.seek(images_end + len(_COCO_IMAGES_END))
        head = stream.read(_CHUNK)
        if _COCO_HEAD_END not in head:
            return None
        try:
            categories = orjson.loads(head[:head.index(_COCO_HEAD_END)])
        except orjson.JSONDecodeError:
            return None
        start = images_end + len(_COCO_IMAGES_END) + head.index(_COCO_HEAD_END) + len(_COCO_HEAD_END)
        stream.seek(max(size - 65536, 0))
        last = stream.read()
        tail_at = last.rfind(_COCO_TAIL)
        if tail_at < 0:
            return None
        end = size - len(last) + tail_at
        # The preview looks at the annotated images of smallest id only: the ids are kept a run of an image's
        # annotations at a time (a task's records are written together) and cut down to the smallest
        # IMAGE_LOOKUPS with an image record every so often (all of them took ~24 bytes a task at a million).
        images = np.unique(np.frombuffer(image_ids, dtype=np.int64))
        annotated = np.zeros(0, dtype=np.int64)
        pending: array[int] = array("q")
        previous_id: int | None = None
        for _, buffer, limit in _chunks(stream, start, end):
            for match in _COCO_RECORD.finditer(buffer):
                if match.start() >= limit:
                    break
                image_id = int(match.group(1))
                if image_id != previous_id:
                    pending.append(image_id)
                    previous_id = image_id
            if len(pending) >= _ANNOTATED_BATCH:
                annotated = _smallest_with_image(annotated, pending, images)
                pending = array("q")
        annotated = _smallest_with_image(annotated, pending, images)
    layout = _CocoLayout(np.frombuffer(image_ids, dtype=np.int64), np.frombuffer(image_starts, dtype=np.int64),
                         images_end, {c["id"]: c["name"] for c in categories or ()}, (start, end))
    return layout, annotated


def _smallest_with_image(kept: np.ndarray, more: array, images: np.ndarray) -> np.ndarray:
    """The smallest IMAGE_LOOKUPS distinct ids of `kept` and `more` that have an image record (sorted `images`)."""
    ids = np.unique(np.concatenate((kept, np.frombuffer(more, dtype=np.int64))))
    return ids[np.isin(ids, images, assume_unique=True)][:IMAGE_LOOKUPS]


def _coco_records(result: Path, layout: _CocoLayout, wanted: set[int]) -> Iterator[dict]:
    """The annotation records of the `wanted` images, in file order (a second pass, parsing only those)."""
    start, end = layout.annotations
    with open(result, "rb") as stream, open(result, "rb") as records:
        pending: int | None = None  # the file offset of a wanted record, read once the next one starts
        for offset, buffer, limit in _chunks(stream, start, end):
            for match in _COCO_RECORD.finditer(buffer):
                if match.start() >= limit:
                    break
                if pending is not None:
                    yield _record_at(records, pending, offset + match.start() - 1)
                pending = offset + match.start() if int(match.group(1)) in wanted else None
        if pending is not None:
            yield _record_at(records, pending, end)


def _record_at(stream: BinaryIO, start: int, end: int) -> dict:
    stream.seek(start)
    return orjson.loads(stream.read(end - start))


def _coco_mark(record: dict, categories: dict[Any, str]) -> Mark:
    name = categories.get(record.get("category_id"), str(record.get("category_id")))
    mark = Mark(name)
    bbox = record.get("bbox")
    if bbox and len(bbox) == 4:
        x, y, w, h = bbox
        mark.box = (x, y, x + w, y + h)
    segmentation = record.get("segmentation")
    if isinstance(segmentation, list):
        mark.polygons = [list(zip(p[0::2], p[1::2])) for p in segmentation if isinstance(p, list) and len(p) >= 6]
    elif isinstance(segmentation, dict):
        mark.mask = segmentation
    keypoints = record.get("keypoints") or []
    mark.keypoints = [(keypoints[i], keypoints[i + 1]) for i in range(0, len(keypoints) - 2, 3) if keypoints[i + 2]]
    return mark


def _open_scaled(path: Path) -> tuple[Image.Image, tuple[int, int], float] | None:
    """The image scaled to fit TILE × TILE, its original size and the scale factor."""
    try:
        with Image.open(path) as image:
            original = image.size
            scale = min(TILE / original[0], TILE / original[1])
            target = (max(round(original[0] * scale), 1), max(round(original[1] * scale), 1))
            image.draft("RGB", target)  # JPEG: decode at a reduced size when it can
            scaled = image.convert("RGB").resize(target, Image.Resampling.BILINEAR)
    except (OSError, UnidentifiedImageError, ValueError, ZeroDivisionError):
        return None
    return scaled, original, scale


def _tile(sample: Sample, colours: dict[str, Colour]) -> Image.Image | None:
    opened = _open_scaled(sample.image)
    if opened is None:
        return None
    picture, original, scale = opened
    # YOLO rows are normalized: de-normalized with the image's own size, as Ultralytics does.
    unit = original if sample.normalized else (1, 1)
    tile = Image.new("RGB", (TILE, TILE + CAPTION), "white")
    tile.paste(picture, (0, CAPTION))
    draw = ImageDraw.Draw(tile)
    font, small = _font(FONT_SIZE - 2), _font(FONT_SIZE - 3)
    shapes = f"{len(sample.marks)} shape{'' if len(sample.marks) == 1 else 's'}"
    draw.text((4, 3), f"task {sample.task_id}  ({shapes})", fill="black", font=font)

    def at(x: float, y: float) -> tuple[float, float]:
        return x * unit[0] * scale, CAPTION + y * unit[1] * scale

    for mark in sample.marks:
        if mark.mask is not None:
            _draw_mask(tile, mark, _colour(mark.name, colours), picture.size)
    labels = []
    for mark in sample.marks:
        colour = _colour(mark.name, colours)
        anchor = None
        for polygon in mark.polygons:
            points = [at(x, y) for x, y in polygon]
            draw.line([*points, points[0]], fill=colour, width=LINE_WIDTH)
            anchor = anchor or min(points, key=lambda p: (p[1], p[0]))
        if mark.box is not None:
            (x0, y0), (x1, y1) = at(mark.box[0], mark.box[1]), at(mark.box[2], mark.box[3])
            left, top, right, bottom = min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)  # a bad file must not fail
            draw.rectangle((left, top, right, bottom), outline=colour, width=1 if mark.polygons else LINE_WIDTH)
            anchor = (left, top)
        for x, y in mark.keypoints:
            cx, cy = at(x, y)
            draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=colour, outline="black")
            anchor = anchor or (cx, cy)
        if anchor is not None:
            labels.append((anchor, mark.name, colour))
    for (x, y), name, colour in labels:  # names last, over every shape
        width = _text_width(draw, name, small)
        x = min(max(x, 0), TILE - width - 4)
        y = max(y - FONT_SIZE, CAPTION)
        draw.rectangle((x, y, x + width + 4, y + FONT_SIZE - 1), fill=colour)
        brightness = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        draw.text((x + 2, y), name, fill="black" if brightness > 140 else "white", font=small)
    return tile


def _draw_mask(tile: Image.Image, mark: Mark, colour: Colour, size: tuple[int, int]) -> None:
    try:
        from pycocotools import mask as mask_utils

        rle = dict(mark.mask)
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        with warnings.catch_warnings():  # pycocotools under numpy 2: a DeprecationWarning about copy=False
            warnings.simplefilter("ignore", DeprecationWarning)
            alpha = mask_utils.decode(rle)
    except (ImportError, TypeError, ValueError, KeyError):
        return
    painted = Image.fromarray((alpha > 0).astype(np.uint8) * 110).resize(size, Image.Resampling.NEAREST)
    region = tile.crop((0, CAPTION, size[0], CAPTION + size[1]))
    tile.paste(Image.composite(Image.new("RGB", size, colour), region, painted), (0, CAPTION))


def _grid(tiles: Iterable[Image.Image]) -> Image.Image:
    tiles = list(tiles)
    columns = min(GRID_COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    gap = 6
    grid = Image.new("RGB", (columns * TILE + (columns - 1) * gap, rows * (TILE + CAPTION) + (rows - 1) * gap),
                     (235, 235, 235))
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        grid.paste(tile, (column * (TILE + gap), row * (TILE + CAPTION + gap)))
    return grid


