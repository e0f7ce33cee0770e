"""`lsflow convert --option NAME=VALUE`: writer options reach the writers; unknown names are refused."""

import json

from click.testing import CliRunner

from lsflow.cli import main
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT, SAMPLE_PROJECTS

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


def convert_images(tmp_path, formats, *options):
    return CliRunner().invoke(main, ["convert", str(IMAGE_EXPORT), "--format", formats, "--out", str(tmp_path),
                                     "--config", str(IMAGE_CONFIG), *options])


def test_the_coco_and_voc_conventions_are_options_of_their_formats(tmp_path):
    result = convert_images(tmp_path, "COCO,VOC", "--option", "coco_first_category_id=0",
                            "--option", "voc_pixel_origin=0")
    assert result.exit_code == 0, result.output
    categories = json.loads((tmp_path / "COCO" / "result.json").read_text())["categories"]
    assert (categories[0]["id"], categories[0]["name"]) == (0, "Car")
    first_box = (tmp_path / "VOC" / "Annotations" / "frame_0001.xml").read_text()
    assert "<xmin>48</xmin>" in first_box  # task 107's Car at x = 15% of 320 px: pixel 48 counted from 0
    refused = convert_images(tmp_path / "yolo", "YOLO", "--option", "coco_first_category_id=0")
    assert refused.exit_code == 2 and "the options of YOLO are none" in refused.output


def test_an_unknown_value_of_a_known_option_is_a_clear_error(tmp_path):
    result = convert_images(tmp_path, "VOC", "--option", "voc_pixel_origin=2")
    assert result.exit_code == 1
    assert "option voc_pixel_origin='2': expected 1 or 0" in result.output
