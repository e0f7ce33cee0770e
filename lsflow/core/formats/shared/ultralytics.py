"""The YOLO family's dataset layout, as Ultralytics reads it.

    data.yaml                  train/val/test image folders, class names (+ kpt_shape for pose)
    images/{train,val,test}/   the images (copied by the *_WITH_IMAGES formats; else put them here)
    labels/{train,val,test}/   <image stem>.txt, one row per object, coordinates normalized to [0, 1]
    classes.txt, notes.json    as Label Studio writes them: class names in class-id order

Label Studio writes one flat `labels/` folder; Ultralytics needs a train and a val split and finds
a label by swapping `/images/` for `/labels/` in the image path, so lsflow writes the split layout.
A task's split comes from a hash of its id: the same task always lands in the same split, however
many tasks are added later. `data.yaml` has no `path:` key, so Ultralytics takes the folder of the
YAML file — pass it by absolute path (`yolo train data=/abs/path/data.yaml`).
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import orjson
import yaml

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, TaskItem, file_stem
from lsflow.core.formats.shared.problems import PROBLEMS_SHOWN, Problems, files_in
from lsflow.core.formats.shared.vision import IMAGES_READABLE, VisionWriter, check_images_readable, read_files_mapping
from lsflow.core.geometry.plane import Envelope, Point, clip_envelope
from lsflow.core.geometry.shapes import Shape
from lsflow.core.model.label_config import ClassList
from lsflow.core.model.task import Annotation

DATA_YAML = "data.yaml"
# Share of tasks per split; cumulative bounds on a task id's hash in [0, 1).
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
NO_AREA = "no area inside the image"


class LabelRow(NamedTuple):
    text: str  # the row's columns (YOLO_POSE adds its keypoints' before the newline)
    clipped: bool  # the shape was cut to the image


def split_of(task_id: Any) -> str:
    """The task's split: a pure function of its id, so adding tasks never moves existing ones."""
    digest = hashlib.sha256(f"lsflow-split:{task_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    bound = 0.0
    for name, share in SPLITS:
        bound += share
        if position < bound:
            return name
    return SPLITS[-1][0]


def names_in_id_order(classes: ClassList) -> list[str]:
    """Line/index N is class id N; ids left free by `category` gaps get a placeholder name."""
    by_id = dict(classes.names_by_id)
    return [by_id.get(i, f"unused_{i}") for i in range(max(by_id, default=-1) + 1)]


def box_columns(class_id: int, box: Envelope, width: int, height: int) -> str:
    """`class x_center y_center width height`, normalized: a detection row, and the start of a pose row."""
    xmin, ymin, xmax, ymax = box  # unpacked: the Envelope properties are function calls, per region
    # One %-format for the whole row, on the per-region hot path.
    return "%d %.6f %.6f %.6f %.6f" % (class_id, (xmin + xmax) / 2 / width, (ymin + ymax) / 2 / height,  # noqa: UP031
                                       (xmax - xmin) / width, (ymax - ymin) / height)


def detection_row(shape: Shape, class_id: int) -> LabelRow | str:
    """The box row of a box or polygon: its envelope, clipped to the image."""
    width, height = shape.image.width, shape.image.height
    # A box or polygon (see the docstring): its envelope is set, only a mask's is None; no assert per region.
    box = clip_envelope(shape.envelope, width, height)  # type: ignore[arg-type]
    if box is None:
        return NO_AREA
    return LabelRow(box_columns(class_id, box, width, height) + "\n", box != shape.envelope)


def normalized(points: list[Point] | tuple[Point, ...], width: int, height: int) -> str:
    return " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in points)


class UltralyticsWriter(VisionWriter):
    """Subclasses turn a shape into a label row (`row`) and say which rows are valid (`values_problem`)."""

    task: ClassVar[str]  # Ultralytics task: detect | segment | obb | pose
    kinds: ClassVar[frozenset[str]]  # the shape kinds a row holds
    elsewhere: ClassVar[dict[str, str]]  # other shape kinds → the formats that hold them

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.checks = cls._layout_checks()

    @classmethod
    def _layout_checks(cls) -> tuple[CheckSpec, ...]:
        return (
            CheckSpec("yolo_rows_valid", f"every row has the columns of a YOLO {cls.task} label, coordinates "
                                         "in [0, 1] and a class id listed in classes.txt"),
            CheckSpec("yolo_label_per_image", "every exported image has a label file under labels/<split>/"),
            CheckSpec("ultralytics_layout", "data.yaml names the classes of classes.txt and train/val folders "
                                            "that exist; train and val are not empty", blocking=False),
        ) + ((IMAGES_READABLE,) if cls.copies_images else ())

    def prepare(self) -> None:
        for split, _ in SPLITS:
            (self.out_dir / "images" / split).mkdir(parents=True)
            (self.out_dir / "labels" / split).mkdir(parents=True)

    @staticmethod
    @abstractmethod
    def row(shape: Shape, class_id: int) -> LabelRow | str:
        """The shape's label row, or why it has none (pure: the accounting is `labelled_rows`')."""

    def rows(self, item: TaskItem) -> list[str]:
        """The task's label rows (each ending in a newline); every region written or dropped."""
        return [row.text for _, _, row in self.labelled_rows(item)]

    def labelled_rows(self, item: TaskItem, aside: list[tuple[Annotation, Shape]] | None = None,
                      ) -> Iterator[tuple[Annotation, Shape, LabelRow]]:
        """The family's one accounting loop: each shape of `kinds` with a known class becomes a row
        (written) or is dropped with the row function's reason; a shape of another kind is dropped as
        belonging to `elsewhere[kind]`, or put `aside` (YOLO_POSE's keypoints) when that kind has none."""
        for annotation, shape in self.shapes(item):
            if shape.kind not in self.kinds:
                formats = self.elsewhere.get(shape.kind)
                if formats is None and aside is not None:
                    aside.append((annotation, shape))
                else:  # every kind outside `kinds` is in `elsewhere` or goes `aside`: formats is set
                    self.belongs_elsewhere(item, annotation, shape, formats)  # type: ignore[arg-type]
                continue
            found = self.class_id(item, annotation, shape.region)
            if found is None:
                continue
            row = self.row(shape, found[0])
            if isinstance(row, str):
                self.drop(item, annotation, shape.region, row)
                continue
            self.report.wrote(found[1], clipped=row.clipped)
            yield annotation, shape, row

    def write(self, item: TaskItem) -> None:
        split = split_of(item.task.id)
        image_file = f"images/{split}/{item.file_name}"
        if self.copies_images:
            copied = self.take_image(item, self.out_dir / "images" / split)
            if copied is None:
                return
            image_file = copied.relative_to(self.out_dir).as_posix()
        label_file = f"labels/{split}/{file_stem(item.file_name)}.txt"
        self.task_file(label_file, "".join(self.rows(item)).encode())
        self.record_files(item, image_file, [label_file])

    def close(self) -> None:
        names = names_in_id_order(self.context.classes)
        (self.out_dir / "classes.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
        notes = {
            "categories": [{"id": class_id, "name": name} for class_id, name in self.context.classes.names_by_id],
            "info": {"version": "1.0", "contributor": "Label Studio, exported by lsflow",
                     "date_created": self.dataset_date},
        }
        (self.out_dir / "notes.json").write_bytes(orjson.dumps(notes, option=orjson.OPT_INDENT_2))
        data: dict[str, Any] = {split: f"images/{split}" for split, _ in SPLITS}
        data["names"] = dict(enumerate(names))
        data.update(self.extra_data_yaml())
        header = (f"# Ultralytics {self.task} dataset from Label Studio"
                  f"{' project ' + str(self.context.project_id) if self.context.project_id else ''}, written by "
                  "lsflow.\n# No 'path:' key: Ultralytics uses this file's folder when given its absolute path.\n")
        body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
        (self.out_dir / DATA_YAML).write_text(header + body, encoding="utf-8")

    def extra_data_yaml(self) -> dict[str, Any]:
        return {}

    @classmethod
    @abstractmethod
    def values_problem(cls, values: list[float], context: ExportContext) -> str | None:
        """Why a row's numbers after the class id are not a valid label of this flavour, or None."""

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        outcomes = [cls._check_rows(out_dir, context), cls._check_label_files(out_dir),
                    cls._check_layout(out_dir)]
        if cls.copies_images:
            outcomes.append(check_images_readable(out_dir))
        return outcomes

    @classmethod
    def _check_rows(cls, out_dir: Path, context: ExportContext) -> CheckOutcome:
        class_count = len((out_dir / "classes.txt").read_text(encoding="utf-8").splitlines())
        problems, rows = Problems(), 0
        for path in _label_files(out_dir):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                rows += 1
                problem = _row_problem(line, class_count, lambda values: cls.values_problem(values, context))
                if problem:
                    problems.add((path.parent.name, path.name, number), f"{path.relative_to(out_dir)}:{number}: {problem}")
        return CheckOutcome("yolo_rows_valid", not problems.count, problems.first(),
                            {"rows": rows, "classes": class_count})

    @classmethod
    def _check_label_files(cls, out_dir: Path) -> CheckOutcome:
        """Every task in the mapping has its label file; with images, every image has one too (found
        the way Ultralytics finds it: `/images/` → `/labels/`, suffix → `.txt`)."""
        problems: list[str] = []
        images = 0
        for entry in read_files_mapping(out_dir):
            problems += [f"task {entry['task']}: {f} is missing" for f in entry["label_files"]
                         if not (out_dir / f).is_file()][:PROBLEMS_SHOWN - len(problems)]
        if cls.copies_images:
            for image in sorted((out_dir / "images").glob("*/*")):
                images += 1
                label = out_dir / "labels" / image.parent.name / f"{image.stem}.txt"
                if not label.is_file():
                    problems.append(f"{image.relative_to(out_dir)} has no {label.relative_to(out_dir)}")
        label_files = sum(1 for _ in _label_files(out_dir))
        return CheckOutcome("yolo_label_per_image", not problems, problems[:20],
                            {"label_files": label_files, "images": images})

    @classmethod
    def _check_layout(cls, out_dir: Path) -> CheckOutcome:
        problems = []
        try:
            data = yaml.safe_load((out_dir / DATA_YAML).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            return CheckOutcome("ultralytics_layout", False, [f"{DATA_YAML} cannot be read: {error}"])
        classes = (out_dir / "classes.txt").read_text(encoding="utf-8").splitlines()
        names = data.get("names") or {}
        if [names.get(i) for i in range(len(names))] != classes:
            problems.append(f"{DATA_YAML} names {names} differ from classes.txt {classes}")
        per_split = {}
        for split in ("train", "val"):
            if split not in data:
                problems.append(f"{DATA_YAML} has no '{split}:' (Ultralytics requires train and val)")
                continue
            if not (out_dir / data[split]).is_dir():
                problems.append(f"{DATA_YAML} {split}: {data[split]} is not a folder of the dataset")
            per_split[split] = sum(1 for _ in files_in(out_dir / "labels" / split, ".txt"))  # Path.glob lists a folder whole
            if per_split[split] == 0:
                problems.append(f"the {split} split has no images: the project has too few tasks for "
                                f"an {int(dict(SPLITS)[split] * 100)}% share")
        return CheckOutcome("ultralytics_layout", not problems, problems,
                            {f"{split}_images": count for split, count in per_split.items()})


def _label_files(out_dir: Path) -> Iterator[Path]:
    """Every label file of every split folder, as the folders list them."""
    labels = out_dir / "labels"
    for split in sorted(entry.name for entry in labels.iterdir() if entry.is_dir()) if labels.is_dir() else ():
        yield from files_in(labels / split, ".txt")


def _row_problem(line: str, class_count: int, values_problem: Callable[[list[float]], str | None]) -> str | None:
    parts = line.split()
    try:
        class_id = int(parts[0])
        values = [float(v) for v in parts[1:]]
    except (ValueError, IndexError):
        return "not numbers"
    if not 0 <= class_id < class_count:
        return f"class id {class_id} is not in classes.txt ({class_count} classes)"
    return values_problem(values)


def coordinates_problem(values: list[float]) -> str | None:
    outside = [v for v in values if not 0.0 <= v <= 1.0]
    return f"coordinates outside [0, 1]: {outside}" if outside else None
