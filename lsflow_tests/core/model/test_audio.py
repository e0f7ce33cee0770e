"""Audio durations from the file: PCM WAV with the standard library, the rest through libsndfile."""

import sys
import wave

import pytest

from lsflow.core.model.audio import AudioDurationError, audio_duration
from lsflow_tests.live_projects import write_tone


def test_pcm_wav_duration_is_frames_over_rate(tmp_path):
    assert audio_duration(write_tone(tmp_path / "tone.wav", 0.75, 440, rate=16000)) == 0.75


def test_a_wav_without_samples_has_no_duration(tmp_path):
    with wave.open(str(tmp_path / "empty.wav"), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
    with pytest.raises(AudioDurationError, match="holds no samples"):
        audio_duration(tmp_path / "empty.wav")


def test_float_wav_and_ogg_are_read_with_libsndfile(tmp_path):
    soundfile = pytest.importorskip("soundfile", reason="needs lsflow[audio]")
    soundfile.write(tmp_path / "float.wav", [0.0] * 12000, 8000, subtype="FLOAT")  # not PCM: `wave` refuses it
    soundfile.write(tmp_path / "voice.ogg", [0.0] * 44100, 22050, format="OGG", subtype="VORBIS")
    assert audio_duration(tmp_path / "float.wav") == 1.5
    assert audio_duration(tmp_path / "voice.ogg") == 2.0


def test_files_that_are_not_audio_say_so(tmp_path):
    pytest.importorskip("soundfile", reason="needs lsflow[audio]")
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(AudioDurationError, match="not an audio file libsndfile can read"):
        audio_duration(tmp_path / "notes.wav")
    with pytest.raises(AudioDurationError, match="cannot be read"):
        audio_duration(tmp_path / "missing.wav")


def test_without_the_extra_a_non_pcm_wav_names_it(tmp_path, monkeypatch):
    (tmp_path / "odd.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(AudioDurationError, match=r"not a PCM WAV file; install lsflow\[audio\] to read it"):
        audio_duration(tmp_path / "odd.wav")
