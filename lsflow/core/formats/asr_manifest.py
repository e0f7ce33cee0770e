"""ASR_MANIFEST: NVIDIA NeMo's speech-recognition manifest, `manifest.json`, with the audio in `audio/`.

One JSON line per transcription — a `TextArea` result on an `Audio`/`AudioPlus` object — of every
exported annotation: `{"audio_filepath": "audio/<file>", "duration": <seconds>, "text": …,
"annotator": …}`, the path relative to the manifest as Label Studio writes it. The duration is read
from the audio file itself (see `lsflow.core.model.audio`); the file is found through the export context's
media lookup (`/data/upload/…` under the media root or from the server, local files, URLs) and copied
into `audio/`. A per-region transcription (a TextArea result with `start`/`end` seconds) becomes a
segment line with `offset` and the segment's `duration`. Several text lines of one result are joined
with a space (Label Studio keeps only the first).

Label Studio 1.23.2 skips — without a word — every task whose audio it did not download, which
in practice means it writes an empty manifest for uploaded audio. Here an audio file that cannot be
had or measured drops that transcription with the reason, and the `asr_line_per_transcription`
check fails.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from lsflow.core.formats.base import CheckOutcome, CheckSpec, DatasetWriter, ExportContext, Stream, TaskItem
from lsflow.core.formats.shared.records import annotator
from lsflow.core.model.audio import AudioDurationError, audio_duration
from lsflow.core.model.media_ref import media_file_name
from lsflow.core.model.task import Annotation, Region

MANIFEST_FILE = "manifest.json"
AUDIO_DIR = "audio"
AUDIO_OBJECTS = ("audio", "audioplus")
NOT_A_TRANSCRIPTION = "not a transcription (ASR_MANIFEST exports TextArea results on Audio/AudioPlus)"
# Reasons that mean an annotated task is missing from the manifest for want of its audio.
AUDIO_UNAVAILABLE = "audio file not available (missing, refused or not downloadable; see the media report)"
NO_AUDIO_REFERENCE = "the task has no audio reference in its data"
AUDIO_PROBLEM_PREFIX = "audio duration unreadable: "
AUDIO_REASONS = (AUDIO_UNAVAILABLE, NO_AUDIO_REFERENCE)


class AsrManifestWriter(DatasetWriter):
    name = "ASR_MANIFEST"
    description = "NeMo ASR manifest: a JSON line per audio transcription with its duration; audio copied"
    reads_media = True
    object_tags = frozenset({"audio", "audioplus"})
    control_tags = frozenset({"textarea"})
    checks = (
        CheckSpec("asr_lines_valid", "every line has audio_filepath, text and a duration > 0, and its audio "
                                     "file exists in the dataset"),
        CheckSpec("asr_line_per_transcription", "every transcription of an exported annotation has its line "
                                                "(none was dropped for want of its audio)"),
    )
    per_task = False  # audio file names are made unique across tasks, and durations come from the media
    streams = {**DatasetWriter.streams, "manifest": Stream(MANIFEST_FILE)}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._audio_keys = self._audio_data_keys()
        self._copied: dict[str, tuple[str, float]] = {}  # this task's audio: reference → (dataset path, duration)
        self._names: set[str] = set()

    def prepare(self) -> None:
        (self.out_dir / AUDIO_DIR).mkdir()

    def _audio_data_keys(self) -> dict[str, str] | None:
        """Audio object name → its task data key; None without a label config (then: by to_name)."""
        config = self.context.label_config
        if config is None:
            return None
        audio = {o.name: o.data_key for o in config.objects if o.tag in AUDIO_OBJECTS}
        return {name: audio[name] for c in config.controls if c.tag == "textarea" for name in c.to_names
                if name in audio}

    def write(self, item: TaskItem) -> None:
        self._copied.clear()
        for annotation in sorted(item.annotations, key=lambda a: a.created_at or "", reverse=True):
            for region in annotation.regions:
                key = self._data_key(item, region)
                if key is None:
                    self.drop(item, annotation, region, NOT_A_TRANSCRIPTION)
                    continue
                text = " ".join(str(line) for line in region.value.get("text") or () if str(line).strip())
                if not text:
                    self.drop(item, annotation, region, "empty transcription")
                    continue
                audio = self._audio(item, annotation, region, key)
                if audio is None:
                    continue
                path, duration = audio
                who = annotator(annotation.raw.get("completed_by", {}), numeric_id=False, default="")
                line: dict[str, Any] = {"audio_filepath": path, "duration": duration, "text": text, "annotator": who}
                segment = _segment(region.value, duration)
                if isinstance(segment, str):
                    self.drop(item, annotation, region, segment)
                    continue
                if segment is not None:
                    line["offset"], line["duration"] = segment
                self.append("manifest", (json.dumps(line, ensure_ascii=False) + "\n").encode())
                self.report.wrote()

    def _data_key(self, item: TaskItem, region: Region) -> str | None:
        if region.type != "textarea":
            return None
        if self._audio_keys is None:
            return region.to_name if region.to_name in item.task.data else "audio"
        return self._audio_keys.get(region.to_name)

    def _audio(self, item: TaskItem, annotation: Annotation, region: Region, key: str) -> tuple[str, float] | None:
        """(path inside the dataset, duration) of the task's audio, copied on first use; None after a drop."""
        reference = item.task.data.get(key)
        if isinstance(reference, str) and reference in self._copied:
            return self._copied[reference]
        if not isinstance(reference, str) or not reference:
            self.drop(item, annotation, region, NO_AUDIO_REFERENCE)
            return None
        local = self.context.media.local_path(reference) if self.context.media is not None else None
        if local is None:
            self.drop(item, annotation, region, AUDIO_UNAVAILABLE)
            return None
        try:
            duration = audio_duration(local)
        except AudioDurationError as error:
            self.drop(item, annotation, region, AUDIO_PROBLEM_PREFIX + str(error))
            return None
        name = self._unique_name(media_file_name(reference) or local.name, item.task.id)
        shutil.copyfile(local, self.out_dir / AUDIO_DIR / name)
        self._copied[reference] = (f"{AUDIO_DIR}/{name}", duration)
        return self._copied[reference]

    def _unique_name(self, name: str, task_id: Any) -> str:
        candidate = PurePosixPath(name)
        if candidate.name in self._names:
            candidate = candidate.with_stem(f"{candidate.stem}__task{task_id}")
        self._names.add(candidate.name)
        return candidate.name

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        report = json.loads((out_dir / "lsflow_report.json").read_text(encoding="utf-8"))
        problems, lines, seconds = [], 0, 0.0
        with open(out_dir / MANIFEST_FILE, encoding="utf-8") as manifest:
            for number, text in enumerate(manifest, 1):
                lines += 1
                problem = _line_problem(text, out_dir)
                if isinstance(problem, str):
                    problems.append(f"line {number}: {problem}")
                else:
                    seconds += problem
        if lines != report["regions_written"]:
            problems.append(f"{lines} lines, {report['regions_written']} transcriptions written")
        missing = []
        with open(out_dir / "lsflow_dropped.jsonl", encoding="utf-8") as dropped:
            for text in dropped:
                drop = json.loads(text)
                if drop["reason"] in AUDIO_REASONS or drop["reason"].startswith(AUDIO_PROBLEM_PREFIX):
                    missing.append(f"task {drop['task']}, annotation {drop['annotation']}: {drop['reason']}")
        return [
            CheckOutcome("asr_lines_valid", not problems, problems[:20],
                         {"lines": lines, "hours": round(seconds / 3600, 4)}),
            CheckOutcome("asr_line_per_transcription", not missing, missing[:20], {"missing": len(missing)}),
        ]


def _segment(value: dict[str, Any], file_duration: float) -> tuple[float, float] | str | None:
    """(offset, duration) of a per-region transcription, None for a whole-file one, or why it is unusable."""
    start: Any  # numbers once the isinstance check below passes (all() does not narrow)
    end: Any
    start, end = value.get("start"), value.get("end")
    if start is None and end is None:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end)):
        return "segment start/end are not numbers"
    if not 0 <= start < end <= file_duration + 1e-3:
        return "segment is empty or outside the audio"
    return float(start), float(end) - float(start)


def _line_problem(text: str, out_dir: Path) -> str | float:
    """Why a manifest line is unusable, or its duration."""
    try:
        line = json.loads(text)
    except ValueError:
        return "not JSON"
    if not isinstance(line, dict):
        return "not a JSON object"
    path, duration, transcript = line.get("audio_filepath"), line.get("duration"), line.get("text")
    if not isinstance(transcript, str) or not transcript:
        return "no text"
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration <= 0:
        return f"duration {duration!r} is not a positive number"
    if not isinstance(path, str) or not (out_dir / path).is_file():
        return f"audio file {path!r} is not in the dataset"
    return float(duration)
