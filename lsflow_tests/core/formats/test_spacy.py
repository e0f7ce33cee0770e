"""SPACY: DocBins that spaCy loads, with the original texts and every written entity span."""

import json
import sys

import pytest

spacy = pytest.importorskip("spacy", reason="the SPACY format needs lsflow[spacy]")
from spacy.tokens import DocBin  # noqa: E402
from spacy.training import Corpus  # noqa: E402

from lsflow.core.formats import spacy as spacy_format  # noqa: E402
from lsflow.core.formats.spacy import SpacyNotInstalled, SpacyWriter  # noqa: E402
from lsflow_tests.core.formats.reference import IMAGE_PROJECT, TEXT_PROJECT, run_lsflow  # noqa: E402

# Every entity of sample project 2, by (task, annotation), worked out from its snapshot: the nested
# LOC 'California' inside the ORG of task 3 is dropped; task 5 was cancelled; task 6 has no annotation.
EXPECTED = {
    (1, 1): [("Angela Merkel", "PER"), ("Emmanuel Macron", "PER"), ("Paris", "LOC")],
    (2, 2): [("Zoë Müller", "PER"), ("Siemens", "ORG"), ("München", "LOC"), ("Дмитрий Иванов", "PER"),
             ("Санкт-Петербург", "LOC")],
    (3, 3): [("University of California, Berkeley", "ORG"), ("Sony", "ORG"), ("東京", "LOC")],
    (4, 5): [("Apple", "ORG"), ("Tim Cook", "PER"), ("Cupertino", "ORG")],
    (4, 4): [("Apple", "ORG"), ("Tim Cook", "PER"), ("Cupertino", "LOC")],
    (6, None): [],
}


def load_docs(result):
    nlp = spacy.blank("xx")
    docs = []
    for part in sorted((result.path / "corpus").glob("*.spacy")):
        docs += list(DocBin().from_disk(part).get_docs(nlp.vocab))
    return docs


def test_every_entity_span_loads_back_with_its_text_label_and_offsets(tmp_path):
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["SPACY"], TEXT_PROJECT / "label_config.xml")["SPACY"]
    docs = load_docs(result)
    tasks = {t["id"]: t for t in json.loads((TEXT_PROJECT / "export.json").read_text(encoding="utf-8"))}
    found = {(d.user_data["task_id"], d.user_data["annotation_id"]): d for d in docs}
    assert list(found) == list(EXPECTED)
    for (task_id, annotation_id), doc in found.items():
        assert doc.text == tasks[task_id]["data"]["text"]
        assert [(e.text, e.label_) for e in doc.ents] == EXPECTED[(task_id, annotation_id)]
        if annotation_id is None:
            continue
        (annotation,) = [a for a in tasks[task_id]["annotations"] if a["id"] == annotation_id]
        offsets = {(r["value"]["start"], r["value"]["end"]) for r in annotation["result"] if r["type"] == "labels"}
        assert {(e.start_char, e.end_char) for e in doc.ents} <= offsets
    assert result.report["regions_written"] == sum(len(v) for v in EXPECTED.values())
    assert all(outcome.passed for outcome in SpacyWriter.check(result.path, _context()))


def test_whitespace_of_the_text_is_kept_and_partial_words_widen_to_tokens(tmp_path):
    text = "Visit  Zürich\nand the Berlin-based lab."
    berlin = text.index("Berlin")
    task = {"id": 1, "data": {"text": text}, "annotations": [{"id": 2, "completed_by": 1, "result": [
        {"id": "z", "from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 7, "end": 13, "text": "Zürich", "labels": ["LOC"]}},
        {"id": "b", "from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": berlin, "end": berlin + 6, "text": "Berlin", "labels": ["LOC"]}}]}]}
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps([task], ensure_ascii=False), encoding="utf-8")
    result = run_lsflow(tmp_path, export_file, ["SPACY"], (TEXT_PROJECT / "label_config.xml").read_text())["SPACY"]
    (doc,) = load_docs(result)
    assert doc.text == text
    # 'Berlin-based' is one token for Label Studio's tokenizer, so the entity is the whole token.
    assert [(e.text, e.label_) for e in doc.ents] == [("Zürich", "LOC"), ("Berlin-based", "LOC")]


def test_docs_are_written_in_parts_that_spacy_reads_as_one_corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(spacy_format, "DOCS_PER_PART", 2)
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["SPACY"], TEXT_PROJECT / "label_config.xml")["SPACY"]
    parts = sorted(p.name for p in (result.path / "corpus").iterdir())
    assert parts == ["part-00000.spacy", "part-00001.spacy", "part-00002.spacy"]
    examples = list(Corpus(result.path / "corpus")(spacy.blank("xx")))
    assert len(examples) == 6
    assert sum(len(e.reference.ents) for e in examples) == result.report["regions_written"] == 17


def test_a_project_without_text_spans_writes_no_docs_and_reports_every_region(tmp_path):
    result = run_lsflow(tmp_path, IMAGE_PROJECT / "export.json", ["SPACY"], IMAGE_PROJECT / "label_config.xml")["SPACY"]
    assert list((result.path / "corpus").iterdir()) == []
    assert result.report["regions_dropped"] == result.report["regions_in"] > 0


def test_without_spacy_the_format_says_to_install_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "spacy", None)  # what `import spacy` meets when it is not installed
    with pytest.raises(SpacyNotInstalled, match=r"pip install 'lsflow\[spacy\]'"):
        run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["SPACY", "CONLL2003"], TEXT_PROJECT / "label_config.xml")
    assert not (tmp_path / "lsflow" / "CONLL2003").exists()  # nothing half-written is published


def test_check_notices_a_missing_entity(tmp_path):
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["SPACY"], TEXT_PROJECT / "label_config.xml")["SPACY"]
    part = result.path / "corpus" / "part-00000.spacy"
    docs = load_docs(result)
    docs[0].ents = docs[0].ents[1:]
    DocBin(docs=docs, store_user_data=True).to_disk(part)
    (outcome,) = SpacyWriter.check(result.path, _context())
    assert not outcome.passed and outcome.problems == ["16 entities in the DocBins, 17 spans written"]


def _context():
    from lsflow.core.formats.base import ExportContext
    from lsflow.core.model.label_config import LabelConfig

    config = LabelConfig.from_file(TEXT_PROJECT / "label_config.xml")
    return ExportContext(classes=config.classes(), label_config=config)
