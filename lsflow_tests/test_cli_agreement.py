"""`lsflow agreement`: an export file and a project's store, with hand-computed numbers."""

import json

import pytest
from click.testing import CliRunner

from lsflow.cli import main
from lsflow.core.incremental.store import write_store
from lsflow.core.model.task import Task
from lsflow.project.layout import ProjectLayout
from lsflow_tests.test_cli_consensus import _export


def _two_tasks():
    # The consensus test's a.jpg and b.jpg (axis-aligned boxes, three annotators).
    return _export()[:2]


def _check(result):
    regions = result["regions"]
    # a.jpg: alice/bob match cat and dog (2 of 2+2); alice/carol and bob/carol the cat (1 of 2+1).
    # b.jpg: the birds are far apart: alice/bob 0 of 1+1, alice/carol and bob/carol 0 of 1+0.
    pairs = {pair: row["f1"] for pair, row in regions["by_pair"].items()}
    assert pairs == {"alice@example.com / bob@example.com": pytest.approx(4 / 6),
                     "alice@example.com / carol@example.com": pytest.approx(2 / 4),
                     "bob@example.com / carol@example.com": pytest.approx(2 / 4)}
    assert regions["overall"]["f1"] == pytest.approx(2 * 4 / 14)
    assert {label: row["f1"] for label, row in regions["by_class"].items()} == {
        "bird": 0.0, "cat": pytest.approx(1.0), "dog": pytest.approx(2 / 4)}
    # time: a.jpg day, day, night; b.jpg day, night. 5 ratings (day 3, night 2); unlike ordered pairs
    # 4/2 + 2/1 = 4; α = 1 − (5 − 1)·4 / (25 − 9 − 4) = −1/3.
    time = result["classifications"]["time→image"]
    assert time["krippendorff_alpha"] == pytest.approx(-1 / 3)
    assert time["fleiss_kappa"] is None
    # alice/bob: (day, day), (day, night): p_o .5, p_e (2·1)/4 = .5: κ 0.
    assert time["pairs"]["alice@example.com / bob@example.com"] == {"items": 2, "cohen_kappa": pytest.approx(0.0)}


def test_agreement_of_an_export_file(tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps(_two_tasks()))
    out = tmp_path / "agreement"
    result = CliRunner().invoke(main, ["agreement", str(export), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 of 2 tasks annotated by two or more annotators; region F1 0.571" in result.output
    _check(json.loads((out / "agreement.json").read_text()))
    report = (out / "README.md").read_text()
    assert "| cat | 1.000 | 3 | 3 | 3 |" in report and "Krippendorff's alpha (nominal): -0.333" in report


def test_agreement_of_a_project_store(tmp_path):
    layout = ProjectLayout.for_export_path(tmp_path, "7")
    write_store((Task.from_dict(raw) for raw in _two_tasks()), layout.store_dir, "image", {})
    result = CliRunner().invoke(main, ["agreement", "--path", str(tmp_path), "--project", "7"])
    assert result.exit_code == 0, result.output
    _check(json.loads((layout.agreement_dir / "agreement.json").read_text()))
    refused = CliRunner().invoke(main, ["agreement", "--path", str(tmp_path)])
    assert refused.exit_code != 0 and "give an EXPORT_FILE, or --path and --project" in refused.output
