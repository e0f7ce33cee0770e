"""Audio durations read from the file itself.

PCM WAV is read with the standard library (`wave`: the header gives frames and rate; no decoding).
Other files — FLAC, OGG, MP3, float WAV — are read with libsndfile through `soundfile` when the
optional extra `lsflow[audio]` is installed.
"""

from __future__ import annotations

import wave
from pathlib import Path

INSTALL_HINT = "install lsflow[audio] to read it"


class AudioDurationError(ValueError):
    """The duration of an audio file cannot be read; the message says why (and is short and stable,
    so drop reports can count files by it)."""


def audio_duration(path: Path) -> float:
    """Seconds of audio in `path`; raises `AudioDurationError` when it cannot tell."""
    try:
        with wave.open(str(path), "rb") as audio:
            rate, frames = audio.getframerate(), audio.getnframes()
        if rate <= 0:
            raise AudioDurationError("the WAV header has no sample rate")
        return _positive(frames / rate)
    except (wave.Error, EOFError):
        pass  # not PCM WAV: try libsndfile
    except OSError as error:
        raise AudioDurationError(f"the audio file cannot be read ({error.strerror or error})") from None
    try:
        import soundfile
    except ImportError:
        raise AudioDurationError(
            f"not a PCM WAV file; {INSTALL_HINT}" if path.suffix.lower() == ".wav"
            else f"{path.suffix.lower() or 'extension-less'} audio needs libsndfile; {INSTALL_HINT}"
        ) from None
    try:
        return _positive(soundfile.info(str(path)).duration)
    except RuntimeError:  # soundfile's error for files libsndfile cannot open
        raise AudioDurationError("not an audio file libsndfile can read") from None


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise AudioDurationError("the audio file holds no samples")
    return seconds
