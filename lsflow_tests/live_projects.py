"""Projects built on the real Label Studio of the test session, the way users fill them.

Each has annotations, predictions, a cancelled annotation and a task with several annotations. What
lsflow must make of them is recorded here from the inputs (percent boxes, spans, seconds), computed
independently of lsflow.
"""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from lsflow.core.formats.shared.ultralytics import split_of
from lsflow_tests.label_studio_server import LabelStudioServer
from lsflow_tests.paths import IMAGE_CONFIG, SAMPLE_MEDIA

IMAGES = [SAMPLE_MEDIA / "upload" / "1" / name for name in (
    "3f2a1b9c-street.jpg", "8c1d2e3f-person.png", "a41b5c6d-parking.jpg", "b7e8f901-road.jpg", "c2d3e4f5-empty.jpg")]

TEXT_CONFIG = """<View>
  <Labels name="label" toName="text">
    <Label value="PER"/><Label value="ORG"/><Label value="LOC"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""

AUDIO_CONFIG = """<View>
  <Audio name="audio" value="$audio"/>
  <Labels name="segment" toName="audio">
    <Label value="Speech"/><Label value="Noise"/>
  </Labels>
  <TextArea name="transcription" toName="audio" editable="true"/>
  <Choices name="quality" toName="audio" choice="single">
    <Choice value="clean"/><Choice value="noisy"/>
  </Choices>
</View>"""


@dataclass
class LiveProject:
    id: int
    title: str
    label_config: str
    task_ids: list[int]
    annotations: int = 0  # not cancelled
    cancelled: int = 0
    predictions: int = 0
    # region id → (task id, label, expected pixel box x, y, w, h) for rectangles
    boxes: dict[str, tuple[int, str, tuple[float, float, float, float]]] = field(default_factory=dict)
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)  # task id → image (width, height)
    regions: int = 0  # labelled regions in annotations that are not cancelled


def add_unlabelled_tasks_until_every_split_has_one(ls: LabelStudioServer, project: LiveProject, data: dict) -> None:
    """Ultralytics needs a train and a val split, assigned by a hash of the task id; a handful of
    tasks may all hash to `train`. Unlabelled tasks (like the ones every real project has) fix that."""
    while not {"train", "val"} <= {split_of(task_id) for task_id in project.task_ids}:
        assert len(project.task_ids) < 100, "task ids keep hashing into one split"
        project.task_ids += ls.import_tasks(project.id, [data])


def _rectangle(region_id: str, label: str, box: tuple[float, float, float, float], size: tuple[int, int]) -> dict:
    x, y, w, h = box
    return {"id": region_id, "from_name": "label", "to_name": "image", "type": "rectanglelabels",
            "original_width": size[0], "original_height": size[1], "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def build_image_project(ls: LabelStudioServer, title: str) -> LiveProject:
    """Five uploaded images: boxes, a polygon, keypoints and a choice; two annotations on one task,
    a cancelled one, a ground truth, predictions, and an image nobody labelled."""
    pid = ls.create_project(title, IMAGE_CONFIG.read_text())
    uploads = [ls.upload(pid, path) for path in IMAGES]
    project = LiveProject(pid, title, IMAGE_CONFIG.read_text(), [u.task_id for u in uploads])
    for upload, path in zip(uploads, IMAGES):
        with Image.open(path) as image:
            project.sizes[upload.task_id] = image.size
    street, person, parking, road, empty = (u.task_id for u in uploads)

    def box(task: int, region_id: str, label: str, percent: tuple[float, float, float, float]) -> dict:
        width, height = project.sizes[task]
        x, y, w, h = percent
        project.boxes[region_id] = (task, label, (x * width / 100, y * height / 100, w * width / 100,
                                                  h * height / 100))
        return _rectangle(region_id, label, percent, project.sizes[task])

    size = project.sizes[street]
    ls.annotate(street, [
        box(street, "car1", "Car", (10, 20, 30, 40)),
        box(street, "per1", "Person", (50, 10, 20, 60)),
        {"id": "road1", "from_name": "outline", "to_name": "image", "type": "polygonlabels",
         "original_width": size[0], "original_height": size[1],
         "value": {"points": [[0, 70], [100, 70], [100, 100], [0, 100]], "closed": True, "polygonlabels": ["Road"]}},
        {"id": "weather1", "from_name": "weather", "to_name": "image", "type": "choices",
         "value": {"choices": ["sunny"]}},
    ])
    ls.predict(street, [_rectangle("pcar1", "Car", (11, 21, 29, 39), size)], model_version="detector-1", score=0.91)
    # Two annotators' takes on one task.
    size = project.sizes[person]
    ls.annotate(person, [box(person, "per2", "Person", (25, 5, 50, 90))])
    ls.annotate(person, [
        box(person, "per3", "Person", (24, 6, 52, 88)),
        {"id": "head3", "from_name": "joints", "to_name": "image", "type": "keypointlabels",
         "original_width": size[0], "original_height": size[1],
         "value": {"x": 50, "y": 12, "width": 0.5, "keypointlabels": ["head"]}},
    ])
    ls.annotate(parking, [], was_cancelled=True)
    ls.annotate(road, [box(road, "car4", "Car", (60, 50, 25, 25))], ground_truth=True)
    ls.predict(empty, [_rectangle("pcar5", "Car", (1, 1, 10, 10), project.sizes[empty])], model_version="detector-1",
               score=0.12)
    project.annotations, project.cancelled, project.predictions = 4, 1, 2
    project.regions = 5 + 1 + 1 + 1  # boxes, polygon, keypoint, choice
    before = set(project.task_ids)
    add_unlabelled_tasks_until_every_split_has_one(ls, project, {"image": str(uploads[-1])})
    project.sizes.update({task: project.sizes[empty] for task in set(project.task_ids) - before})
    return project


def _span(text: str, phrase: str, label: str, region_id: str) -> dict:
    start = text.index(phrase)
    return {"id": region_id, "from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": start + len(phrase), "text": phrase, "labels": [label]}}


def build_text_project(ls: LabelStudioServer, title: str) -> LiveProject:
    texts = ["Ada Lovelace worked with Charles Babbage in London.", "Apple opened an office in Berlin.",
             "Nothing to see here.", "Grace Hopper joined the Navy."]
    pid = ls.create_project(title, TEXT_CONFIG)
    ids = ls.import_tasks(pid, [{"text": text} for text in texts])
    ls.annotate(ids[0], [_span(texts[0], "Ada Lovelace", "PER", "s1"), _span(texts[0], "Charles Babbage", "PER", "s2"),
                         _span(texts[0], "London", "LOC", "s3")])
    ls.annotate(ids[1], [_span(texts[1], "Apple", "ORG", "s4"), _span(texts[1], "Berlin", "LOC", "s5")])
    ls.annotate(ids[1], [_span(texts[1], "Apple", "ORG", "s6")])
    ls.annotate(ids[2], [], was_cancelled=True)
    ls.predict(ids[3], [_span(texts[3], "Grace Hopper", "PER", "p1")], model_version="ner-1", score=0.8)
    project = LiveProject(pid, title, TEXT_CONFIG, ids, annotations=3, cancelled=1, predictions=1, regions=6)
    add_unlabelled_tasks_until_every_split_has_one(ls, project, {"text": "An unlabelled sentence."})
    return project


def write_tone(path: Path, seconds: float, frequency: float, rate: int = 8000) -> Path:
    """A mono 16-bit WAV of a sine tone."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * i / rate)))
            for i in range(int(seconds * rate))
        ))
    return path


def build_audio_project(ls: LabelStudioServer, title: str, folder: Path) -> LiveProject:
    pid = ls.create_project(title, AUDIO_CONFIG)
    clips = [write_tone(folder / f"clip-{n}.wav", seconds, 220.0 * (n + 1))
             for n, seconds in enumerate((1.0, 1.5, 0.5))]
    uploads = [ls.upload(pid, clip) for clip in clips]
    first, second, third = (u.task_id for u in uploads)

    def segment(region_id: str, start: float, end: float, label: str) -> dict:
        return {"id": region_id, "from_name": "segment", "to_name": "audio", "type": "labels",
                "value": {"start": start, "end": end, "channel": 0, "labels": [label]}}

    def said(region_id: str, text: str) -> dict:
        return {"id": region_id, "from_name": "transcription", "to_name": "audio", "type": "textarea",
                "value": {"text": [text]}}

    ls.annotate(first, [segment("a1", 0.1, 0.6, "Speech"), said("t1", "hello world"),
                        {"id": "q1", "from_name": "quality", "to_name": "audio", "type": "choices",
                         "value": {"choices": ["clean"]}}])
    ls.annotate(second, [segment("a2", 0.0, 1.2, "Noise"), said("t2", "wind")])
    ls.annotate(second, [said("t3", "wind noise")])
    ls.annotate(third, [], was_cancelled=True)
    ls.predict(third, [said("p1", "beep")], model_version="asr-1", score=0.5)
    project = LiveProject(pid, title, AUDIO_CONFIG, [first, second, third], annotations=3, cancelled=1, predictions=1, regions=6)
    add_unlabelled_tasks_until_every_split_has_one(ls, project, {"audio": str(uploads[0])})
    return project
