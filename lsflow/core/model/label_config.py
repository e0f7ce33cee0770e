"""Label Studio labeling configuration (the project's XML): control tags, object tags, classes.

Only what exports need is kept: which control labels which object, its labels in config order, and
the per-label attributes that change export numbering (`category`, `model_index`).
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

# Control tags whose regions become shapes in vision formats.
SHAPE_CONTROLS = frozenset(
    {
        "rectanglelabels", "rectangle", "polygonlabels", "polygon", "keypointlabels", "keypoint",
        "brushlabels", "brush", "ellipselabels", "ellipse",
    }
)
BRUSH_CONTROLS = frozenset({"brushlabels", "brush"})
# Control tags that carry class names (`<Label value=…>` children).
LABELING_CONTROLS = frozenset(
    {
        "labels", "rectanglelabels", "polygonlabels", "keypointlabels", "brushlabels",
        "ellipselabels", "hypertextlabels", "paragraphlabels", "timeserieslabels",
    }
)
OBJECT_TAGS = frozenset(
    {
        "image", "text", "hypertext", "audio", "audioplus", "video", "timeseries", "paragraphs",
        "table", "pdf", "markdown",
    }
)


class LabelConfigError(ValueError):
    """The labeling configuration cannot be read."""


@dataclass(frozen=True, slots=True)
class LabelSpec:
    value: str
    category: int | None = None
    model_index: int | None = None


@dataclass(frozen=True, slots=True)
class ControlTag:
    name: str
    tag: str  # lower-case tag name, the same string Label Studio writes as a region's `type`
    to_names: tuple[str, ...]
    labels: tuple[LabelSpec, ...]


@dataclass(frozen=True, slots=True)
class ObjectTag:
    name: str
    tag: str
    data_key: str  # the task `data` key behind `value="$key"`
    # <Video frameRate>: the rate Label Studio numbers frames at (a number or `$key`); None: not given.
    frame_rate: str | None = None


@dataclass(frozen=True, slots=True)
class ClassList:
    """Class names with their ids; the one source of class numbering for every format."""

    names_by_id: tuple[tuple[int, str], ...]
    # name → id, built once: every format looks a class up per region.
    ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", {name: class_id for class_id, name in self.names_by_id})

    @property
    def names(self) -> list[str]:
        return [name for _, name in self.names_by_id]

    def __contains__(self, name: object) -> bool:
        return name in self.ids

    def __len__(self) -> int:
        return len(self.names_by_id)


def number_classes(labels: list[LabelSpec]) -> ClassList:
    """Give each distinct label an id: an explicit `category` wins, the rest fill the free ids in order."""
    ids: dict[str, int] = {}
    for label in labels:
        if label.category is not None and label.value not in ids:
            if label.category in ids.values():
                raise LabelConfigError(
                    f"category {label.category} is used by two labels ('{label.value}' and another)"
                )
            ids[label.value] = label.category
    free_ids = (i for i in range(len(labels) + len(ids) + 1) if i not in ids.values())
    for label in labels:
        if label.value not in ids:
            ids[label.value] = next(free_ids)
    return ClassList(tuple(sorted((class_id, name) for name, class_id in ids.items())))


@dataclass(frozen=True, slots=True)
class LabelConfig:
    controls: tuple[ControlTag, ...]
    objects: tuple[ObjectTag, ...]

    @classmethod
    def parse(cls, xml_text: str) -> LabelConfig:
        try:
            root = ElementTree.fromstring(xml_text)
        except (ElementTree.ParseError, UnicodeEncodeError) as error:  # a lone surrogate, as a JSON "\ud800" gives
            raise LabelConfigError(f"label config is not valid XML: {error}") from None
        controls, objects = [], []
        for element in root.iter():
            tag = element.tag.lower()
            name = element.get("name")
            if name is None:
                continue
            if tag in OBJECT_TAGS:
                value = element.get("value", "")
                frame_rate = next((v for k, v in element.attrib.items() if k.lower() == "framerate"), None)
                objects.append(ObjectTag(name, tag, value.lstrip("$"), frame_rate))
            elif element.get("toName"):
                labels = tuple(
                    LabelSpec(
                        value=child.get("value", ""),
                        category=_optional_int(child.get("category"), child.get("value")),
                        model_index=_optional_int(child.get("model_index"), child.get("value")),
                    )
                    for child in element
                    if child.tag.lower() in ("label", "choice") and child.get("value") is not None
                )
                to_names = tuple(n.strip() for n in element.get("toName", "").split(","))
                controls.append(ControlTag(name, tag, to_names, labels))
        return cls(tuple(controls), tuple(objects))

    @classmethod
    def from_file(cls, path: str | Path) -> LabelConfig:
        return cls.parse(Path(path).read_text(encoding="utf-8"))

    def control(self, name: str) -> ControlTag | None:
        return next((c for c in self.controls if c.name == name), None)

    def object(self, name: str) -> ObjectTag | None:
        return next((o for o in self.objects if o.name == name), None)

    def data_key(self, object_tag: str) -> str | None:
        """The task data key the first object tag of this kind reads (`image`, `audio`, …)."""
        return next((o.data_key for o in self.objects if o.tag == object_tag), None)

    def classes(self) -> ClassList:
        """Object classes, in label-config order, honouring `category`.

        Keypoint labels name parts of an object (see `keypoint_order`), not classes.
        """
        return number_classes(
            [label for c in self.controls if c.tag in LABELING_CONTROLS - {"keypointlabels"} for label in c.labels]
        )

    def keypoint_order(self) -> list[str]:
        """Keypoint labels in `model_index` order when given, else label-config order."""
        labels = [label for c in self.controls if c.tag == "keypointlabels" for label in c.labels]
        ordered = sorted(
            enumerate(labels),
            key=lambda item: (item[1].model_index is None, item[1].model_index or 0, item[0]),
        )
        return list(dict.fromkeys(label.value for _, label in ordered))


def classes_from_labels(names: set[str]) -> ClassList:
    """Classes seen in the data, sorted: the fallback when no label config is given."""
    warnings.warn(
        "no label config given: class ids come from the labels found in the data, sorted by name; "
        "pass the project's label config to number classes as the project does",
        stacklevel=2,
    )
    return number_classes([LabelSpec(name) for name in sorted(names)])


def _optional_int(raw: str | None, label: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise LabelConfigError(f"label '{label}': expected a whole number, got '{raw}'") from None
