"""Dataset versions of a project on a real Label Studio: a version stays whole while a trainer reads it,
`diff` reports exactly the changes made, `lineage` names each version's annotations, retention keeps
pinned versions, and a rebuild that changes nothing adds no version."""

from __future__ import annotations

from lsflow.core.pipeline.versions import current_version
from lsflow.project.datasets import DatasetOptions, build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.project.versions import diff_versions, lineage, list_versions, pin, retain
from lsflow.sources.label_studio import LabelStudioSource
from lsflow.sources.media import MediaResolver
from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.label_studio_server import EMAIL
from lsflow_tests.paths import IMAGE_CONFIG, SAMPLE_MEDIA

FORMATS = ["YOLO", "COCO"]


def box(x: float, label: str = "Car") -> list[dict]:
    return [{"id": f"r{int(x * 10)}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
             "original_width": 640, "original_height": 480, "image_rotation": 0,
             "value": {"x": x, "y": 10, "width": 20, "height": 15, "rotation": 0, "rectanglelabels": [label]}}]


def test_versions_of_a_live_project(label_studio, tmp_path):
    project = label_studio.create_project("versions", IMAGE_CONFIG.read_text())
    image = label_studio.upload(project, SAMPLE_MEDIA / "upload" / "1" / "3f2a1b9c-street.jpg")
    tasks = label_studio.import_tasks(project, [{"image": image, "note": str(n)} for n in range(4)])
    annotated = {task: label_studio.annotate(task, box(10 + n)) for n, task in enumerate(tasks[:3])}
    layout = ProjectLayout(tmp_path / "out", str(project))
    source = LabelStudioSource(label_studio.url, label_studio.legacy_token)

    def export(keep: int = 10):
        take_project_snapshot(source, layout)
        update_store(layout)
        with MediaResolver(SAMPLE_MEDIA, label_studio_url=label_studio.url, api_key=label_studio.legacy_token,
                           cache_dir=tmp_path / "media-cache") as media:
            results = build_datasets(layout, FORMATS, media, DatasetOptions(
                keep_versions=keep, label_studio_url=label_studio.url)).results
        return {name: result.version for name, result in results.items()}

    first = export()
    v1 = first["YOLO"]
    assert v1.new and v1.previous is None
    v1_files = dataset_files(v1.path)
    # A trainer opened a label file of version 1 through the stable path and reads it slowly.
    label_file = next(layout.dataset_dir("YOLO").glob("labels/*/*.txt"))
    reader = open(label_file, "rb")  # noqa: SIM115 (held open across the next export on purpose)
    head = reader.read(3)

    client = label_studio.client
    client.annotations.update(id=annotated[tasks[0]], result=box(40, "Person"))
    client.annotations.delete(id=annotated[tasks[1]])
    added = label_studio.annotate(tasks[3], box(50))
    second = export()
    v2 = second["YOLO"]
    assert v2.new and v2.previous == v1.version_id and current_version(layout.dataset_dir("YOLO")) == v2.version_id

    assert head + reader.read() == v1_files[label_file.relative_to(layout.dataset_dir("YOLO"))]
    reader.close()
    assert dataset_files(v1.path) == v1_files  # version 1 unchanged, file by file
    assert [v.version for v in list_versions(layout, "YOLO")] == [v2.version_id, v1.version_id]

    diff = diff_versions(layout, "YOLO", v1.version_id, v2.version_id)
    assert (diff.tasks_added, diff.tasks_removed) == ([], [])
    assert diff.tasks_changed == sorted([tasks[0], tasks[1], tasks[3]])
    assert [(c.task_id, c.annotation_id, c.annotator) for c in diff.annotations_edited] == \
        [(tasks[0], annotated[tasks[0]], EMAIL)]
    assert [(c.task_id, c.annotation_id) for c in diff.annotations_removed] == [(tasks[1], annotated[tasks[1]])]
    assert [(c.task_id, c.annotation_id) for c in diff.annotations_added] == [(tasks[3], added)]
    before = sum(sum(counts.values()) for counts in diff.classes_before.values())
    after = sum(sum(counts.values()) for counts in diff.classes_after.values())
    assert (before, after) == (3, 3)
    assert sum(counts.get("Person", 0) for counts in diff.classes_after.values()) == 1

    def held(version: str) -> set[tuple[int, int, str]]:
        return {(row["task_id"], row["annotation_id"], row["annotator"]) for row in lineage(layout, "YOLO", version)}

    assert held(v1.version_id) == {(task, annotation, EMAIL) for task, annotation in annotated.items()}
    assert held(v2.version_id) == {(tasks[0], annotated[tasks[0]], EMAIL), (tasks[2], annotated[tasks[2]], EMAIL),
                                (tasks[3], added, EMAIL)}

    assert not export()["YOLO"].new  # nothing changed: no new version
    assert len(list_versions(layout, "YOLO")) == 2

    # Retention: version 1 pinned survives while version 2, unpinned and not current, goes.
    pin(layout, "YOLO", v1.version_id)
    client.annotations.delete(id=added)
    v3 = export(keep=1)["YOLO"]
    assert [v.version for v in list_versions(layout, "YOLO")] == [v3.version_id, v1.version_id]
    assert dataset_files(v1.path) == v1_files
    pin(layout, "YOLO", v1.version_id, pinned=False)
    assert retain(layout, "YOLO", keep=1) == [v1.version_id]
    assert [v.version for v in list_versions(layout, "YOLO")] == [v3.version_id]
