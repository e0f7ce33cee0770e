"""`lsflow export PROJECT_ID FORMAT --path DIR` against a real Label Studio, run as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from lsflow_tests.dataset_files import dataset_files
from lsflow_tests.paths import IMAGE_CONFIG, SAMPLE_MEDIA

LSFLOW = Path(sys.executable).parent / "lsflow"


def lsflow_export(label_studio, *args: str, api_key: str | None = None, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "LABEL_STUDIO_URL": label_studio.url,
                   "LABEL_STUDIO_API_KEY": label_studio.legacy_token if api_key is None else api_key, **env}
    for name in ("DEBUG", "LOG_LEVEL"):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run([str(LSFLOW), "export", *args], env=environment, capture_output=True, text=True,
                          timeout=300)


def test_export_writes_a_coco_that_pycocotools_loads(label_studio, image_project, tmp_path):
    out = tmp_path / "out"
    run = lsflow_export(label_studio, str(image_project.id), "COCO", "--path", str(out))
    assert run.returncode == 0, run.stderr
    assert f"project {image_project.id}: snapshot " in run.stdout
    assert f"{len(image_project.task_ids)} tasks" in run.stdout

    coco = COCO(str(out / "COCO" / "result.json"))
    assert len(coco.getImgIds()) == len(image_project.task_ids)
    by_region = {a["label_studio"]["region"]: a for a in coco.dataset["annotations"]}
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    for region, (task, label, box) in image_project.boxes.items():
        assert by_region[region]["image_id"] == task and names[by_region[region]["category_id"]] == label
        assert by_region[region]["bbox"] == pytest.approx(box, abs=1e-6)
    # Beside the dataset (a link to its newest version) only lsflow's state: the snapshot, the store, the
    # versions of each format and the index of each format's output that lets unchanged tasks' output be reused.
    assert sorted(p.name for p in out.iterdir()) == [".lsflow", "COCO"]
    state = out / ".lsflow" / f"project-{image_project.id}"
    assert sorted(p.name for p in state.iterdir()) == [".lock", "reuse", "snapshot", "store", "versions"]
    assert sorted(p.name for p in (state / "reuse").iterdir()) == ["COCO"]


def test_several_formats_with_a_personal_token_and_debug_logs_without_the_token(label_studio, text_project,
                                                                               tmp_path):
    run = lsflow_export(label_studio, str(text_project.id), "coco,YOLO", "--path", str(tmp_path),
                        api_key=label_studio.personal_token, DEBUG="1", LOG_LEVEL="DEBUG")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "COCO" / "result.json").is_file() and (tmp_path / "YOLO" / "data.yaml").is_file()
    assert "warning: COCO needs a label config with" in run.stderr  # a text project, asked for image formats
    assert f"project {text_project.id}: snapshot " in run.stderr and " created (completed)" in run.stderr
    assert " downloaded (" in run.stderr and "POST" in run.stderr
    for secret in (label_studio.personal_token, label_studio.legacy_token):
        assert secret not in run.stderr and secret not in run.stdout


def test_missing_project_fails_with_the_reason_and_writes_nothing(label_studio, tmp_path):
    run = lsflow_export(label_studio, "999999", "COCO", "--path", str(tmp_path))
    assert run.returncode == 1
    assert f"Error: Label Studio at {label_studio.url} has no project 999999 (404)" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_refused_before_calling_the_server(tmp_path):
    environment = {**os.environ, "LABEL_STUDIO_URL": "http://127.0.0.1:1", "LABEL_STUDIO_API_KEY": "0" * 40}
    run = subprocess.run([str(LSFLOW), "export", "1", "COCO,NOPE", "--path", str(tmp_path / "out")],
                         env=environment, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "unknown format 'NOPE'" in run.stderr
    assert not (tmp_path / "out").exists()


def test_without_the_environment_it_names_the_variables(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")}
    run = subprocess.run([str(LSFLOW), "export", "1", "COCO", "--path", str(tmp_path)], env=environment,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "set LABEL_STUDIO_URL" in run.stderr


def test_a_second_export_into_the_same_path_is_incremental(label_studio, tmp_path):
    project = label_studio.create_project("cli incremental", IMAGE_CONFIG.read_text())
    image = label_studio.upload(project, SAMPLE_MEDIA / "upload" / "1" / "8c1d2e3f-person.png")
    tasks = label_studio.import_tasks(project, [{"image": image}, {"image": image}])
    box = {"id": "p1", "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 320,
           "original_height": 240, "value": {"x": 10, "y": 10, "width": 20, "height": 30, "rotation": 0,
                                             "rectanglelabels": ["Person"]}}
    label_studio.annotate(tasks[0], [box])
    out = tmp_path / "out"
    first = lsflow_export(label_studio, str(project), "YOLO,COCO", "--path", str(out))
    assert first.returncode == 0, first.stderr
    assert "(full)" in first.stdout

    label_studio.annotate(tasks[1], [{**box, "id": "p2"}])
    second = lsflow_export(label_studio, str(project), "YOLO,COCO", "--path", str(out))
    assert second.returncode == 0, second.stderr
    assert "(incremental)" in second.stdout and "1 changed" in second.stdout

    again_full = lsflow_export(label_studio, str(project), "YOLO,COCO", "--path", str(tmp_path / "full"), "--full")
    assert again_full.returncode == 0, again_full.stderr
    for name in ("YOLO", "COCO"):
        assert dataset_files(out / name) == dataset_files(tmp_path / "full" / name)
