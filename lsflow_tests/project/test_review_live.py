"""The prediction review of a project on a real Label Studio: predictions of two model versions, turned into
annotations the way the labeling UI does (result ids kept, `origin`, `parent_prediction`), then edited.

What the editor sends when a person accepts a prediction (web/libs/editor/src of Label Studio; see
lsflow/core/compare/lineage.py): the prediction's results with their ids, each `origin: "prediction"`,
`"prediction-changed"` once its shape was edited (a relabel leaves it), new regions `"manual"`, and the
annotation's `parent_prediction`. The test posts exactly that and checks the server keeps it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import orjson
import pytest
from PIL import Image

from lsflow.defs.assets import label_studio_snapshot, normalized_tasks, prediction_review
from lsflow.defs.partitions import PROJECTS_PARTITION_NAME
from lsflow.defs.resources import DatasetSettings, LabelStudioResource

LSFLOW = Path(sys.executable).parent / "lsflow"
WIDTH, HEIGHT = 200, 100  # percent x → pixels: x * 2, y → y
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car"/><Label value="Person"/><Label value="Bike"/>
  </RectangleLabels>
  <Choices name="weather" toName="image" choice="single">
    <Choice value="sunny"/><Choice value="rainy"/>
  </Choices>
</View>"""


def box(region_id, label, x, y, w, h, score=None, origin=None):
    result = {"id": region_id, "from_name": "label", "to_name": "image", "type": "rectanglelabels",
              "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
              "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}
    if score is not None:
        result["score"] = score
    if origin is not None:
        result["origin"] = origin
    return result


def weather(region_id, value, origin=None):
    result = {"id": region_id, "from_name": "weather", "to_name": "image", "type": "choices",
              "value": {"choices": [value]}}
    return {**result, "origin": origin} if origin else result


@pytest.fixture(scope="module")
def reviewed_project(label_studio, tmp_path_factory):
    """Three tasks, each predicted by v1 and then v2. Task A's annotation accepts v1's prediction, task B's
    v2's, task C's is drawn from scratch."""
    folder = tmp_path_factory.mktemp("review-images")
    project = label_studio.create_project("prediction review", CONFIG)
    tasks = []
    for name, colour in (("a.png", "red"), ("b.png", "green"), ("c.png", "blue")):
        Image.new("RGB", (WIDTH, HEIGHT), colour).save(folder / name)
        tasks.append(label_studio.upload(project, folder / name).task_id)
    a, b, c = tasks
    v1_a = label_studio.predict(a, [box("a1", "Car", 10, 10, 20, 20, 0.9), box("a2", "Person", 50, 10, 20, 40, 0.8),
                                    box("a3", "Car", 70, 60, 20, 20, 0.7), weather("wa", "sunny")], "v1", 0.8)
    label_studio.predict(b, [box("v1b1", "Car", 10, 10, 30, 30, 0.9), weather("v1wb", "rainy")], "v1", 0.9)
    label_studio.predict(c, [box("v1c1", "Car", 20, 20, 20, 20, 0.9)], "v1", 0.9)
    label_studio.predict(a, [box("v2a1", "Car", 10, 10, 20, 20, 0.6), weather("v2wa", "sunny")], "v2", 0.6)
    v2_b = label_studio.predict(b, [box("b1", "Car", 10, 10, 30, 30, 0.9), box("b2", "Person", 50, 50, 20, 20, 0.8),
                                    box("b3", "Car", 80, 10, 10, 10, 0.7), weather("wb", "sunny")], "v2", 0.8)
    label_studio.predict(c, [box("v2c1", "Car", 20, 20, 20, 20, 0.9)], "v2", 0.9)
    # A: v1's a1 and the choice kept, a2 moved right by 10 % (20 px), a3 deleted, a Bike added.
    accepted_a = label_studio.annotate(a, [
        box("a1", "Car", 10, 10, 20, 20, origin="prediction"),
        box("a2", "Person", 60, 10, 20, 40, origin="prediction-changed"),
        box("m1", "Bike", 5, 70, 10, 20, origin="manual"),
        weather("wa", "sunny", origin="prediction"),
    ], parent_prediction=v1_a)
    # B: v2's b1 made taller, b2 relabelled Bike (the editor leaves origin "prediction"), b3 kept, the choice changed.
    label_studio.annotate(b, [
        box("b1", "Car", 10, 10, 30, 40, origin="prediction-changed"),
        box("b2", "Bike", 50, 50, 20, 20, origin="prediction"),
        box("b3", "Car", 80, 10, 10, 10, origin="prediction"),
        weather("wb", "rainy", origin="prediction"),
    ], parent_prediction=v2_b)
    label_studio.annotate(c, [box("c1", "Car", 20, 20, 20, 20, origin="manual")])
    return project, (a, b, c), accepted_a, v1_a


def test_the_server_keeps_what_the_labeling_ui_sends(label_studio, reviewed_project):
    _, _, accepted_a, v1_a = reviewed_project
    stored = label_studio._call("GET", f"/api/annotations/{accepted_a}/").json()
    assert stored["parent_prediction"] == v1_a
    assert [(r["id"], r["origin"]) for r in stored["result"]] == [
        ("a1", "prediction"), ("a2", "prediction-changed"), ("m1", "manual"), ("wa", "prediction")]


def lsflow(label_studio, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.legacy_token}
    return subprocess.run([str(LSFLOW), *args], env=environment, capture_output=True, text=True, timeout=300)


def test_the_review_reports_exactly_what_was_done(label_studio, reviewed_project, tmp_path):
    project, _, _, _ = reviewed_project
    out = tmp_path / "export"
    run = lsflow(label_studio, "export", str(project), "JSON", "--path", str(out))
    assert run.returncode == 0, run.stderr
    run = lsflow(label_studio, "review", "--path", str(out), "--project", str(project))
    assert run.returncode == 0, run.stderr
    folder = out / ".lsflow" / f"project-{project}" / "review"
    result = orjson.loads((folder / "review.json").read_bytes())
    v1, v2 = result["model_versions"]
    assert (v1["model_version"], v2["model_version"]) == ("v1", "v2")  # v2's predictions are the later ones
    for version, regions in ((v1, 4 + 2 + 1), (v2, 2 + 4 + 1)):
        assert (version["predictions"], version["tasks_predicted"], version["regions_predicted"],
                version["tasks_annotated"]) == (3, 3, regions, 3)
    assert result["unlinked_annotations"] == 1  # task C's

    lineage = {key: v1["lineage"][key] for key in ("annotations_from_predictions", "unchanged", "edited", "moved",
                                                    "resized", "reshaped", "relabelled", "value_changed", "deleted",
                                                    "added")}
    assert lineage == {"annotations_from_predictions": 1, "unchanged": 2, "edited": 1, "moved": 1, "resized": 0,
                       "reshaped": 0, "relabelled": 0, "value_changed": 0, "deleted": 1, "added": 1}
    # a2: 40 x 40 px moved 20 px right: 800 px² shared of 2400.
    assert v1["lineage"]["moved_mean_iou"] == pytest.approx(1 / 3)
    assert v1["lineage"]["origins"] == {"manual": 1, "prediction": 2, "prediction-changed": 1}
    lineage = {key: v2["lineage"][key] for key in ("annotations_from_predictions", "unchanged", "edited", "moved",
                                                    "resized", "relabelled", "deleted", "added")}
    assert lineage == {"annotations_from_predictions": 1, "unchanged": 1, "edited": 3, "moved": 0, "resized": 1,
                       "relabelled": 2, "deleted": 0, "added": 0}
    # b1: 60 x 30 px grown to 60 x 40 px in place: 1800 / 2400; b2 did not move (1.0); a choice has no shape.
    assert v2["lineage"]["edited_mean_iou"] == pytest.approx((0.75 + 1) / 2)
    assert v2["lineage"]["origins"] == {"prediction": 3, "prediction-changed": 1}

    # Quality at IoU 0.5 against every annotation (A, B and C's), by class:
    # v1 — A: Car a1 TP, a3 FP; Person a2 against the moved one, IoU 1/3: FP and FN; Bike FN.
    #      B: Car 60 x 30 against 60 x 40 px, IoU .75: TP; b3 FN; Bike FN.  C: Car TP.
    # v2 — A: Car TP, Person FN, Bike FN.  B: b1 TP (.75), b3 TP, Person FP, Bike FN.  C: Car TP.
    expected = {"v1": {"Car": (3, 1, 1), "Person": (0, 1, 1), "Bike": (0, 0, 2)},
                "v2": {"Car": (4, 0, 0), "Person": (0, 1, 1), "Bike": (0, 0, 2)}}
    for version in (v1, v2):
        rows = {row["class"]: row for row in version["quality"]["detection"]["classes"]}
        assert {name: (row["tp"], row["fp"], row["fn"]) for name, row in rows.items()} == \
            expected[version["model_version"]]
    car = {row["class"]: row for row in v1["quality"]["detection"]["classes"]}["Car"]
    assert (car["precision"], car["recall"], car["f1"]) == pytest.approx((0.75, 0.75, 0.75))
    assert v1["quality"]["detection"]["micro"]["f1"] == pytest.approx(0.5)  # P 3/5, R 3/7
    assert v2["quality"]["detection"]["micro"]["f1"] == pytest.approx(2 / 3)  # P 4/5, R 4/7
    # The weather: v1 right on A and B; v2 said sunny where the person saw rain.
    assert v1["quality"]["choices"]["weather"]["accuracy"] == 1.0
    assert v2["quality"]["choices"]["weather"]["matrix"] == [[0, 1], [0, 1]]  # rows rainy, sunny
    comparison = result["comparison"]
    assert (comparison["previous"], comparison["newest"], comparison["tasks"], comparison["worse"]) == \
        ("v1", "v2", 3, True)
    assert [m["metric"] for m in comparison["metrics"] if m["worse"]] == ["weather accuracy"]

    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "confusion_v1_weather.png", "confusion_v2_weather.png", "pr_curve_v1.png", "pr_curve_v2.png",
        "review.json"]
    with Image.open(folder / "pr_curve_v2.png") as picture:
        assert picture.format == "PNG" and picture.width > 0
    report = (folder / "README.md").read_text()
    assert "the newest is **worse** on weather accuracy" in report and "![confusion matrix of weather]" in report
    assert "v2: 3 predictions on 3 tasks (7 regions), 3 annotated; 1 annotations from them: unchanged 1, edited 3 " \
           "(resized 1, relabelled 2), deleted 0, added 0" in run.stdout

    # The export file gives the same review as the store.
    run = lsflow(label_studio, "review", str(out / ".lsflow" / f"project-{project}" / "snapshot" / "export.json"),
                 "--out", str(tmp_path / "from-file"))
    assert run.returncode == 0, run.stderr
    assert orjson.loads((tmp_path / "from-file" / "review.json").read_bytes()) == result


def test_the_dagster_asset_warns_when_the_newest_model_is_worse(label_studio, reviewed_project, tmp_path):
    project = str(reviewed_project[0])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PROJECTS_PARTITION_NAME, [project])
        result = dg.materialize(
            [label_studio_snapshot, normalized_tasks, prediction_review], partition_key=project, instance=instance,
            resources={"task_source": LabelStudioResource(url=label_studio.url, api_key=label_studio.legacy_token),
                       "settings": DatasetSettings(output_root=str(tmp_path))})
    assert result.success  # a WARN check does not fail the run
    (check,) = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed, check.severity) == ("newest_model_not_worse", False,
                                                              dg.AssetCheckSeverity.WARN)
    assert check.metadata["worse_on"].value == "weather accuracy"
    metadata = result.asset_materializations_for_node("prediction_review")[0].metadata
    rows = {r.data["model_version"]: r.data for r in metadata["model_versions"].value.records}
    assert (rows["v1"]["unchanged"], rows["v1"]["moved"], rows["v1"]["deleted"], rows["v1"]["added"]) == (2, 1, 1, 1)
    assert (rows["v2"]["resized"], rows["v2"]["relabelled"]) == (1, 2)
    assert "| box | Car | 4 | 0 | 0 |" in metadata["classes_v2"].value
    assert (tmp_path / f"project-{project}" / "review" / "README.md").is_file()
