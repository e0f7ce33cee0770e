"""What is known about a project before its first task is written: classes and keypoint names."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lsflow.core.formats.base import ExportContext
from lsflow.core.model.label_config import LabelConfig, classes_from_labels
from lsflow.core.model.media_files import MediaLookup
from lsflow.core.model.task import Task


def export_context(
    label_config: LabelConfig | None,
    tasks: Callable[[], Iterable[Task]],
    project_id: str | None = None,
    media: MediaLookup | None = None,
) -> ExportContext:
    """Classes and keypoints from the label config; without one, from a first pass over the data."""
    if label_config is not None:
        return ExportContext(
            classes=label_config.classes(),
            keypoint_names=tuple(label_config.keypoint_order()),
            label_config=label_config,
            project_id=project_id,
            image_key=label_config.data_key("image") or "image",
            media=media,
        )
    class_names: set[str] = set()
    keypoint_names: set[str] = set()
    for task in tasks():
        for annotation in task.annotations:
            for region in annotation.regions:
                target = keypoint_names if region.type == "keypointlabels" else class_names
                if region.type.endswith("labels"):
                    target.update(region.labels)
    return ExportContext(
        classes=classes_from_labels(class_names),
        keypoint_names=tuple(sorted(keypoint_names)),
        project_id=project_id,
        media=media,
    )
