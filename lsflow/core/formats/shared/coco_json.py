"""What the COCO formats share (COCO, COCO_WITH_IMAGES, BRUSH_TO_COCO, COCO_VIDEO): category numbering
and its check, the `info` block, and the assembly of the JSON arrays from streamed records at `close`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, option_choice
from lsflow.core.model.label_config import ClassList

COCO_CATEGORY_IDS = CheckSpec(
    "coco_category_ids", "categories are the label config's classes numbered from coco_first_category_id (1 by "
                         "default: 0 means no class to Datumaro, torchvision and CVAT), and every annotation's "
                         "category is listed"
)
FIRST_CATEGORY_OPTION = "coco_first_category_id"
FIRST_CATEGORY_IDS = ("1", "0")  # the default first
FIRST_CATEGORY_HELP = ("the category id of class 0: 1 (default; COCO's, Datumaro's, torchvision's and CVAT's "
                       "convention, 0 meaning no class) or 0 (Label Studio's ids)")


def first_category_id(context: ExportContext) -> int:
    """The category id of class 0: 1 (COCO's convention), or 0 as Label Studio numbers them."""
    return int(option_choice(context, FIRST_CATEGORY_OPTION, FIRST_CATEGORY_IDS))


def keypoint_category_id(classes: ClassList, first: int) -> int:
    """Keypoints without a parent object form one extra category, after the classes."""
    return max((class_id for class_id, _ in classes.names_by_id), default=-1) + 1 + first


def class_categories(classes: ClassList, first: int) -> list[dict]:
    return [{"id": class_id + first, "name": name} for class_id, name in classes.names_by_id]


def coco_info(dataset_date: str, project_id: str | None) -> dict:
    return {
        "year": int(dataset_date[:4]) if dataset_date[:4].isdigit() else None,
        "version": "1.0",
        "description": f"Label Studio project {project_id}" if project_id else "",
        "contributor": "Label Studio, exported by lsflow",
        "url": "",
        "date_created": dataset_date,
    }


def check_category_ids(document: dict, context: ExportContext) -> CheckOutcome:
    """Categories are the classes at their ids + the first id (plus the keypoint category, if used);
    none is numbered below the first id, and every annotation names a listed category."""
    return check_category_counts(document.get("categories", []),
                                 Counter(a.get("category_id") for a in document.get("annotations", [])), context)


def check_category_counts(categories: list[dict], annotation_categories: Counter, context: ExportContext) -> CheckOutcome:
    """`check_category_ids` from the categories and how many annotations name each category id."""
    first = first_category_id(context)
    expected = {class_id + first: name for class_id, name in context.classes.names_by_id}
    keypoints_id = keypoint_category_id(context.classes, first)
    problems = []
    listed: dict[Any, Any] = {}
    for category in categories:
        category_id, name = category.get("id"), category.get("name")
        listed[category_id] = name
        if not isinstance(category_id, int) or isinstance(category_id, bool):
            problems.append(f"category {category_id!r} ('{name}'): the id is not an integer")
        elif category_id < first:
            problems.append(f"category {category_id} ('{name}') is below {FIRST_CATEGORY_OPTION}={first}"
                            + (": Datumaro, torchvision and CVAT read category 0 as no class" if category_id == 0
                               else ""))
        elif category_id == keypoints_id and name == "keypoints":
            continue
        elif expected.get(category_id) != name:
            wanted = f"'{expected[category_id]}'" if category_id in expected else "no class"
            problems.append(f"category {category_id} is '{name}'; with {FIRST_CATEGORY_OPTION}={first} "
                            f"it is {wanted}")
    problems += [f"class '{name}' (category {category_id}) is not listed"
                 for category_id, name in expected.items() if category_id not in listed]
    unlisted = {category_id: count for category_id, count in annotation_categories.items() if category_id not in listed}
    problems += [f"{count} annotations have category {category_id!r}, which is not listed"
                 for category_id, count in sorted(unlisted.items(), key=str)]
    return CheckOutcome(COCO_CATEGORY_IDS.name, not problems, problems[:20], {
        "first_category_id": first, "categories": len(listed),
        "category_ids": f"{min(listed)}..{max(listed)}" if listed and all(isinstance(i, int) for i in listed)
        else "",
    })


def copy_joined(path: Path, out: Any) -> None:
    """Join newline-separated JSON records from `path` with commas, streaming."""
    first = True
    with open(path, "rb") as fragments:
        for line in fragments:
            if not first:
                out.write(b",")
            out.write(line.rstrip(b"\n"))
            first = False


def copy_numbered(path: Path, out: Any) -> None:
    """`copy_joined` for annotation records, each given its id (1, 2, …) as its first key."""
    with open(path, "rb") as fragments:
        for number, line in enumerate(fragments, 1):
            out.write(b'%s{"id":%d,%s' % (b"," if number > 1 else b"", number, line[1:].rstrip(b"\n")))
