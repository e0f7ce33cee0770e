"""VIDEO_SEGMENTS, AUDIO_SEGMENTS, RTTM and TIMESERIES_PARQUET against values worked out by hand."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq

from lsflow.core.formats import writer_class
from lsflow.core.formats.base import ExportContext
from lsflow.core.model.label_config import LabelConfig
from lsflow_tests.core.formats.exporting import annotation, run

TIMELINE_CONFIG = """<View><Video name="video" value="$video" frameRate="25"/>
  <TimelineLabels name="actions" toName="video"><Label value="Run"/><Label value="Jump"/></TimelineLabels></View>"""
AUDIO_CONFIG = """<View><Audio name="audio" value="$audio"/>
  <Labels name="speaker" toName="audio"><Label value="Alice"/><Label value="Bob B"/></Labels></View>"""
SERIES_CONFIG = """<View><TimeSeries name="sensor" value="$csv" timeColumn="t"><Channel column="v"/></TimeSeries>
  <TimeSeriesLabels name="events" toName="sensor"><Label value="Spike"/></TimeSeriesLabels></View>"""


def task(task_id, data, results):
    return {"id": task_id, "data": data, "annotations": [annotation(task_id * 10, results)], "predictions": [],
            "updated_at": "2025-10-02T09:00:00Z"}


def passed(out, name, config):
    context = ExportContext(LabelConfig.parse(config).classes(), label_config=LabelConfig.parse(config))
    return all(check.passed for check in writer_class(name).check(out / name, context))


def test_timeline_segments_in_frames_and_seconds(tmp_path):
    timeline = {"id": "r1", "from_name": "actions", "to_name": "video", "type": "timelinelabels",
                "value": {"ranges": [{"start": 1, "end": 25}, {"start": 51, "end": 60}], "timelinelabels": ["Run"]}}
    backwards = {"id": "r2", "from_name": "actions", "to_name": "video", "type": "timelinelabels",
                 "value": {"ranges": [{"start": 9, "end": 3}], "timelinelabels": ["Jump"]}}
    results = run(tmp_path, [task(1, {"video": "/data/upload/1/a.mp4"}, [timeline, backwards])],
                  ["VIDEO_SEGMENTS"], config=TIMELINE_CONFIG)
    out = tmp_path / "out" / "VIDEO_SEGMENTS"
    with open(out / "segments.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    # At 25 fps frame N covers [(N - 1) / 25, N / 25): frames 1-25 are 0-1 s, 51-60 are 2-2.4 s.
    assert [(r["start_frame"], r["end_frame"], r["start_time"], r["end_time"], r["label"]) for r in rows] == [
        ("1", "25", "0.0", "1.0", "Run"), ("51", "60", "2.0", "2.4", "Run")]
    lines = [json.loads(line) for line in (out / "segments.jsonl").read_text().splitlines()]
    assert [(line["start_time"], line["end_time"]) for line in lines] == [(0.0, 1.0), (2.0, 2.4)]
    assert results["VIDEO_SEGMENTS"].report["dropped_by_reason"] == {
        "a timeline range ends (frame 3) before it starts (frame 9)": 1}


def test_audio_segments_and_rttm(tmp_path):
    def speaker(region_id, start, end, label, channel=0):
        return {"id": region_id, "from_name": "speaker", "to_name": "audio", "type": "labels",
                "value": {"start": start, "end": end, "channel": channel, "labels": [label]}}

    tasks = [task(4, {"audio": "/data/upload/1/talk one.wav"},
                  [speaker("s1", 0.5, 2.25, "Alice"), speaker("s2", 2.25, 3.0, "Bob B", channel=1),
                   speaker("s3", 1.0, 1.0, "Alice")])]
    results = run(tmp_path, tasks, ["AUDIO_SEGMENTS", "RTTM"], config=AUDIO_CONFIG)
    out = tmp_path / "out"
    with open(out / "AUDIO_SEGMENTS" / "segments.csv", newline="") as table:
        rows = [(r["region"], r["label"], r["channel"], r["start"], r["end"]) for r in csv.DictReader(table)]
    assert rows == [("s1", "Alice", "0", "0.5", "2.25"), ("s2", "Bob B", "1", "2.25", "3.0"),
                    ("s3", "Alice", "0", "1.0", "1.0")]
    assert (out / "RTTM" / "segments.rttm").read_text().splitlines() == [
        "SPEAKER talk_one__task4 1 0.500 1.750 <NA> <NA> Alice <NA> <NA>",
        "SPEAKER talk_one__task4 2 2.250 0.750 <NA> <NA> Bob_B <NA> <NA>",
    ]
    assert results["RTTM"].report["dropped_by_reason"] == {"segment has no duration: an RTTM turn needs one": 1}
    assert passed(out, "RTTM", AUDIO_CONFIG)


def test_time_series_ranges_as_parquet(tmp_path):
    def event(region_id, start, end, instant=False):
        return {"id": region_id, "from_name": "events", "to_name": "sensor", "type": "timeserieslabels",
                "value": {"start": start, "end": end, "instant": instant, "timeserieslabels": ["Spike"]}}

    tasks = [task(1, {"csv": "/data/upload/1/a.csv"}, [event("e1", 1.5, 4.0), event("e2", 7, 7, instant=True)]),
             task(2, {"csv": "/data/upload/1/b.csv"}, [event("e3", "x", None)])]
    results = run(tmp_path, tasks, ["TIMESERIES_PARQUET"], config=SERIES_CONFIG)
    out = tmp_path / "out"
    table = pq.read_table(out / "TIMESERIES_PARQUET" / "sensor.parquet").to_pylist()
    assert table == [
        {"task_id": 1, "annotation_id": 10, "region_id": "e1", "label": "Spike", "start": 1.5, "end": 4.0,
         "instant": False},
        {"task_id": 1, "annotation_id": 10, "region_id": "e2", "label": "Spike", "start": 7.0, "end": 7.0,
         "instant": True},
    ]
    assert results["TIMESERIES_PARQUET"].report["dropped_by_reason"] == {
        "time series range has no 'start' and 'end'": 1}
    assert passed(out, "TIMESERIES_PARQUET", SERIES_CONFIG)
