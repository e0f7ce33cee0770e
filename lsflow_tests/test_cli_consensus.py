"""The consensus policy end to end: a crafted three-annotator export through `lsflow convert`, the
merged boxes read back from COCO (pycocotools) and YOLO, against values worked out by hand."""

import json
import math

import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO

from lsflow.cli import main
from lsflow.core.incremental.store import write_store
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import Task
from lsflow.project.versions import task_lineage

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="cat"/><Label value="dog"/><Label value="bird"/><Label value="car"/>
  </RectangleLabels>
  <Choices name="time" toName="image"><Choice value="day"/><Choice value="night"/></Choices>
</View>"""


def _box(x, y, w, h, label, width, height, rotation=0.0):
    """A box given in pixels, stored in percent as Label Studio does."""
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": width,
            "original_height": height, "value": {"x": 100 * x / width, "y": 100 * y / height, "width": 100 * w / width,
                                                 "height": 100 * h / height, "rotation": rotation,
                                                 "rectanglelabels": [label]}}


def _choice(value):
    return {"type": "choices", "from_name": "time", "to_name": "image", "value": {"choices": [value]}}


def _annotation(annotation_id, who, *results, **extra):
    return {"id": annotation_id, "completed_by": {"id": 10 + len(who), "email": f"{who}@example.com"},
            "created_at": f"2025-01-0{annotation_id % 9 + 1}T00:00:00Z", "result": [dict(r, id=f"r{annotation_id}-{k}")
                                                                                   for k, r in enumerate(results)],
            **extra}


def _export():
    # a.jpg, 200x100 px. Cats: (20,10,40,30), (24,14,40,30), (22,12,46,30) — alice and bob overlap
    # 36x26 = 936 of 1464 px (IoU 0.64); carol overlaps their mean (22,12,40,30) 1200 of 1380 (0.87).
    # Dogs: alice (120,50,40,40) and bob (130,50,40,40), IoU 1200/2000 = 0.6; carol drew none.
    # Time: day, day, night.
    first = {"id": 1, "data": {"image": "/data/upload/1/a.jpg"}, "annotations": [
        _annotation(1, "alice", _box(20, 10, 40, 30, "cat", 200, 100), _box(120, 50, 40, 40, "dog", 200, 100),
                    _choice("day")),
        _annotation(2, "bob", _box(24, 14, 40, 30, "cat", 200, 100), _box(130, 50, 40, 40, "dog", 200, 100),
                    _choice("day")),
        _annotation(3, "carol", _box(22, 12, 46, 30, "cat", 200, 100), _choice("night")),
    ]}
    # b.jpg, 100x100: two birds far apart, one each; the time a tie (day, night, none): no quorum.
    second = {"id": 2, "data": {"image": "/data/upload/1/b.jpg"}, "annotations": [
        _annotation(4, "alice", _box(10, 10, 20, 20, "bird", 100, 100), _choice("day")),
        _annotation(5, "bob", _box(60, 60, 20, 20, "bird", 100, 100), _choice("night")),
        _annotation(6, "carol"),
    ]}
    # c.jpg, 100x50: a car rotated 30°, 30°, 36° about its top-left corner; dave's cancelled
    # annotation does not count towards the quorum (3 annotations: quorum 2).
    third = {"id": 3, "data": {"image": "/data/upload/1/c.jpg"}, "annotations": [
        _annotation(7, "alice", _box(10, 10, 40, 20, "car", 100, 50, 30)),
        _annotation(8, "bob", _box(12, 10, 40, 20, "car", 100, 50, 30)),
        _annotation(9, "carol", _box(10, 12, 40, 20, "car", 100, 50, 36)),
        _annotation(10, "dave", _box(0, 0, 5, 5, "car", 100, 50), was_cancelled=True),
    ]}
    return [first, second, third]


def _rotated_envelope(x, y, w, h, degrees):
    """The axis-aligned bounds of a w×h box turned `degrees` clockwise about (x, y) (y down)."""
    t = math.radians(degrees)
    corners = [(x + dx * math.cos(t) - dy * math.sin(t), y + dx * math.sin(t) + dy * math.cos(t))
               for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), min(ys), max(xs), max(ys)


def test_consensus_merges_three_annotators_into_coco_and_yolo(tmp_path):
    export, config = tmp_path / "export.json", tmp_path / "config.xml"
    export.write_text(json.dumps(_export()))
    config.write_text(CONFIG)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(export), "--format", "COCO,YOLO", "--out", str(out),
                                       "--config", str(config), "--annotations", "consensus"])
    assert result.exit_code == 0, result.output

    # Hand-computed fusions (every weight 1: annotations carry no score): the mean of each coordinate.
    cat = (22.0, 12.0, 42.0, 30.0)  # x (20+24+22)/3, y (10+14+12)/3, w (40+40+46)/3, h 30
    dog = (125.0, 50.0, 40.0, 40.0)
    # Car: corner ((10+12+10)/3, (10+10+12)/3), 40x20, rotation the circular mean of 30, 30, 36.
    angle = math.degrees(math.atan2(2 * math.sin(math.radians(30)) + math.sin(math.radians(36)),
                                    2 * math.cos(math.radians(30)) + math.cos(math.radians(36))))
    assert 31.9 < angle < 32.1
    xmin, ymin, xmax, ymax = _rotated_envelope(32 / 3, 32 / 3, 40, 20, angle)
    car = (xmin, ymin, xmax - xmin, ymax - ymin)

    coco = COCO(str(out / "COCO" / "result.json"))
    images = {image["file_name"].rsplit("/", 1)[-1]: image["id"] for image in coco.loadImgs(coco.getImgIds())}
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}

    def boxes(file_name):
        return sorted((names[a["category_id"]], *a["bbox"]) for a in coco.loadAnns(coco.getAnnIds(imgIds=images[file_name])))

    assert boxes("a.jpg") == [("cat", *map(pytest.approx, cat)), ("dog", *map(pytest.approx, dog))]
    assert boxes("b.jpg") == []
    assert boxes("c.jpg") == [("car", *map(pytest.approx, car))]

    # YOLO: class ids in the config's order, centre and size normalized by the image.
    rows = {}
    for path in (out / "YOLO" / "labels").rglob("*.txt"):
        rows[path.stem] = sorted(tuple(float(v) for v in line.split()) for line in path.read_text().splitlines())

    def yolo(class_id, box, width, height):
        x, y, w, h = box
        return pytest.approx((class_id, (x + w / 2) / width, (y + h / 2) / height, w / width, h / height), abs=1e-6)

    assert rows["a"] == [yolo(0, cat, 200, 100), yolo(1, dog, 200, 100)]
    assert rows.get("b", []) == []
    assert rows["c"] == [yolo(3, car, 100, 50)]

    # Reported per task, not silently dropped: the originals are merged, dave's cancelled, and the
    # birds and the tied choice of task 2 reached no quorum.
    report = json.loads((out / "COCO" / "lsflow_report.json").read_text())
    assert report["annotations_exported"] == 3
    assert report["annotations_skipped"] == {"cancelled by the annotator": 1, "merged into the consensus": 9}
    assert report["dropped_by_reason"]["no consensus quorum: 1 of 3 annotations agree (quorum 2)"] == 2
    assert report["dropped_by_reason"]["no consensus quorum: 1 of 3 annotations agree (quorum 2), a tie"] == 2
    assert report["balanced"]
    dropped = [json.loads(line) for line in (out / "COCO" / "lsflow_dropped.jsonl").read_text().splitlines()]
    no_quorum = sorted((d["task"], d["annotation"], d["region"]) for d in dropped if "quorum" in d["reason"])
    assert no_quorum == [(2, 4, "r4-0"), (2, 4, "r4-1"), (2, 5, "r5-0"), (2, 5, "r5-1")]
    yolo_report = json.loads((out / "YOLO" / "lsflow_report.json").read_text())
    assert yolo_report["dropped_by_reason"]["no consensus quorum: 1 of 3 annotations agree (quorum 2)"] == 2


def test_a_consensus_dataset_lineage_lists_every_merged_annotation(tmp_path):
    write_store((Task.from_dict(raw) for raw in _export()), tmp_path / "store", "image", {})
    rows = task_lineage(tmp_path / "store", AnnotationPolicy.parse("consensus")).to_pylist()
    # Dave's cancelled annotation (10) was not merged.
    assert {row["task_id"]: [a["id"] for a in row["annotations"]] for row in rows} == {
        1: [1, 2, 3], 2: [4, 5, 6], 3: [7, 8, 9]}
    assert rows[0]["annotations"][0]["annotator"] == "alice@example.com"
