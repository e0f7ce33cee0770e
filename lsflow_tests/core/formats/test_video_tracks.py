"""MOT, YOLO_VIDEO, YOLO_OBB_VIDEO and COCO_VIDEO from a real (PyAV-written) video, checked against boxes worked
out by hand from the drawn rectangle, with py-motmetrics, pycocotools and Pillow reading the output."""

from __future__ import annotations

import contextlib
import io
import json

import motmetrics
import pytest
from PIL import Image
from pycocotools.coco import COCO

from lsflow.core.formats import writer_class
from lsflow.core.formats.base import ExportContext
from lsflow.core.model.label_config import LabelConfig
from lsflow_tests.core.formats.exporting import annotation, run
from lsflow_tests.video_media import (
    BALL_FRAMES,
    FPS,
    FRAMES,
    HEIGHT,
    VIDEO_CONFIG,
    WIDTH,
    ball_sequence,
    ball_x,
    keyframe,
    track_result,
    write_video,
)


def failed_checks(out, name):
    context = ExportContext(LabelConfig.parse(VIDEO_CONFIG).classes())
    return [check.name for check in writer_class(name).check(out / name, context) if not check.passed]


def video_task(task_id: int, video: str, results: list[dict]) -> dict:
    return {"id": task_id, "data": {"video": video}, "annotations": [annotation(task_id * 10, results)],
            "predictions": [], "updated_at": "2025-10-02T09:00:00Z"}


@pytest.fixture
def exported(tmp_path):
    upload = tmp_path / "media" / "upload" / "1"
    upload.mkdir(parents=True)
    write_video(upload / "clip.mp4")
    ball = track_result("ball", ball_sequence())
    # Drawn at x = 58 px on frame 25 only (disabled right after): 6 of its 12 px lie inside the frame.
    player = track_result("edge", [keyframe(25, x=58), keyframe(26, enabled=False, x=58)], label="Player")
    timeline = {"id": "seg", "from_name": "t", "to_name": "video", "type": "timelinelabels",
                "value": {"ranges": [{"start": 1, "end": 4}], "timelinelabels": ["Ball"]}}
    empty = track_result("empty", [])
    tasks = [video_task(1, "/data/upload/1/clip.mp4", [ball, player, timeline, empty]),
             video_task(2, "/data/upload/1/missing.mp4", [track_result("lost", [keyframe(1)])])]
    results = run(tmp_path, tasks, ["MOT", "YOLO_VIDEO", "YOLO_OBB_VIDEO", "COCO_VIDEO"], config=VIDEO_CONFIG,
                  media_root=tmp_path / "media", options={"frame_step": "1"})
    return tmp_path / "out", results


def test_mot_ground_truth_loads_in_motmetrics_with_the_hand_computed_boxes(exported):
    out, results = exported
    [gt] = list((out / "MOT").glob("*/clip__task1/gt/gt.txt"))
    frame = motmetrics.io.loadtxt(str(gt), fmt="mot15-2D", min_confidence=1)
    ball = frame.xs(1, level="Id")
    assert list(ball.index) == BALL_FRAMES
    # motmetrics gives 0-based pixels back (MOT's are 1-based).
    assert list(ball["X"]) == [ball_x(f) for f in BALL_FRAMES]
    assert set(ball["Y"]) == {10} and set(ball["Width"]) == {12} and set(ball["Height"]) == {10}
    player = frame.xs(2, level="Id")
    assert list(player.index) == [25, 26]
    assert list(player["Width"]) == [6, 6] and list(player["ClassId"]) == [2, 2]
    seqinfo = (gt.parent.parent / "seqinfo.ini").read_text()
    assert f"frameRate={FPS}\nseqLength={FRAMES}\nimWidth={WIDTH}\nimHeight={HEIGHT}" in seqinfo
    tracks = [json.loads(line) for line in (out / "MOT" / "lsflow_tracks.jsonl").read_text().splitlines()]
    assert [(t["region"], t["track_id"], t["first_frame"], t["last_frame"]) for t in tracks] == [
        ("ball", 1, 1, 30), ("edge", 2, 25, 26)]
    # Hypotheses placed where the test expects the ball score MOTA 1 against the file's ground truth
    # (IoU distance by hand: motmetrics 1.4's iou_matrix calls np.asfarray, gone in NumPy 2).
    accumulator = motmetrics.MOTAccumulator(auto_id=False)
    for number in BALL_FRAMES:
        gx, gy, gw, gh = ball.loc[number, ["X", "Y", "Width", "Height"]]
        hx, hy, hw, hh = ball_x(number), 10, 12, 10
        inter = max(0, min(gx + gw, hx + hw) - max(gx, hx)) * max(0, min(gy + gh, hy + hh) - max(gy, hy))
        distance = 1 - inter / (gw * gh + hw * hh - inter)
        accumulator.update([1], [7], [[distance if distance < 0.5 else float("nan")]], frameid=number)
    summary = motmetrics.metrics.create().compute(accumulator, metrics=["mota", "num_switches"])
    assert summary["mota"].iloc[0] == 1.0 and summary["num_switches"].iloc[0] == 0


def test_accounting_names_every_region_left_out(exported):
    out, results = exported
    report = results["MOT"].report
    assert (report["regions_in"], report["regions_written"], report["regions_clipped"]) == (5, 2, 1)
    assert report["dropped_by_reason"] == {
        "'timelinelabels' regions are not tracks: MOT holds VideoRectangle tracks only": 1,
        "track has no frame inside the video": 1,
        "video file not available": 1,
    }
    dropped = [json.loads(line) for line in (out / "MOT" / "lsflow_dropped.jsonl").read_text().splitlines()]
    assert {(d["task"], d["region"]) for d in dropped} == {(1, "seg"), (1, "empty"), (2, "lost")}
    assert failed_checks(out, "MOT") == []


def test_yolo_video_frames_and_rows(exported):
    out, results = exported
    dataset = out / "YOLO_VIDEO"
    images = sorted(dataset.glob("images/*/clip__task1_*.jpg"))
    assert len(images) == FRAMES  # every frame, with or without an object
    for image in images:
        with Image.open(image) as opened:
            assert opened.size == (WIDTH, HEIGHT)
    assert len({image.parent.name for image in images}) == 1  # one video, one split
    split = images[0].parent.name
    for number in range(1, FRAMES + 1):
        rows = (dataset / "labels" / split / f"clip__task1_{number:06d}.txt").read_text().splitlines()
        expected = []
        if number in BALL_FRAMES:
            x = ball_x(number)
            expected.append(f"0 {(x + 6) / WIDTH:.6f} {15 / HEIGHT:.6f} {12 / WIDTH:.6f} {10 / HEIGHT:.6f}")
        if number in (25, 26):
            expected.append(f"1 {61 / WIDTH:.6f} {15 / HEIGHT:.6f} {6 / WIDTH:.6f} {10 / HEIGHT:.6f}")
        assert rows == expected, number
    # One video: one split, so the (non-blocking) layout check warns that val is empty.
    assert failed_checks(out, "YOLO_VIDEO") == failed_checks(out, "YOLO_OBB_VIDEO") == ["ultralytics_layout"]
    obb = (out / "YOLO_OBB_VIDEO" / "labels" / split / "clip__task1_000002.txt").read_text().split()
    assert obb == ["0", *(f"{v:.6f}" for v in (6 / WIDTH, 10 / HEIGHT, 18 / WIDTH, 10 / HEIGHT,
                                                 18 / WIDTH, 20 / HEIGHT, 6 / WIDTH, 20 / HEIGHT))]


def load_coco(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_coco_video_loads_in_pycocotools_with_videos_frames_and_tracks(exported):
    out, results = exported
    dataset = out / "COCO_VIDEO"
    coco = load_coco(dataset / "result.json")
    [video] = coco.dataset["videos"]
    assert (video["id"], video["name"], video["width"], video["height"], video["fps"], video["frames"]) == (
        1, "clip__task1", WIDTH, HEIGHT, FPS, FRAMES)
    # Every frame an image, in order: ids 1.., frame_id the place among extracted frames, frame_index 0-based.
    assert [(i["id"], i["video_id"], i["frame_id"], i["frame_index"], i["file_name"]) for i in coco.dataset["images"]] == [
        (f, 1, f - 1, f - 1, f"images/clip__task1/{f:06d}.jpg") for f in range(1, FRAMES + 1)]
    with Image.open(dataset / "images" / "clip__task1" / "000007.jpg") as frame:
        assert frame.size == (WIDTH, HEIGHT)
    assert [(t["id"], t["video_id"], t["category_id"], t["label_studio"]["region"]) for t in coco.dataset["tracks"]] == [
        (1, 1, 1, "ball"), (2, 1, 2, "edge")]
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {1: "Ball", 2: "Player"}
    # The boxes by frame and track, worked out by hand (the player's 12 px box cut to the 6 px inside).
    expected = {(f, 1): [ball_x(f), 10, 12, 10] for f in BALL_FRAMES} | {(f, 2): [58, 10, 6, 10] for f in (25, 26)}
    found = {}
    for image_id in coco.getImgIds():
        for box in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            assert box["track_id"] == box["instance_id"] and box["video_id"] == 1
            assert box["iscrowd"] == 0 and box["area"] == box["bbox"][2] * box["bbox"][3]
            found[(coco.imgs[image_id]["frame_index"] + 1, box["track_id"])] = box["bbox"]
    assert found == expected
    assert results["COCO_VIDEO"].report["regions_written"] == 2
    assert failed_checks(out, "COCO_VIDEO") == []
    (dataset / "images" / "clip__task1" / "000007.jpg").unlink()  # a label row without its frame: caught
    assert failed_checks(out, "COCO_VIDEO") == ["coco_video_loads"]


def test_frame_step_keeps_every_kth_frame(tmp_path):
    upload = tmp_path / "media" / "upload" / "1"
    upload.mkdir(parents=True)
    write_video(upload / "clip.mp4")
    tasks = [video_task(1, "/data/upload/1/clip.mp4", [track_result("one", [keyframe(2), keyframe(3, False)])])]
    results = run(tmp_path, tasks, ["YOLO_VIDEO", "COCO_VIDEO"], config=VIDEO_CONFIG, media_root=tmp_path / "media",
                  options={"frame_step": "5"})
    frames = sorted(int(p.stem.rsplit("_", 1)[1]) for p in (tmp_path / "out" / "YOLO_VIDEO").glob("images/*/*.jpg"))
    assert frames == [1, 6, 11, 16, 21, 26]
    images = load_coco(tmp_path / "out" / "COCO_VIDEO" / "result.json").dataset["images"]
    assert [(i["frame_id"], i["frame_index"]) for i in images] == [(n, 5 * n) for n in range(6)]
    assert failed_checks(tmp_path / "out", "COCO_VIDEO") == []
    # The track lies on frames 2 and 3 only, neither of them extracted: dropped, and said why.
    assert results["YOLO_VIDEO"].report["dropped_by_reason"] == {"track has no frame inside the video among those exported "
                                                    "(frame_step=5)": 1}


def test_a_label_config_frame_rate_other_than_the_videos_maps_the_track_by_time(tmp_path):
    """No frameRate in the config: Label Studio numbered the keyframes at 24 fps, the video has 10 fps.
    Label Studio frame N starts at (N - 1)/24 s and the video's frame j at (j - 1)/10 s, so frame j is
    at Label Studio position 1 + 2.4·(j - 1): keyframes 1, 25 and 49 (disabled) fall on frames 1, 11, 21."""
    upload = tmp_path / "media" / "upload" / "1"
    upload.mkdir(parents=True)
    write_video(upload / "clip.mp4")
    left = {1: 4, 25: 52, 49: 4}  # px, keyframes at 0 s, 1 s and 2 s

    def at(frame, enabled=True):
        return {"frame": frame, "enabled": enabled, "rotation": 0, "time": (frame - 1) / 24,
                "x": left[frame] * 100 / WIDTH, "y": 10 * 100 / HEIGHT, "width": 12 * 100 / WIDTH,
                "height": 10 * 100 / HEIGHT}

    tasks = [video_task(1, "/data/upload/1/clip.mp4", [track_result("one", [at(1), at(25), at(49, enabled=False)])])]
    results = run(tmp_path, tasks, ["MOT", "COCO_VIDEO"], config=VIDEO_CONFIG.replace(f'frameRate="{FPS}"', ""),
                  media_root=tmp_path / "media")
    assert results["MOT"].report["regions_written"] == 1 and not results["MOT"].report["dropped_by_reason"]
    # Frames 2..10: 4.8 px a frame towards 52 (2.4 Label Studio frames of 48 px over 24); 12..20 back the
    # same way; frame 21 is the disabled keyframe's own, and from 22 (position 51.4, frame 51) nothing.
    expected = {j: 4 + 4.8 * (j - 1) for j in range(1, 12)} | {j: 52 - 4.8 * (j - 11) for j in range(11, 22)}
    [gt] = list((tmp_path / "out" / "MOT").glob("*/clip__task1/gt/gt.txt"))
    truth = motmetrics.io.loadtxt(str(gt), fmt="mot15-2D", min_confidence=1)
    assert list(truth.index.get_level_values("FrameId")) == list(range(1, 22))
    assert list(truth["X"]) == pytest.approx([expected[j] for j in range(1, 22)], abs=0.006)
    assert set(truth["Width"]) == {12}
    [track] = [json.loads(line) for line in (tmp_path / "out" / "MOT" / "lsflow_tracks.jsonl").read_text().splitlines()]
    assert track["label_studio_fps"] == 24
    coco = load_coco(tmp_path / "out" / "COCO_VIDEO" / "result.json")
    assert (coco.dataset["videos"][0]["fps"], coco.dataset["videos"][0]["label_studio_fps"]) == (FPS, 24)
    boxes = {coco.imgs[a["image_id"]]["frame_index"] + 1: a["bbox"][0] for a in coco.anns.values()}
    assert boxes == pytest.approx(expected, abs=1e-9)
