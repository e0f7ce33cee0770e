"""Incremental re-export against a real Label Studio: after random rounds of changes, the incremental
datasets equal a fresh full export of the same project, file by file."""

import random
import time
from datetime import timedelta

from lsflow.core.formats import WRITERS
from lsflow.core.model.label_config import LabelConfig
from lsflow.project.datasets import build_datasets
from lsflow.project.layout import ProjectLayout
from lsflow.project.snapshot import take_project_snapshot
from lsflow.project.store import update_store
from lsflow.sources.label_studio import LabelStudioSource
from lsflow.sources.media import MediaResolver
from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.paths import IMAGE_CONFIG, SAMPLE_MEDIA

ROUNDS = 4
# The test changes the project within seconds; a short overlap lets unchanged tasks stay home.
OVERLAP = timedelta(seconds=1)
WIDTH, HEIGHT = 640, 480


def box(rng: random.Random, index: int) -> dict:
    label = rng.choice(["Car", "Person"])
    return {
        "id": f"b{rng.randrange(10**9)}-{index}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
        "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
        "value": {"x": rng.uniform(0, 90), "y": rng.uniform(0, 90), "width": rng.uniform(2, 30),
                  "height": rng.uniform(2, 30), "rotation": rng.choice([0, 0, 15, 90, 330]), "rectanglelabels": [label]},
    }


def result(rng: random.Random) -> list[dict]:
    return [box(rng, i) for i in range(rng.randint(1, 3))]


files = dataset_files


def sync(label_studio, root, project_id, full, formats):
    layout = ProjectLayout(root, str(project_id))
    source = LabelStudioSource(label_studio.url, label_studio.legacy_token)
    record = take_project_snapshot(source, layout, full=full, overlap=OVERLAP)
    time.sleep(2 * OVERLAP.total_seconds())  # the next changes come after the watermark's overlap
    _, changes, _ = update_store(layout)
    with MediaResolver(SAMPLE_MEDIA, label_studio_url=label_studio.url, api_key=label_studio.legacy_token,
                       cache_dir=root / "media-cache") as media:
        results = build_datasets(layout, formats, media).results
    return record, changes, {name: files(result.path) for name, result in results.items()}


def test_random_rounds_of_changes_keep_incremental_equal_to_full(label_studio, tmp_path):
    rng = random.Random(20261125)
    config_xml = IMAGE_CONFIG.read_text()
    formats = sorted(n for n, w in WRITERS.items() if w.not_applicable(LabelConfig.parse(config_xml)) is None)
    project = label_studio.create_project("incremental rounds", config_xml)
    image = label_studio.upload(project, SAMPLE_MEDIA / "upload" / "1" / "3f2a1b9c-street.jpg")
    client = label_studio.client

    tasks = list(label_studio.import_tasks(project, [{"image": image, "note": f"n{i}"} for i in range(6)]))
    annotations = {task: [label_studio.annotate(task, result(rng))] for task in tasks[:4]}
    record, _, _ = sync(label_studio, tmp_path / "incremental", project, False, formats)
    assert record.mode == "full"

    fetched = []
    for round_number in range(ROUNDS):
        actions = rng.sample(["create_tasks", "edit_task", "delete_task", "annotate", "edit_annotation",
                              "delete_annotation", "predict"], k=4)
        for action in actions:
            if action == "create_tasks":
                tasks += label_studio.import_tasks(project, [{"image": image, "note": "new"}] * rng.randint(1, 2))
            elif action == "edit_task":
                client.tasks.update(id=rng.choice(tasks), data={"image": image, "note": f"edited {round_number}"})
            elif action == "delete_task" and len(tasks) > 3:
                gone = tasks.pop(rng.randrange(len(tasks)))
                client.tasks.delete(id=gone)
                annotations.pop(gone, None)
            elif action == "annotate":
                task = rng.choice(tasks)
                annotations.setdefault(task, []).append(label_studio.annotate(task, result(rng)))
            elif action == "edit_annotation" and annotations:
                task = rng.choice(sorted(annotations))
                if annotations[task]:
                    client.annotations.update(id=rng.choice(annotations[task]), result=result(rng))
            elif action == "delete_annotation" and annotations:
                task = rng.choice(sorted(annotations))
                if annotations[task]:
                    client.annotations.delete(id=annotations[task].pop())
            elif action == "predict":
                label_studio.predict(rng.choice(tasks), result(rng), "model-v1", rng.random())

        record, changes, incremental = sync(label_studio, tmp_path / "incremental", project, False, formats)
        assert record.mode == "incremental", actions
        _, _, full = sync(label_studio, tmp_path / f"full-{round_number}", project, True, formats)
        assert incremental.keys() == full.keys()
        for name in formats:
            assert incremental[name] == full[name], f"round {round_number} ({actions}): {name} differs"
        fetched.append((record.task_count, len(tasks) + 1))  # + the task the upload created
    # Only changed tasks travelled: some round fetched fewer tasks than the project holds.
    assert any(count < total for count, total in fetched), fetched
