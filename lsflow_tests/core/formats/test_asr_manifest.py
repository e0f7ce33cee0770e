"""ASR_MANIFEST: a NeMo line per transcription, durations from the audio, which Label Studio 1.23.2 left out."""

import json
import sys

import pytest

from lsflow.core.formats.asr_manifest import AUDIO_UNAVAILABLE, NOT_A_TRANSCRIPTION, AsrManifestWriter
from lsflow.sources.media import MediaResolver
from lsflow_tests.core.formats.reference import AUDIO_PROJECT, IMAGE_PROJECT, run_converter, run_lsflow
from lsflow_tests.live_projects import write_tone
from lsflow_tests.paths import SAMPLE_MEDIA

UPLOADS = SAMPLE_MEDIA / "upload" / "3"


def manifest(result):
    return [json.loads(line) for line in (result.path / "manifest.json").read_text(encoding="utf-8").splitlines()]


def sample_export(tmp_path, media):
    return run_lsflow(tmp_path, AUDIO_PROJECT / "export.json", ["ASR_MANIFEST"], AUDIO_PROJECT / "label_config.xml",
                      media=media)["ASR_MANIFEST"]


def test_both_uploaded_wavs_get_their_line_with_the_files_duration(tmp_path):
    # Label Studio 1.23.2 exported an empty manifest for this very project (it never finds uploads).
    with MediaResolver(SAMPLE_MEDIA, cache_dir=tmp_path / "cache") as media:
        result = sample_export(tmp_path, media)
    # The sample WAVs are 8 kHz tones of 10000 and 6000 frames.
    assert manifest(result) == [
        {"audio_filepath": "audio/80ec2341-hello-world.wav", "duration": 1.25, "text": "hello world", "annotator": "1"},
        {"audio_filepath": "audio/79445baa-good-morning.wav", "duration": 0.75, "text": "good morning, Zoë",
         "annotator": "1"},
    ]
    for line in manifest(result):
        assert (result.path / line["audio_filepath"]).read_bytes() == (UPLOADS / line["audio_filepath"][6:]).read_bytes()
    assert result.report["dropped_by_reason"] == {NOT_A_TRANSCRIPTION: 2}  # the two 'quality' choices
    assert all(outcome.passed for outcome in AsrManifestWriter.check(result.path, None))


def test_lines_match_the_converter_given_the_uploads_it_could_not_find_on_the_server(tmp_path):
    with MediaResolver(SAMPLE_MEDIA, cache_dir=tmp_path / "cache") as media:
        ours = manifest(sample_export(tmp_path, media))
    theirs_dir = run_converter(tmp_path, AUDIO_PROJECT / "export.json", "ASR_MANIFEST",
                               AUDIO_PROJECT / "label_config.xml", upload_dir=str(SAMPLE_MEDIA / "upload"),
                               download_resources=True)
    theirs = [json.loads(line) for line in (theirs_dir / "manifest.json").read_text().splitlines()]
    assert ours == theirs[:2]
    # The converter also writes task 9, which has no annotation, with the transcription of the task
    # before it (a loop variable left over); lsflow writes transcriptions only.
    assert theirs[2:] == [{"audio_filepath": "audio/1435144d-silence-check.wav", "duration": 0.5,
                           "text": "good morning, Zoë", "annotator": ""}]


def test_audio_that_cannot_be_had_is_reported_and_fails_the_check(tmp_path):
    with MediaResolver(None, cache_dir=tmp_path / "cache") as media:  # no media root, no server
        result = sample_export(tmp_path, media)
    assert manifest(result) == []
    assert result.report["dropped_by_reason"] == {AUDIO_UNAVAILABLE: 2, NOT_A_TRANSCRIPTION: 2}
    valid, complete = AsrManifestWriter.check(result.path, None)
    assert valid.passed
    assert not complete.passed and complete.problems == [
        f"task 7, annotation 7: {AUDIO_UNAVAILABLE}", f"task 8, annotation 8: {AUDIO_UNAVAILABLE}"]


def test_an_image_project_gets_an_empty_manifest_and_every_region_reported(tmp_path):
    with MediaResolver(SAMPLE_MEDIA, cache_dir=tmp_path / "cache") as media:
        result = run_lsflow(tmp_path, IMAGE_PROJECT / "export.json", ["ASR_MANIFEST"],
                            IMAGE_PROJECT / "label_config.xml", media=media)["ASR_MANIFEST"]
    assert manifest(result) == []
    assert result.report["regions_dropped"] == result.report["regions_in"] > 0
    assert list(result.report["dropped_by_reason"]) == [NOT_A_TRANSCRIPTION]
    assert all(outcome.passed for outcome in AsrManifestWriter.check(result.path, None))


AUDIO_PLUS_CONFIG = """<View><AudioPlus name="speech" value="$recording"/>
  <Labels name="speaker" toName="speech"><Label value="A"/></Labels>
  <TextArea name="said" toName="speech" perRegion="true"/></View>"""


def test_audioplus_segments_multi_line_text_and_flac(tmp_path):
    soundfile = pytest.importorskip("soundfile", reason="FLAC durations need lsflow[audio]")
    uploads = tmp_path / "media" / "upload" / "9"
    uploads.mkdir(parents=True)
    write_tone(uploads / "call.wav", 2.0, 330)
    soundfile.write(uploads / "memo.flac", [[0.0]] * 24000, 16000)  # 1.5 s of silence
    tasks = [
        {"id": 1, "data": {"recording": "/data/upload/9/call.wav"}, "annotations": [{
            "id": 11, "completed_by": {"id": 5, "email": "eve@example.com"}, "result": [
                {"id": "seg", "from_name": "speaker", "to_name": "speech", "type": "labels",
                 "value": {"start": 0.5, "end": 1.25, "labels": ["A"]}},
                {"id": "seg", "from_name": "said", "to_name": "speech", "type": "textarea",
                 "value": {"start": 0.5, "end": 1.25, "text": ["good", "morning"]}}]}]},
        {"id": 2, "data": {"recording": "/data/upload/9/memo.flac"}, "annotations": [{
            "id": 12, "completed_by": 5, "result": [
                {"id": "all", "from_name": "said", "to_name": "speech", "type": "textarea",
                 "value": {"text": ["a memo"]}}]}]},
    ]
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(tasks))
    with MediaResolver(tmp_path / "media", cache_dir=tmp_path / "cache") as media:
        result = run_lsflow(tmp_path, export_file, ["ASR_MANIFEST"], AUDIO_PLUS_CONFIG, media=media)["ASR_MANIFEST"]
    assert manifest(result) == [
        {"audio_filepath": "audio/call.wav", "duration": 0.75, "text": "good morning", "annotator": "eve@example.com",
         "offset": 0.5},
        {"audio_filepath": "audio/memo.flac", "duration": 1.5, "text": "a memo", "annotator": "5"},
    ]
    assert result.report["dropped_by_reason"] == {NOT_A_TRANSCRIPTION: 1}  # the speaker segment itself


def test_non_wav_audio_without_the_extra_names_it(tmp_path, monkeypatch):
    uploads = tmp_path / "media" / "upload" / "9"
    uploads.mkdir(parents=True)
    (uploads / "talk.mp3").write_bytes(b"ID3\x04" + bytes(200))
    task = {"id": 1, "data": {"recording": "/data/upload/9/talk.mp3"}, "annotations": [{
        "id": 3, "completed_by": 1, "result": [{"id": "t", "from_name": "said", "to_name": "speech",
                                                "type": "textarea", "value": {"text": ["hi"]}}]}]}
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps([task]))
    monkeypatch.setitem(sys.modules, "soundfile", None)  # as if lsflow[audio] were not installed
    with MediaResolver(tmp_path / "media", cache_dir=tmp_path / "cache") as media:
        result = run_lsflow(tmp_path, export_file, ["ASR_MANIFEST"], AUDIO_PLUS_CONFIG, media=media)["ASR_MANIFEST"]
    assert result.report["dropped_by_reason"] == {
        "audio duration unreadable: .mp3 audio needs libsndfile; install lsflow[audio] to read it": 1}
    assert not AsrManifestWriter.check(result.path, None)[1].passed


def test_check_rejects_lines_without_duration_or_audio(tmp_path):
    with MediaResolver(SAMPLE_MEDIA, cache_dir=tmp_path / "cache") as media:
        result = sample_export(tmp_path, media)
    lines = manifest(result)
    lines[0]["duration"] = 0
    lines[1]["audio_filepath"] = "audio/elsewhere.wav"
    (result.path / "manifest.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    valid, _ = AsrManifestWriter.check(result.path, None)
    assert not valid.passed
    assert valid.problems == ["line 1: duration 0 is not a positive number",
                              "line 2: audio file 'audio/elsewhere.wav' is not in the dataset"]
