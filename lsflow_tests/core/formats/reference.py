"""The reference implementations lsflow's tabular and text formats are compared with.

- `label_studio_sdk.converter`, run on the same export file and label config;
- the outputs a real Label Studio 1.23.2 server produced for sample projects 2 and 3
  (`label_studio_1_23_2/`, downloaded from its export API for the same snapshots);
- the Label Studio SDK's own test data (the peer corpus), when it is present beside the repository.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lsflow.core.formats.base import ExportContext
from lsflow.core.model.label_config import ClassList, LabelConfig
from lsflow.core.model.selection import AnnotationPolicy
from lsflow.core.pipeline.context import export_context
from lsflow.core.pipeline.export import export_datasets
from lsflow.sources.export_file import iter_export_tasks
from lsflow_tests.paths import PEER_CORPUS, SAMPLE_PROJECTS

LABEL_STUDIO_OUTPUTS = Path(__file__).parent / "label_studio_1_23_2"
TEXT_PROJECT = SAMPLE_PROJECTS / "2"
AUDIO_PROJECT = SAMPLE_PROJECTS / "3"
IMAGE_PROJECT = SAMPLE_PROJECTS / "1"


def run_lsflow(tmp_path: Path, export_file: Path, formats: list[str], config: str | Path | None = None,
               media: Any = None, policy: str = "all", options: dict[str, str] | None = None):
    """lsflow's export of `export_file`: {format: FormatResult}. `config` is XML text or a file."""
    if config is None:
        context = ExportContext(classes=ClassList(()), media=media, options=options or {})
    else:
        parsed = LabelConfig.parse(config) if isinstance(config, str) else LabelConfig.from_file(config)
        context = export_context(parsed, lambda: iter_export_tasks(export_file), media=media)
        context = replace(context, options=options or {})
    return export_datasets(iter_export_tasks(export_file), formats, tmp_path / "lsflow", context,
                           AnnotationPolicy.parse(policy))


def run_converter(tmp_path: Path, export_file: Path, format_name: str, config: str | dict | Path | None,
                  **kwargs: Any) -> Path:
    """The SDK converter's output folder for `export_file` (config: XML text, a file, a parsed schema or None)."""
    from label_studio_sdk.converter import Converter

    if isinstance(config, Path):
        config = config.read_text(encoding="utf-8")
    out = tmp_path / "converter" / format_name
    converter = Converter(config if config is not None else {}, project_dir=None, **kwargs)
    converter.convert(str(export_file), str(out), format_name, is_dir=False,
                      **({"csv_separator": "\t"} if format_name == "TSV" else {}))
    return out


def read_table(path: Path, delimiter: str) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream, delimiter=delimiter))


def same_cell(ours: str, theirs: str) -> bool:
    """Equal text, or JSON of equal value (the converter escapes '/' as '\\/' in JSON cells; lsflow does not)."""
    if ours == theirs:
        return True
    try:
        return json.loads(ours) == json.loads(theirs) and ours.startswith(("[", "{"))
    except ValueError:
        return False


def assert_same_table(ours: list[list[str]], theirs: list[list[str]]) -> None:
    assert ours[0] == theirs[0], "columns differ"
    assert len(ours) == len(theirs), f"{len(ours) - 1} rows, the converter wrote {len(theirs) - 1}"
    for number, (our_row, their_row) in enumerate(zip(ours[1:], theirs[1:]), 2):
        differing = [(column, a, b) for column, a, b in zip(ours[0], our_row, their_row) if not same_cell(a, b)]
        assert not differing, f"row {number}: {differing}"


# Label configs for the peer corpus files whose SDK tests pass a parsed schema instead of XML.
REPEATER_XML = """<View>
  <Repeater on="$images" indexFlag="{{idx}}">
    <Image name="page_{{idx}}" value="$images[{{idx}}].url"/>
    <RectangleLabels name="labels_{{idx}}" toName="page_{{idx}}">
      <Label value="Document Title"/><Label value="Document Date"/>
    </RectangleLabels>
    <Taxonomy name="categories_{{idx}}" toName="page_{{idx}}">
      <Choice value="Archaea"/><Choice value="Bacteria"/><Choice value="Eukarya"/>
    </Taxonomy>
  </Repeater>
</View>"""
CHAT_XML = '<View><Chat name="chat" toName="chat" value="$chat"/></View>'
COLLIDING_XML = """<View>
  <Text name="text" value="$text"/>
  <Choices name="text" toName="text"><Choice value="positive"/><Choice value="negative"/></Choices>
</View>"""


def record_cases() -> list:
    """(export file, lsflow's label config, the converter's) for the JSON_MIN/CSV/TSV comparisons."""
    cases = [
        pytest.param(project / "export.json", project / "label_config.xml", project / "label_config.xml", id=name)
        for name, project in (("sample-image", IMAGE_PROJECT), ("sample-text", TEXT_PROJECT),
                              ("sample-audio", AUDIO_PROJECT))
    ]
    json_min, csv_dir = PEER_CORPUS / "test_export_json_min", PEER_CORPUS / "test_export_csv"
    peer = [
        ("peer-polygons", json_min / "data.json", json_min / "label_config.xml", json_min / "label_config.xml"),
        ("peer-repeater", json_min / "data_repeater.json", REPEATER_XML, "repeater-schema"),
        ("peer-chat", json_min / "chat_data.json", CHAT_XML, CHAT_XML),
        ("peer-csv", csv_dir / "csv_test.json", None, None),
        ("peer-csv2", csv_dir / "csv_test2.json", None, None),
        ("peer-history", csv_dir / "csv_test_history.json", None, None),
        ("peer-colliding", csv_dir / "csv_test_colliding_keys.json", COLLIDING_XML, COLLIDING_XML),
        ("peer-colliding-mixed", csv_dir / "csv_test_colliding_keys_mixed.json", COLLIDING_XML, COLLIDING_XML),
    ]
    for name, export_file, config, converter_config in peer:
        if converter_config == "repeater-schema":
            schema_file = json_min / "label_config_repeater.json"
            converter_config = json.loads(schema_file.read_text()) if schema_file.is_file() else None
        marks = [] if export_file.is_file() else [pytest.mark.skip(reason=f"the peer corpus is not here ({export_file})")]
        cases.append(pytest.param(export_file, config, converter_config, id=name, marks=marks))
    return cases
