"""A video uploaded to a real Label Studio, tracked through the API (a gap made with a disabled keyframe),
exported with `lsflow export`: per-frame boxes against hand-computed ones, MOT through py-motmetrics,
YOLO_VIDEO frames through Pillow and row validity, COCO_VIDEO through pycocotools."""

from __future__ import annotations

import contextlib
import io

import motmetrics
from PIL import Image
from pycocotools.coco import COCO

from lsflow_tests.test_cli_export import lsflow_export
from lsflow_tests.video_media import (
    BALL_FRAMES,
    FRAMES,
    HEIGHT,
    VIDEO_CONFIG,
    WIDTH,
    ball_sequence,
    ball_x,
    mota,
    track_result,
    write_video,
)


def test_video_track_exports_to_mot_and_yolo_frames(label_studio, tmp_path):
    project = label_studio.create_project("lsflow video project", VIDEO_CONFIG)
    upload = label_studio.upload(project, write_video(tmp_path / "ball.mp4"))
    label_studio.annotate(upload.task_id, [track_result("ball", ball_sequence())])

    out = tmp_path / "out"
    run = lsflow_export(label_studio, str(project), "MOT,YOLO_VIDEO,COCO_VIDEO", "--path", str(out), "--workers", "1")
    assert run.returncode == 0, run.stderr + run.stdout
    assert "FAILED" not in run.stdout, run.stdout

    # MOT: py-motmetrics reads the ground truth back; boxes where the test worked them out.
    [gt] = list((out / "MOT").glob(f"*/*__task{upload.task_id}/gt/gt.txt"))
    truth = motmetrics.io.loadtxt(str(gt), fmt="mot15-2D", min_confidence=1)
    assert list(truth.index.get_level_values("FrameId")) == BALL_FRAMES
    assert list(truth["X"]) == [ball_x(f) for f in BALL_FRAMES]
    assert set(truth["Y"]) == {10} and set(truth["Width"]) == {12} and set(truth["Height"]) == {10}
    # A tracker at the hand-computed boxes scores MOTA 1; one that keeps the box through the gap
    # (frames 11-15, as an exporter ignoring `enabled: false` would) has 5 false positives.
    assert mota(truth, {f: (ball_x(f), 10, 12, 10) for f in BALL_FRAMES}) == 1.0
    through_gap = {f: (ball_x(f), 10, 12, 10) for f in range(1, FRAMES + 1)}
    assert mota(truth, through_gap) == 1 - 5 / len(BALL_FRAMES)

    # YOLO_VIDEO: every frame extracted at the video's size, one label file each, rows as computed.
    dataset = out / "YOLO_VIDEO"
    images = sorted(dataset.glob("images/*/*.jpg"))
    assert len(images) == FRAMES
    for image in images:
        with Image.open(image) as opened:
            assert opened.size == (WIDTH, HEIGHT)
            opened.load()
    for image in images:
        frame = int(image.stem.rsplit("_", 1)[1])
        rows = (dataset / "labels" / image.parent.name / f"{image.stem}.txt").read_text().splitlines()
        expected = ([f"0 {(ball_x(frame) + 6) / WIDTH:.6f} {15 / HEIGHT:.6f} {12 / WIDTH:.6f} {10 / HEIGHT:.6f}"]
                    if frame in BALL_FRAMES else [])
        assert rows == expected, image.name
        for row in rows:
            values = [float(v) for v in row.split()[1:]]
            assert len(values) == 4 and all(0 <= v <= 1 for v in values)

    # COCO_VIDEO: the same boxes by frame through pycocotools, one track, the task as the video.
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "COCO_VIDEO" / "result.json"))
    assert [video["id"] for video in coco.dataset["videos"]] == [upload.task_id]
    assert len(coco.imgs) == FRAMES
    boxes = {coco.imgs[a["image_id"]]["frame_index"] + 1: (a["track_id"], a["bbox"]) for a in coco.anns.values()}
    assert boxes == {f: (1, [ball_x(f), 10, 12, 10]) for f in BALL_FRAMES}
