"""`lsflow convert --option NAME=VALUE`: writer options reach the writers; unknown names are refused."""

from click.testing import CliRunner

from lsflow.cli import main
from lsflow_tests.paths import SAMPLE_PROJECTS

TEXT_PROJECT = SAMPLE_PROJECTS / "2"


def convert(tmp_path, *options):
    return CliRunner().invoke(main, ["convert", str(TEXT_PROJECT / "export.json"), "--format", "CSV", "--out",
                                     str(tmp_path), "--config", str(TEXT_PROJECT / "label_config.xml"), *options])


def test_options_reach_the_csv_writer(tmp_path):
    result = convert(tmp_path, "--option", "csv_header=false")
    assert result.exit_code == 0, result.output
    first_line = (tmp_path / "CSV" / "result.csv").read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith('1,"1","2026-11-25T00:47:39.371622Z",1,')  # a row, not the header
    assert (tmp_path / "CSV" / "columns.txt").read_text().splitlines()[0] == "annotation_id"


def test_an_option_no_chosen_format_has_is_refused_before_anything_is_written(tmp_path):
    result = convert(tmp_path, "--option", "csv_headr=false")
    assert result.exit_code == 2
    assert "'csv_headr=false': the options of CSV are csv_header, csv_multi_value_separator" in result.output
    assert not (tmp_path / "CSV").exists()
