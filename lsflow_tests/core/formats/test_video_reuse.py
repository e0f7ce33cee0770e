"""Incremental re-export of the video formats: an unchanged task whose video file is unchanged keeps the
previous export's output (its frames hard-linked, not decoded again; its records copied), a changed task
or a replaced video is written again, and the datasets equal a full rebuild file by file."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from lsflow.core.incremental.store import iter_store_entries, write_store
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.model.task import Task
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.sources.media import MediaResolver
from lsflow_tests.core.formats.exporting import annotation
from lsflow_tests.video_media import VIDEO_CONFIG, ball_sequence, keyframe, track_result, write_video

FORMATS = ["MOT", "YOLO_VIDEO", "YOLO_OBB_VIDEO", "COCO_VIDEO"]
SHORTER = 20  # frames of the video that replaces clip2.mp4


def video_task(task_id: int, video: str, results: list[dict]) -> dict:
    return {"id": task_id, "data": {"video": video}, "annotations": [annotation(task_id * 10, results)],
            "predictions": [], "updated_at": "2025-10-02T09:00:00Z"}


def tasks(changed: bool) -> list[dict]:
    """Task 1 gains a second track when `changed`; task 2 is the same either way; task 3's video is missing."""
    first = [track_result("ball", ball_sequence())]
    if changed:
        first.append(track_result("player", [keyframe(3), keyframe(8)], label="Player"))
    return [video_task(1, "/data/upload/1/clip1.mp4", first),
            video_task(2, "/data/upload/1/clip2.mp4", [track_result("ball2", ball_sequence())]),
            video_task(3, "/data/upload/1/missing.mp4", [track_result("lost", [keyframe(1)])])]


def build(tmp_path: Path, task_dicts: list[dict], out: Path, reuse: Path | None) -> dict:
    """The formats built the way a project build reads its tasks: entries of the task store."""
    model = [Task.from_dict(value, position) for position, value in enumerate(task_dicts)]
    store = tmp_path / "store"
    if store.exists():
        for file in store.iterdir():
            file.unlink()
    write_store(model, store, "video", {})
    with MediaResolver(tmp_path / "media", cache_dir=tmp_path / "media-cache") as media:
        context = export_context(LabelConfig.parse(VIDEO_CONFIG), lambda: model, "1", media)
        return export_datasets(iter_store_entries(store), FORMATS, out, context, AnnotationPolicy.parse("all"),
                               reuse_dir=reuse)


def files_of(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def differing(one: Path, other: Path) -> set[str]:
    first, second = files_of(one), files_of(other)
    assert first.keys() == second.keys()
    return {name for name in first if first[name] != second[name]}


def gray_jpeg() -> bytes:
    data = io.BytesIO()
    Image.new("RGB", (64, 48), (128, 128, 128)).save(data, "JPEG")
    return data.getvalue()


def task_files(out: Path, task_id: int) -> dict[str, Path]:
    """Per format, one file of the task's own: a frame (the formats that extract them) or MOT's gt.txt."""
    video = f"clip{task_id}__task{task_id}"
    return {"MOT": next((out / "MOT").glob(f"*/{video}/gt/gt.txt")),
            "YOLO_VIDEO": next((out / "YOLO_VIDEO").glob(f"images/*/{video}_000005.jpg")),
            "YOLO_OBB_VIDEO": next((out / "YOLO_OBB_VIDEO").glob(f"images/*/{video}_000005.jpg")),
            "COCO_VIDEO": out / "COCO_VIDEO" / "images" / video / "000005.jpg"}


def tamper(files: dict[str, Path]) -> dict[str, bytes]:
    """Overwrite the published files in place (their inode kept): a task whose output is reused links
    these very files, one written again has its own."""
    marks = {}
    for name, path in files.items():
        marks[name] = b"1,1,1.00,1.00,1.00,1.00,1,1,1\n" if name == "MOT" else gray_jpeg()
        with open(path, "r+b") as published:
            published.truncate(0)
            published.write(marks[name])
    return marks


@pytest.fixture
def media(tmp_path):
    upload = tmp_path / "media" / "upload" / "1"
    upload.mkdir(parents=True)
    write_video(upload / "clip1.mp4")
    write_video(upload / "clip2.mp4")
    return upload


def test_unchanged_tasks_with_unchanged_videos_are_reused_and_the_datasets_equal_a_full_rebuild(tmp_path, media):
    out, reuse = tmp_path / "out", tmp_path / "reuse"
    build(tmp_path, tasks(changed=False), out, reuse)
    unchanged = tamper(task_files(out, 2))
    tamper(task_files(out, 1))

    results = build(tmp_path, tasks(changed=True), out, reuse)
    build(tmp_path, tasks(changed=True), tmp_path / "fresh", None)
    for name, path in task_files(out, 2).items():  # task 2: the previous export's files, not decoded again
        assert path.read_bytes() == unchanged[name], name
    # Everything else equals a full rebuild, task 1's files (written again) and the files the formats
    # assemble from every task's records (COCO_VIDEO's result.json, its ids given at close) included.
    for name in FORMATS:
        assert differing(out / name, tmp_path / "fresh" / name) == {
            task_files(out, 2)[name].relative_to(out / name).as_posix()}, name
    # Task 1 now has two tracks, so task 2's track is the dataset's third.
    coco = json.loads((out / "COCO_VIDEO" / "result.json").read_text())
    assert [(track["video_id"], track["id"]) for track in coco["tracks"]] == [(1, 1), (1, 2), (2, 3)]
    assert {a["track_id"] for a in coco["annotations"] if a["video_id"] == 2} == {3}
    # The missing video is reported as before: not reusable, written again, its task skipped.
    assert results["MOT"].report["dropped_by_reason"] == {"video file not available": 1}

    # clip2.mp4 replaced under the same name: task 2 is decoded again, from the new video.
    os.unlink(media / "clip2.mp4")
    write_video(media / "clip2.mp4", frames=SHORTER)
    build(tmp_path, tasks(changed=True), out, reuse)
    build(tmp_path, tasks(changed=True), tmp_path / "fresh", None)
    for name in FORMATS:
        assert differing(out / name, tmp_path / "fresh" / name) == set(), name
    assert f"seqLength={SHORTER}\n" in next((out / "MOT").glob("*/clip2__task2/seqinfo.ini")).read_text()
    assert len(list((out / "COCO_VIDEO" / "images" / "clip2__task2").iterdir())) == SHORTER
