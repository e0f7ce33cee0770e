"""Task media from a real Label Studio: uploaded images and audio downloaded with either kind of token."""

from __future__ import annotations

import io
import wave

import pytest
from PIL import Image

from lsflow.sources.media import MediaResolver, MediaStatus
from lsflow.sources.media_download import DownloadLimits

IMAGE_CONFIG = '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">' \
               '<Label value="Cat"/></RectangleLabels></View>'
AUDIO_CONFIG = '<View><Audio name="audio" value="$audio"/><TextArea name="transcription" toName="audio"/></View>'
FAST = DownloadLimits(timeout_seconds=30, retries=1, backoff_seconds=0.05)


@pytest.fixture(scope="module")
def uploads(label_studio, tmp_path_factory):
    """An uploaded PNG and WAV: {reference: original bytes}."""
    folder = tmp_path_factory.mktemp("originals")
    picture, recording = folder / "cat.png", folder / "hello.wav"
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (10, 120, 200)).save(buffer, format="PNG")
    picture.write_bytes(buffer.getvalue())
    with wave.open(str(recording), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(16000)
        audio.writeframes(bytes(range(256)) * 125)  # 1 s of 16-bit mono
    images = label_studio.create_project("media: images", IMAGE_CONFIG)
    sounds = label_studio.create_project("media: audio", AUDIO_CONFIG)
    return {
        label_studio.upload(images, picture): picture.read_bytes(),
        label_studio.upload(sounds, recording): recording.read_bytes(),
    }


@pytest.mark.parametrize("token_kind", ["legacy_token", "personal_token"])
def test_uploads_download_with_either_token_and_come_from_the_cache_the_second_time(
    label_studio, uploads, tmp_path, token_kind
):
    def run() -> MediaResolver:
        return MediaResolver(label_studio_url=label_studio.url, api_key=getattr(label_studio, token_kind),
                             cache_dir=tmp_path / "cache", limits=FAST)

    first = run()
    first.prefetch(uploads)
    for reference, original in uploads.items():
        assert reference.startswith("/data/upload/")
        outcome = first.resolve(reference)
        assert outcome.status is MediaStatus.DOWNLOADED, outcome.reason
        assert outcome.path.read_bytes() == original
    second = run()
    for reference, original in uploads.items():
        outcome = second.resolve(reference)
        assert outcome.status is MediaStatus.CACHED and outcome.path.read_bytes() == original
    assert second.report().as_dict()["cached"] == len(uploads)


def test_label_studio_media_folder_is_read_without_downloading(label_studio, uploads, tmp_path):
    media = MediaResolver(label_studio.media_dir, cache_dir=tmp_path / "cache")
    for reference, original in uploads.items():
        outcome = media.resolve(reference)
        assert outcome.status is MediaStatus.LOCAL and outcome.path.read_bytes() == original


def test_a_wrong_token_is_a_reported_miss_that_names_the_token(label_studio, uploads, tmp_path):
    media = MediaResolver(label_studio_url=label_studio.url, api_key="not-a-valid-token-0123456789",
                          cache_dir=tmp_path / "cache", limits=FAST)
    outcomes = [media.resolve(reference) for reference in uploads]
    assert {o.status for o in outcomes} == {MediaStatus.MISSING}
    assert all("HTTP 401" in o.reason and "LABEL_STUDIO_API_KEY" in o.reason for o in outcomes)


def test_an_upload_the_server_does_not_have_is_missing_not_fatal(label_studio, uploads, tmp_path):
    media = MediaResolver(label_studio_url=label_studio.url, api_key=label_studio.legacy_token,
                          cache_dir=tmp_path / "cache", limits=FAST)
    project = next(iter(uploads)).split("/")[3]
    outcome = media.resolve(f"/data/upload/{project}/00000000-never-uploaded.png")
    assert outcome.status is MediaStatus.MISSING and outcome.path is None
    assert "HTTP 500" in outcome.reason and "check that the file is still in the project" in outcome.reason
