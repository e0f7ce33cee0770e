"""The YOLO family: geometry pinned by hand, one row kind per file, pose groups, splits, images, checks."""

import math
import shutil
from collections import Counter

import pytest
import yaml
from PIL import Image

from lsflow.core.formats import writer_class
from lsflow.core.formats.shared.ultralytics import split_of
from lsflow_tests.core.formats.exporting import (
    annotation,
    dropped,
    files_mapping,
    keypoint,
    polygon,
    rectangle,
    rows,
    run,
    task,
)
from lsflow_tests.paths import IMAGE_EXPORT, SAMPLE_MEDIA

YOLO_FORMATS = ["YOLO", "YOLO_OBB", "YOLO_SEG", "YOLO_POSE"]
C30, S30 = math.sqrt(3) / 2, 0.5
# An 800×400 image (not square: a rotation done in percent space would come out sheared).
# The rectangle is 120×60 px with its top-left corner at (200, 100): 25%, 25%, 15%, 15%.
WIDTH, HEIGHT = 800, 400
CORNERS = {
    # Turned clockwise about the top-left corner; y grows downwards.
    90: [(200, 100), (200, 220), (140, 220), (140, 100)],
    30: [(200, 100), (200 + 120 * C30, 100 + 120 * S30), (200 + 120 * C30 - 60 * S30, 100 + 120 * S30 + 60 * C30),
         (200 - 60 * S30, 100 + 60 * C30)],
}


def _normalized(points):
    return [v for x, y in points for v in (x / WIDTH, y / HEIGHT)]


@pytest.mark.parametrize("rotation", [90, 30])
def test_rotated_rectangle_corners_and_envelope_worked_out_by_hand(tmp_path, rotation):
    tasks = [task(1, [annotation(10, [rectangle("r", 25, 25, 15, 15, rotation=rotation, size=(WIDTH, HEIGHT))])])]
    results = run(tmp_path, tasks, YOLO_FORMATS)
    corners = CORNERS[rotation]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    envelope = [(min(xs) + max(xs)) / 2 / WIDTH, (min(ys) + max(ys)) / 2 / HEIGHT,
                (max(xs) - min(xs)) / WIDTH, (max(ys) - min(ys)) / HEIGHT]
    assert rows(results["YOLO"], "task-1") == [pytest.approx([0] + envelope, abs=1e-6)]
    assert rows(results["YOLO_OBB"], "task-1") == [pytest.approx([0] + _normalized(corners), abs=1e-6)]
    assert rows(results["YOLO_SEG"], "task-1") == [pytest.approx([0] + _normalized(corners), abs=1e-6)]
    assert rows(results["YOLO_POSE"], "task-1") == [pytest.approx([0] + envelope + [0, 0, 0] * 3, abs=1e-6)]


def test_yolo_obb_is_never_yolo_when_a_rectangle_is_rotated(tmp_path):
    tasks = [task(1, [annotation(10, [rectangle("r", 25, 25, 15, 15, rotation=30, size=(WIDTH, HEIGHT))])])]
    results = run(tmp_path, tasks, ["YOLO", "YOLO_OBB"])
    (obb,), (box,) = rows(results["YOLO_OBB"], "task-1"), rows(results["YOLO"], "task-1")
    assert len(obb) == 9 and len(box) == 5


def test_each_file_holds_one_kind_of_row(tmp_path):
    tasks = [task(1, [annotation(10, [
        rectangle("box", 10, 10, 20, 20),
        rectangle("turned", 50, 20, 20, 10, rotation=45),
        polygon("road", [[0, 60], [100, 60], [100, 100], [0, 100]]),
    ])])]
    results = run(tmp_path, tasks, YOLO_FORMATS)
    assert [len(r) for r in rows(results["YOLO"], "task-1")] == [5, 5, 5]
    assert [len(r) for r in rows(results["YOLO_SEG"], "task-1")] == [9, 9, 9]
    assert [len(r) for r in rows(results["YOLO_OBB"], "task-1")] == [9, 9]
    assert [d["reason"] for d in dropped(results["YOLO_OBB"])] == ["polygons are exported by YOLO_SEG, not YOLO_OBB"]
    # The polygon's row in YOLO is its envelope: x 0..1, y 0.6..1.
    assert rows(results["YOLO"], "task-1")[2] == pytest.approx([2, 0.5, 0.8, 1.0, 0.4])


def test_outlines_crossing_the_edge_are_clipped_and_counted(tmp_path):
    # A triangle poking out on the right: (80%, 10%), (120%, 50%), (80%, 90%) of 640×480.
    tasks = [task(1, [annotation(10, [polygon("tri", [[80, 10], [120, 50], [80, 90]]),
                                      rectangle("out", 95, 10, 10, 10, rotation=10)])])]
    results = run(tmp_path, tasks, ["YOLO_SEG", "YOLO_OBB"])
    (triangle, box) = rows(results["YOLO_SEG"], "task-1")
    # The edge x = 640 cuts both slanted sides at y = 30% and 70%.
    assert triangle == pytest.approx([2, 0.8, 0.1, 1.0, 0.3, 1.0, 0.7, 0.8, 0.9], abs=1e-6)
    assert max(box[1::2]) == pytest.approx(1.0)
    (oriented,) = rows(results["YOLO_OBB"], "task-1")
    assert all(0 <= v <= 1 for v in oriented[1:]) and max(oriented[1::2]) == 1.0
    assert results["YOLO_SEG"].report["regions_clipped"] == 2 and results["YOLO_OBB"].report["regions_clipped"] == 1


def test_pose_rows_hold_the_keypoints_of_their_box_in_model_index_order(tmp_path):
    tasks = [task(1, [annotation(10, [
        rectangle("person", 20, 10, 40, 80, label="Person"),
        keypoint("hand", 55, 50, "right_hand", parent="person"),  # listed before head: order comes from the config
        keypoint("head", 40, 15, "head", parent="person"),
        keypoint("head2", 41, 16, "head", parent="person"),  # a second head for the same person
        keypoint("loose", 90, 90, "left_hand"),  # no parent box
    ])])]
    results = run(tmp_path, tasks, ["YOLO_POSE"])
    (row,) = rows(results["YOLO_POSE"], "task-1")
    assert row == pytest.approx([1, 0.4, 0.5, 0.4, 0.8, 0.4, 0.15, 2, 0, 0, 0, 0.55, 0.5, 2], abs=1e-6)
    reasons = Counter(d["reason"] for d in dropped(results["YOLO_POSE"]))
    assert reasons == {"a second 'head' keypoint for the same object": 1,
                       "keypoint has no parent rectangle (parentID), so no YOLO_POSE row can hold it": 1}
    data = yaml.safe_load((results["YOLO_POSE"].path / "data.yaml").read_text())
    assert data["kpt_shape"] == [3, 3]
    assert results["YOLO_POSE"].report["balanced"]


def test_without_model_index_keypoints_follow_the_label_config_order(tmp_path):
    config = """<View><Image name="image" value="$image"/>
      <RectangleLabels name="label" toName="image"><Label value="Person"/></RectangleLabels>
      <KeyPointLabels name="joints" toName="image"><Label value="tail"/><Label value="nose"/></KeyPointLabels>
    </View>"""
    tasks = [task(1, [annotation(10, [rectangle("p", 0, 0, 50, 50, label="Person"),
                                      keypoint("n", 10, 10, "nose", parent="p")])])]
    (row,) = rows(run(tmp_path, tasks, ["YOLO_POSE"], config=config)["YOLO_POSE"], "task-1")
    assert row[5:] == pytest.approx([0, 0, 0, 0.1, 0.1, 2])


def test_split_is_a_pure_function_of_the_task_id():
    assert [split_of(i) for i in range(101, 109)] == [split_of(i) for i in range(101, 109)]
    shares = Counter(split_of(i) for i in range(20000))
    assert shares["train"] / 20000 == pytest.approx(0.8, abs=0.02)
    assert shares["val"] / 20000 == pytest.approx(0.1, abs=0.02)
    assert shares["test"] / 20000 == pytest.approx(0.1, abs=0.02)


def test_adding_tasks_never_moves_a_task_to_another_split(tmp_path):
    few = [task(i, [annotation(i, [rectangle(f"r{i}", 10, 10, 10, 10)])]) for i in range(1, 30)]
    more = few + [task(i, [annotation(i, [rectangle(f"r{i}", 10, 10, 10, 10)])]) for i in range(30, 90)]
    first = files_mapping(run(tmp_path / "a", few, ["YOLO"])["YOLO"])
    second = files_mapping(run(tmp_path / "b", more, ["YOLO"])["YOLO"])
    assert {i: first[i]["label_files"] for i in first} == {i: second[i]["label_files"] for i in first}
    assert {f["label_files"][0].split("/")[1] for f in second.values()} == {"train", "val", "test"}


def test_ultralytics_layout_and_data_yaml(tmp_path):
    results = run(tmp_path, IMAGE_EXPORT, ["YOLO"], media_root=SAMPLE_MEDIA)
    out = results["YOLO"].path
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert "path" not in data  # resolved against the YAML's own folder
    assert {k: data[k] for k in ("train", "val", "test")} == {s: f"images/{s}" for s in ("train", "val", "test")}
    assert data["names"] == {0: "Car", 1: "Person", 2: "Road"}
    assert (out / "classes.txt").read_text() == "Car\nPerson\nRoad\n"
    for entry in files_mapping(results["YOLO"]).values():
        split = split_of(entry["task"])
        (label,) = entry["label_files"]
        assert label.startswith(f"labels/{split}/") and entry["image_file"].startswith(f"images/{split}/")
        assert (out / label).is_file()


def test_two_tasks_sharing_an_image_basename_get_separate_files_and_images(tmp_path):
    results = run(tmp_path, IMAGE_EXPORT, ["YOLO_WITH_IMAGES"], media_root=SAMPLE_MEDIA)
    result = results["YOLO_WITH_IMAGES"]
    mapping = files_mapping(result)
    cam1, cam2 = mapping[107], mapping[108]
    assert cam1["image"].endswith("cam1/frame_0001.jpg") and cam2["image"].endswith("cam2/frame_0001.jpg")
    assert cam1["image_file"] != cam2["image_file"] and cam1["label_files"] != cam2["label_files"]
    for entry, source in ((cam1, "cam1"), (cam2, "cam2")):
        copied = result.path / entry["image_file"]
        assert copied.read_bytes() == (SAMPLE_MEDIA / "upload" / "1" / source / "frame_0001.jpg").read_bytes()
        with Image.open(copied) as image:
            assert image.size == (320, 180)
    # Each label file holds its own task's boxes: cam1 a Car and a Person, cam2 a Car (its polygon is YOLO_SEG's).
    assert [r[0] for r in rows(result, cam1["label_files"][0].split("/")[-1][:-4])] == [0, 1]
    assert [r[0] for r in rows(result, cam2["label_files"][0].split("/")[-1][:-4])] == [2, 0]
    # Every image of every split opens and has a label file.
    images = list(result.path.glob("images/*/*"))
    assert len(images) == 8
    for image_path in images:
        with Image.open(image_path) as image:
            image.load()
        assert (result.path / "labels" / image_path.parent.name / f"{image_path.stem}.txt").is_file()


def test_a_missing_or_unreadable_image_leaves_its_task_out_of_a_with_images_dataset(tmp_path):
    media = tmp_path / "media"
    (media / "upload" / "1").mkdir(parents=True)
    shutil.copyfile(SAMPLE_MEDIA / "upload" / "1" / "3f2a1b9c-street.jpg", media / "upload" / "1" / "street.jpg")
    (media / "upload" / "1" / "broken.jpg").write_text("not an image")
    tasks = [task(1, [annotation(10, [rectangle("r", 10, 10, 20, 20)])], image="/data/upload/1/gone.jpg"),
             task(2, [annotation(11, [rectangle("b", 10, 10, 20, 20)])], image="/data/upload/1/broken.jpg"),
             task(101, [annotation(12, [rectangle("s", 10, 10, 20, 20, size=(640, 480))])],
                  image="/data/upload/1/street.jpg")]
    result = run(tmp_path, tasks, ["YOLO_WITH_IMAGES"], media_root=media)["YOLO_WITH_IMAGES"]
    assert set(files_mapping(result)) == {101}
    assert [p.name for p in result.path.glob("labels/*/*")] == ["street.txt"]
    assert result.report["images_skipped"] == {"image file not available to copy into the dataset": 1,
                                               "image file is not an image Pillow can read": 1}
    assert [(d["task"], d["region"]) for d in dropped(result)] == [(1, "r"), (2, "b")]
    assert result.report["balanced"]
    checks = {o.name: o for o in writer_class("YOLO_WITH_IMAGES").check(result.path, _context())}
    assert checks["yolo_label_per_image"].passed and checks["images_readable"].passed


def test_an_image_without_a_suffix_gets_the_one_of_its_format(tmp_path):
    media = tmp_path / "media"
    (media / "upload" / "1").mkdir(parents=True)
    shutil.copyfile(SAMPLE_MEDIA / "upload" / "1" / "3f2a1b9c-street.jpg", media / "upload" / "1" / "photo")
    tasks = [task(101, [annotation(12, [rectangle("s", 10, 10, 20, 20)])], image="/data/upload/1/photo")]
    result = run(tmp_path, tasks, ["YOLO_WITH_IMAGES"], media_root=media)["YOLO_WITH_IMAGES"]
    entry = files_mapping(result)[101]
    split = split_of(101)
    assert entry["image_file"] == f"images/{split}/photo.jpeg" and entry["label_files"] == [f"labels/{split}/photo.txt"]
    with Image.open(result.path / entry["image_file"]) as image:
        assert image.format == "JPEG" and image.size == (640, 480)


def test_missing_image_size_is_read_from_the_image_header_or_the_region_is_dropped(tmp_path):
    tasks = [task(101, [annotation(10, [rectangle("r", 10, 62.5, 12.5, 12.5, size=None)])],
                  image="/data/upload/1/3f2a1b9c-street.jpg")]
    with_media = run(tmp_path / "a", tasks, ["YOLO"], media_root=SAMPLE_MEDIA)["YOLO"]
    # The header says 640×480: the box is 80×60 px at (64, 300).
    assert rows(with_media, "3f2a1b9c-street") == [pytest.approx([0, 0.1625, 0.6875, 0.125, 0.125])]
    without = run(tmp_path / "b", tasks, ["YOLO"])["YOLO"]
    assert rows(without, "3f2a1b9c-street") == []
    assert [d["reason"] for d in dropped(without)] == [
        "missing original_width/original_height and the image is not reachable to read them"]


def test_classes_follow_config_ids_with_category_gaps_in_classes_txt_and_data_yaml(tmp_path):
    config = """<View><Image name="image" value="$image"/>
      <RectangleLabels name="label" toName="image">
        <Label value="Car" category="2"/><Label value="Person"/><Label value="Bus" category="4"/>
      </RectangleLabels></View>"""
    tasks = [task(1, [annotation(10, [rectangle("b", 10, 10, 10, 10, label="Bus")])])]
    result = run(tmp_path, tasks, ["YOLO"], config=config)["YOLO"]
    assert (result.path / "classes.txt").read_text() == "Person\nunused_1\nCar\nunused_3\nBus\n"
    assert yaml.safe_load((result.path / "data.yaml").read_text())["names"] == {
        0: "Person", 1: "unused_1", 2: "Car", 3: "unused_3", 4: "Bus"}
    assert rows(result, "task-1")[0][0] == 4


def test_every_annotation_of_a_task_becomes_rows(tmp_path):
    result = run(tmp_path, IMAGE_EXPORT, ["YOLO"])["YOLO"]
    # Task 102: a Person box from each of its two annotations.
    assert [r[0] for r in rows(result, "8c1d2e3f-person")] == [1, 1]


@pytest.mark.parametrize("name, line, problem", [
    ("YOLO", "0 0.5 0.5 0.2", "4 columns, a box row has 5"),
    ("YOLO", "0 0.5 1.2 0.2 0.2", "coordinates outside [0, 1]: [1.2]"),
    ("YOLO", "7 0.5 0.5 0.2 0.2", "class id 7 is not in classes.txt (3 classes)"),
    ("YOLO_OBB", "0 0.1 0.1 0.2 0.1 0.2 0.2 0.1", "8 columns, an oriented box row has 9"),
    ("YOLO_SEG", "0 0.1 0.1 0.2 0.1", "5 columns: a polygon row is a class and at least 3 x y pairs"),
    ("YOLO_POSE", "1 0.5 0.5 0.2 0.2 0.1 0.1 2 0 0 0 0.2 0.2 3", "keypoint visibility not 0, 1 or 2"),
    ("YOLO_POSE", "1 0.5 0.5 0.2 0.2 0.1 0.1 2", "8 columns, a pose row with 3 keypoints has 14"),
])
def test_row_check_catches_rows_ultralytics_would_reject(tmp_path, name, line, problem):
    result = run(tmp_path, IMAGE_EXPORT, [name])[name]
    (label,) = result.path.glob("labels/*/3f2a1b9c-street.txt")
    label.write_text(label.read_text() + line + "\n")
    outcome = {o.name: o for o in writer_class(name).check(result.path, _context())}["yolo_rows_valid"]
    assert not outcome.passed and problem in outcome.problems[0]


def test_label_file_check_catches_a_lost_label_file(tmp_path):
    result = run(tmp_path, IMAGE_EXPORT, ["YOLO_WITH_IMAGES"], media_root=SAMPLE_MEDIA)["YOLO_WITH_IMAGES"]
    checks = {o.name: o for o in writer_class("YOLO_WITH_IMAGES").check(result.path, _context())}
    assert all(o.passed for o in checks.values())
    next(result.path.glob("labels/*/8c1d2e3f-person.txt")).unlink()
    checks = {o.name: o for o in writer_class("YOLO_WITH_IMAGES").check(result.path, _context())}
    assert not checks["yolo_label_per_image"].passed
    assert any("8c1d2e3f-person.png has no" in p for p in checks["yolo_label_per_image"].problems)


def test_layout_check_reports_an_empty_val_split(tmp_path):
    train_only = [i for i in range(1, 200) if split_of(i) == "train"][:3]
    tasks = [task(i, [annotation(i, [rectangle(f"r{i}", 10, 10, 10, 10)])]) for i in train_only]
    result = run(tmp_path, tasks, ["YOLO"])["YOLO"]
    layout = {o.name: o for o in writer_class("YOLO").check(result.path, _context())}["ultralytics_layout"]
    assert not layout.passed and "the val split has no images" in layout.problems[0]
    assert not next(s for s in writer_class("YOLO").checks if s.name == "ultralytics_layout").blocking


def _context():
    from lsflow.core.model.label_config import LabelConfig
    from lsflow.core.pipeline.context import export_context
    from lsflow_tests.paths import IMAGE_CONFIG

    return export_context(LabelConfig.from_file(IMAGE_CONFIG), lambda: [])
