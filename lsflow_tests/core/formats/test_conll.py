"""CONLL2003: Label Studio's file byte for byte (its tokenizer, header, columns), spans it loses reported."""

import json

import pytest

from lsflow.core.formats.conll import ConllWriter
from lsflow.core.model.label_config import LabelConfig
from lsflow_tests.core.formats.reference import (
    IMAGE_PROJECT,
    LABEL_STUDIO_OUTPUTS,
    TEXT_PROJECT,
    run_converter,
    run_lsflow,
)

NER_CONFIG = """<View><Labels name="label" toName="text">
  <Label value="PER"/><Label value="ORG"/><Label value="LOC"/><Label value="MISC"/></Labels>
  <Text name="text" value="$text"/></View>"""


def span(text, needle, label, region_id, occurrence=0):
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(needle, start + 1)
    return {"id": region_id, "from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": start + len(needle), "text": needle, "labels": [label]}}


def write_export(tmp_path, texts_and_spans):
    tasks = []
    for number, (text, spans) in enumerate(texts_and_spans, 1):
        annotations = [] if spans is None else [{"id": 100 + number, "completed_by": 1,
                                                  "created_at": f"2025-01-01T00:00:{number:02d}Z", "result": spans}]
        tasks.append({"id": number, "data": {"text": text}, "annotations": annotations})
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return path


def conll(result):
    return (result.path / "result.conll").read_text(encoding="utf-8")


def test_file_equals_what_label_studio_1_23_2_exported(tmp_path):
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["CONLL2003"], TEXT_PROJECT / "label_config.xml")
    assert (result["CONLL2003"].path / "result.conll").read_bytes() == \
        (LABEL_STUDIO_OUTPUTS / "project-2" / "result.conll").read_bytes()


TRICKY = "Dr. O'Neil's café in São Paulo sells 1,000 crêpes/day... \"Best\" in town?  Yes!\nVisit Zürich-based ACME/Beta."


def tricky_texts():
    t = TRICKY
    return [
        (t, [span(t, "O'Neil", "PER", "a"), span(t, "São Paulo", "LOC", "b"), span(t, "crêpes", "MISC", "c"),
             span(t, "Zürich", "LOC", "d"), span(t, "ACME", "ORG", "e"), span(t, "Beta", "ORG", "f")]),
        ("Берлин и Москва — столицы.", [span("Берлин и Москва — столицы.", "Берлин", "LOC", "g"),
                                        span("Берлин и Москва — столицы.", "Москва", "LOC", "h")]),
        ("東京で会議 with Sony 🎌 at 10:30, ok", [span("東京で会議 with Sony 🎌 at 10:30, ok", "Sony", "ORG", "i")]),
        ("A span with its space ", [{"id": "j", "from_name": "label", "to_name": "text", "type": "labels",
                                     "value": {"start": 2, "end": 8, "text": "span w", "labels": ["MISC"]}}]),
        ("No annotations at all, just text.", None),
        ("Empty annotation result here.", []),
    ]


@pytest.mark.parametrize("case", ["sample", "tricky"])
def test_file_equals_the_converters(tmp_path, case):
    if case == "sample":
        export_file, config = TEXT_PROJECT / "export.json", (TEXT_PROJECT / "label_config.xml").read_text()
    else:
        export_file, config = write_export(tmp_path, tricky_texts()), NER_CONFIG
    result = run_lsflow(tmp_path, export_file, ["CONLL2003"], config)["CONLL2003"]
    theirs = run_converter(tmp_path, export_file, "CONLL2003", config) / "result.conll"
    assert conll(result) == theirs.read_text(encoding="utf-8")
    assert result.report["balanced"]


def test_nested_and_crossing_spans_keep_the_first_and_report_the_other(tmp_path):
    nested = "The University of California, Berkeley opened."
    crossing = "New York City Hall reopened."
    export_file = write_export(tmp_path, [
        (nested, [span(nested, "University of California, Berkeley", "ORG", "outer"),
                  span(nested, "California", "LOC", "inner")]),
        (crossing, [span(crossing, "New York City", "LOC", "first"), span(crossing, "City Hall", "ORG", "second")]),
    ])
    result = run_lsflow(tmp_path, export_file, ["CONLL2003"], NER_CONFIG)["CONLL2003"]
    assert conll(result) == (
        "-DOCSTART- -X- O\n"
        "The -X- _ O\nUniversity -X- _ B-ORG\nof -X- _ I-ORG\nCalifornia -X- _ I-ORG\n, -X- _ I-ORG\n"
        "Berkeley -X- _ I-ORG\nopened -X- _ O\n. -X- _ O\n\n"
        "New -X- _ B-LOC\nYork -X- _ I-LOC\nCity -X- _ I-LOC\nHall -X- _ O\nreopened -X- _ O\n. -X- _ O\n\n"
    )
    overlap = "overlaps an earlier span (nested or crossing); a CoNLL token has one label"
    assert result.report["dropped_by_reason"] == {overlap: 2}
    dropped = [json.loads(line) for line in (result.path / "lsflow_dropped.jsonl").read_text().splitlines()]
    assert [(d["task"], d["region"]) for d in dropped] == [(1, "inner"), (2, "second")]
    assert all(outcome.passed for outcome in ConllWriter.check(result.path, _context(NER_CONFIG)))


def test_spans_that_do_not_fit_the_text_are_reported(tmp_path):
    text = "Ada Lovelace wrote notes."

    def region(region_id, start, end, quoted, labels=("PER",)):
        return {"id": region_id, "from_name": "label", "to_name": "text", "type": "labels",
                "value": {"start": start, "end": end, "text": quoted, "labels": list(labels)}}

    export_file = write_export(tmp_path, [(text, [
        region("ok", 0, 12, "Ada Lovelace"),
        region("beyond", 20, 40, "notes."),
        region("moved", 13, 18, "notes"),  # the text says 'wrote' there
        region("blank", 12, 13, " "),
        region("unlabelled", 19, 24, "notes", labels=()),
    ])])
    result = run_lsflow(tmp_path, export_file, ["CONLL2003"], NER_CONFIG)["CONLL2003"]
    assert result.report["dropped_by_reason"] == {
        "span offsets are empty or outside the text": 1,
        "span text differs from the task text at its offsets": 1,
        "span covers no token (only whitespace)": 1,
        "region has no label": 1,
    }
    assert result.report["regions_written"] == 1 and result.report["balanced"]
    assert "Ada -X- _ B-PER\nLovelace -X- _ I-PER\nwrote -X- _ O\n" in conll(result)


def test_a_project_without_text_labels_gets_the_header_and_every_region_reported(tmp_path):
    result = run_lsflow(tmp_path, IMAGE_PROJECT / "export.json", ["CONLL2003"],
                        IMAGE_PROJECT / "label_config.xml")["CONLL2003"]
    assert conll(result) == "-DOCSTART- -X- O\n"
    report = result.report
    assert report["regions_written"] == 0 and report["regions_dropped"] == report["regions_in"] > 0
    assert list(report["dropped_by_reason"]) == ["not a Labels span on a Text (CoNLL and spaCy hold named-entity "
                                                 "spans only)"]
    assert all(o.passed for o in ConllWriter.check(result.path, _context(IMAGE_PROJECT / "label_config.xml")))


def _context(config):
    from lsflow.core.formats.base import ExportContext

    parsed = LabelConfig.parse(config) if isinstance(config, str) else LabelConfig.from_file(config)
    return ExportContext(classes=parsed.classes(), label_config=parsed)


@pytest.mark.parametrize("damage, problem", [
    (("Merkel -X- _ I-PER", "Merkel -X- _ I-LOC"), "line 3: I-LOC does not continue a LOC span (after B-PER)"),
    (("Paris -X- _ B-LOC", "Paris -X- _ B-CITY"), "line 8: label 'CITY' is not a label of the label config"),
    (("met -X- _ O", "met _ O"), "line 4: not 'token -X- _ TAG': 'met _ O'"),
    # Valid BIO, but one span more than was written.
    (("Macron -X- _ I-PER", "Macron -X- _ B-PER"), "18 spans begin in the file, 17 were written"),
])
def test_check_catches_broken_tags(tmp_path, damage, problem):
    result = run_lsflow(tmp_path, TEXT_PROJECT / "export.json", ["CONLL2003"], TEXT_PROJECT / "label_config.xml")
    path = result["CONLL2003"].path
    context = _context(TEXT_PROJECT / "label_config.xml")
    (outcome,) = ConllWriter.check(path, context)
    assert outcome.passed and outcome.metadata == {"blocks": 6, "tokens": 61, "spans": 17}

    text = (path / "result.conll").read_text(encoding="utf-8")
    (path / "result.conll").write_text(text.replace(*damage, 1), encoding="utf-8")
    (outcome,) = ConllWriter.check(path, context)
    assert not outcome.passed and problem in outcome.problems
