"""CONLL2003: `result.conll`, Label Studio's named-entity export.

`-DOCSTART- -X- O`, then a block per exported annotation (newest first within a task) and per task
without annotations: one `token -X- _ TAG` line per token, BIO tags, a blank line after the block.
Tokens and tags are Label Studio's (see `lsflow.core.geometry.text_spans`). Where Label Studio loses spans
silently, lsflow reports them as dropped: a span nested in or crossing an earlier one, a span
covering only whitespace, a span whose offsets do not fit the text. Results that are not `Labels`
spans on a `Text` (choices, spans of other objects) have no place in CoNLL and are dropped too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsflow.core.formats.base import CheckOutcome, CheckSpec, DatasetWriter, ExportContext, Stream, TaskItem
from lsflow.core.model.task import Annotation, Region
from lsflow.core.geometry.text_spans import TokenizeError, TokenSpan, bio_tags, place_spans, text_of, tokenize

RESULT_FILE = "result.conll"
DOCSTART = "-DOCSTART- -X- O"
NOT_A_TEXT_SPAN = "not a Labels span on a Text (CoNLL and spaCy hold named-entity spans only)"


@dataclass(frozen=True, slots=True)
class TextBlock:
    """One text with its labelled spans: a CoNLL block, a spaCy Doc."""

    task_id: Any
    annotation_id: Any
    text: str
    tokens: list[tuple[int, int]]
    spans: list[TokenSpan]


class TextSpanWriter(DatasetWriter):
    """A writer of tokenized texts with their entity spans (CONLL2003, SPACY)."""

    object_tags = frozenset({"text"})
    control_tags = frozenset({"labels"})

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config = self.context.label_config
        self.text_fields: list[tuple[str, str]] | None = None  # (object name, data key); None: infer
        if config is not None:
            texts = {o.name: o.data_key for o in config.objects if o.tag == "text"}
            names = [n for c in config.controls if c.tag == "labels" for n in c.to_names if n in texts]
            self.text_fields = [(name, texts[name]) for name in dict.fromkeys(names)]

    def blocks(self, item: TaskItem) -> Iterator[TextBlock]:
        """The task's blocks; every region is accounted for on the way."""
        if not item.task.annotations:
            fields = self.text_fields if self.text_fields is not None else [("text", "text")]
            for _, key in fields:
                text = text_of(item.task.data, key)
                if text is not None:
                    try:
                        yield TextBlock(item.task.id, None, text, tokenize(text), [])
                    except TokenizeError:
                        continue  # nothing to lose: the task has no annotations
            return
        for annotation in sorted(item.annotations, key=lambda a: a.created_at or "", reverse=True):
            yield from self._annotation_blocks(item, annotation)

    def _annotation_blocks(self, item: TaskItem, annotation: Annotation) -> Iterator[TextBlock]:
        fields = self.text_fields if self.text_fields is not None else self._inferred_fields(item, annotation)
        objects = {name for name, _ in fields}
        for region in annotation.regions:
            if region.type != "labels" or region.to_name not in objects:
                self.drop(item, annotation, region, NOT_A_TEXT_SPAN)
        for name, key in fields:
            regions = [r for r in annotation.regions if r.type == "labels" and r.to_name == name]
            text = text_of(item.task.data, key)
            if text is None:
                self._drop_all(item, annotation, regions, f"the task has no text under data['{key}']")
                continue
            try:
                tokens = tokenize(text)
            except TokenizeError as error:
                self._drop_all(item, annotation, regions, str(error))
                continue
            placed, rejected = place_spans(regions, text, tokens)
            for region, reason in rejected:
                self.drop(item, annotation, region, reason)
            for span in placed:
                self.report.wrote(span.label)
            yield TextBlock(item.task.id, annotation.id, text, tokens, placed)

    @staticmethod
    def _inferred_fields(item: TaskItem, annotation: Annotation) -> list[tuple[str, str]]:
        """Without a label config: each object the spans name, read from the data key of that name
        (else `text`)."""
        names = dict.fromkeys(r.to_name for r in annotation.regions if r.type == "labels")
        return [(name, name if name in item.task.data else "text") for name in names] or [("text", "text")]

    def _drop_all(self, item: TaskItem, annotation: Annotation, regions: list[Region], reason: str) -> None:
        for region in regions:
            self.drop(item, annotation, region, reason)


class ConllWriter(TextSpanWriter):
    name = "CONLL2003"
    description = "CoNLL 2003 named entities: a token per line with its BIO tag, Label Studio's tokenization"
    checks = (CheckSpec("conll_bio_valid",
                        "every line is `token -X- _ TAG`, tags form valid BIO runs, and each written span "
                        "begins exactly one B- tag"),)

    streams = {**TextSpanWriter.streams, "blocks": Stream(RESULT_FILE, header=f"{DOCSTART}\n".encode())}

    def write(self, item: TaskItem) -> None:
        for block in self.blocks(item):
            tags = bio_tags(len(block.tokens), block.spans)
            lines = [f"{block.text[start:end]} -X- _ {tag}\n" for (start, end), tag in zip(block.tokens, tags)]
            self.append("blocks", ("".join(lines) + "\n").encode())

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        report = json.loads((out_dir / "lsflow_report.json").read_text(encoding="utf-8"))
        problems, begins, tokens, blocks = [], 0, 0, 0
        previous, in_block = "O", False
        with open(out_dir / RESULT_FILE, encoding="utf-8", newline="\n") as stream:
            if stream.readline().rstrip("\n") != DOCSTART:
                problems.append(f"the first line is not '{DOCSTART}'")
            for number, line in enumerate(stream, 2):
                line = line.rstrip("\n")
                if not line:
                    blocks += in_block
                    previous, in_block = "O", False
                    continue
                parts = line.rsplit(" ", 3)
                if len(parts) != 4 or parts[1:3] != ["-X-", "_"] or not parts[0]:
                    problems.append(f"line {number}: not 'token -X- _ TAG': {line!r}")
                    continue
                tokens += 1
                in_block = True
                tag = parts[3]
                problem = _bio_problem(previous, tag, context)
                if problem:
                    problems.append(f"line {number}: {problem}")
                begins += tag.startswith("B-")
                previous = tag
        if begins != report["regions_written"]:
            problems.append(f"{begins} spans begin in the file, {report['regions_written']} were written")
        return [CheckOutcome("conll_bio_valid", not problems, problems[:20],
                             {"blocks": blocks, "tokens": tokens, "spans": begins})]


def _bio_problem(previous: str, tag: str, context: ExportContext) -> str | None:
    if tag == "O":
        return None
    prefix, _, label = tag.partition("-")
    if prefix not in ("B", "I") or not label:
        return f"tag {tag!r} is not O, B-<label> or I-<label>"
    if prefix == "I" and previous[2:] != label:
        return f"{tag} does not continue a {label} span (after {previous})"
    if context.label_config is not None and label not in context.classes:
        return f"label {label!r} is not a label of the label config"
    return None
