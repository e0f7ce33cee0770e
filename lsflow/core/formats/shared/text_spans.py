"""Tokenized texts with their labelled entity spans, as CONLL2003 and SPACY write them; tokens and
spans are Label Studio's (`lsflow.core.geometry.text_spans`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lsflow.core.formats.base import DatasetWriter, TaskItem
from lsflow.core.geometry.text_spans import TokenizeError, TokenSpan, place_spans, text_of, tokenize
from lsflow.core.model.task import Annotation, Region

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
