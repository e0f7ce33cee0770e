"""SPACY: spaCy training data, DocBins in `corpus/part-NNNNN.spacy`, ready for `spacy train`.

The same blocks and entity spans as CONLL2003 (one Doc per exported annotation and per task without
annotations, Label Studio's tokens), written directly instead of exporting CoNLL, editing its first
line and running `spacy convert`. Unlike a converted CoNLL file, each Doc keeps the original text:
the whitespace between tokens is the text's own (line breaks and runs of spaces become whitespace
tokens), so `doc.text` is the task's text and entity character offsets are the annotation's, widened
to whole tokens. `doc.user_data` holds the task and annotation ids.

A DocBin is serialized whole, so docs are written in parts of `DOCS_PER_PART`; spaCy reads a folder
of `.spacy` files as one corpus (`--paths.train corpus/`). Needs the optional extra `lsflow[spacy]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lsflow.core.formats.base import CheckOutcome, CheckSpec, ExportContext, TaskItem
from lsflow.core.formats.shared.text_spans import TextBlock, TextSpanWriter

CORPUS_DIR = "corpus"
DOCS_PER_PART = 5000


class SpacyNotInstalled(ValueError):
    """The SPACY format was asked for but spaCy is not installed."""


def _spacy() -> Any:
    try:
        import spacy
    except ImportError:
        raise SpacyNotInstalled(
            "the SPACY format needs spaCy, which is not installed: pip install 'lsflow[spacy]'"
        ) from None
    return spacy


class SpacyWriter(TextSpanWriter):
    name = "SPACY"
    description = "spaCy DocBins of the named-entity spans (original text, Label Studio's tokens)"
    checks = (CheckSpec("spacy_docbin_loads", "spaCy loads every DocBin; entity count and labels match the export"),)

    per_task = False  # docs are batched into DocBins of DOCS_PER_PART, numbered across tasks

    def __init__(self, *args: Any) -> None:
        _spacy()  # fail before any file is written
        super().__init__(*args)
        from spacy.tokens import DocBin
        from spacy.vocab import Vocab

        self._doc_bin, self._vocab = DocBin, Vocab()
        self._bin = self._new_bin()
        self._parts = 0

    def prepare(self) -> None:
        (self.out_dir / CORPUS_DIR).mkdir()

    def write(self, item: TaskItem) -> None:
        for block in self.blocks(item):
            self._bin.add(self._doc(block))
            if len(self._bin) >= DOCS_PER_PART:
                self._flush()

    def _doc(self, block: TextBlock) -> Any:
        from spacy.tokens import Doc, Span

        words: list[str]
        spaces: list[bool]
        index_of_token: list[int]
        words, spaces, index_of_token = [], [], []
        position = 0
        for start, end in block.tokens:
            _add_gap(block.text[position:start], words, spaces)
            index_of_token.append(len(words))
            words.append(block.text[start:end])
            spaces.append(False)
            position = end
        _add_gap(block.text[position:], words, spaces)
        doc = Doc(self._vocab, words=words, spaces=spaces)
        doc.ents = [Span(doc, index_of_token[s.first], index_of_token[s.last] + 1, label=s.label) for s in block.spans]
        doc.user_data.update({"task_id": block.task_id, "annotation_id": block.annotation_id})
        return doc

    def _new_bin(self) -> Any:
        return self._doc_bin(store_user_data=True)

    def _flush(self) -> None:
        if len(self._bin):
            self._bin.to_disk(self.out_dir / CORPUS_DIR / f"part-{self._parts:05d}.spacy")
            self._parts += 1
            self._bin = self._new_bin()

    def close(self) -> None:
        self._flush()

    @classmethod
    def check(cls, out_dir: Path, context: ExportContext) -> list[CheckOutcome]:
        spacy = _spacy()
        from spacy.tokens import DocBin

        report = json.loads((out_dir / "lsflow_report.json").read_text(encoding="utf-8"))
        nlp = spacy.blank("xx")
        problems, docs, entities = [], 0, 0
        for part in sorted((out_dir / CORPUS_DIR).glob("*.spacy")):
            try:
                loaded = list(DocBin().from_disk(part).get_docs(nlp.vocab))
            except (ValueError, OSError) as error:
                problems.append(f"{part.name}: spaCy cannot load it: {error}")
                continue
            for doc in loaded:
                docs += 1
                for entity in doc.ents:
                    entities += 1
                    if context.label_config is not None and entity.label_ not in context.classes:
                        problems.append(f"task {doc.user_data.get('task_id')}: label {entity.label_!r} is not "
                                        "a label of the label config")
        if entities != report["regions_written"]:
            problems.append(f"{entities} entities in the DocBins, {report['regions_written']} spans written")
        return [CheckOutcome("spacy_docbin_loads", not problems, problems[:20], {"docs": docs, "entities": entities})]


def _add_gap(gap: str, words: list[str], spaces: list[bool]) -> None:
    """The text between two tokens: one plain space is the previous token's trailing space; any other
    whitespace (or the rest of it) becomes a token of its own, as spaCy's tokenizer makes them."""
    if not gap:
        return
    if gap[0] == " " and spaces and not spaces[-1]:
        spaces[-1] = True
        gap = gap[1:]
    if gap:
        words.append(gap)
        spaces.append(False)
