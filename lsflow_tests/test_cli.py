import json

from click.testing import CliRunner

from lsflow.cli import main
from lsflow_tests.paths import IMAGE_CONFIG, IMAGE_EXPORT, SAMPLE_MEDIA


def test_convert_writes_every_requested_format_in_one_run(tmp_path):
    result = CliRunner().invoke(main, [
        "convert", str(IMAGE_EXPORT), "--format", "coco,YOLO,VOC", "--out", str(tmp_path),
        "--config", str(IMAGE_CONFIG), "--media-root", str(SAMPLE_MEDIA),
    ])
    assert result.exit_code == 0, result.output
    assert {"COCO", "YOLO", "VOC"} <= {p.name for p in tmp_path.iterdir()}
    assert "COCO: " in result.output and "dropped 2: 'choices' region has no image geometry" in result.output


def test_without_a_label_config_classes_come_from_the_data_sorted_with_a_warning(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(IMAGE_EXPORT), "--format", "COCO", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "warning: no label config given" in result.output
    categories = json.loads((tmp_path / "COCO" / "result.json").read_text())["categories"]
    # Keypoint labels (head, hands) name parts of an object, never classes.
    assert [c["name"] for c in categories] == ["Car", "Person", "Road", "keypoints"]


def test_bad_input_fails_with_a_message_and_writes_nothing(tmp_path):
    not_json = tmp_path / "export.json"
    not_json.write_text("id,image\n1,a.jpg\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(not_json), "--format", "COCO", "--out", str(out)])
    assert result.exit_code != 0
    assert "is not a Label Studio JSON export" in result.output
    assert not out.exists() or not any(out.iterdir())

    result = CliRunner().invoke(main, ["convert", str(IMAGE_EXPORT), "--format", "COCO,NOPE", "--out", str(out)])
    assert result.exit_code != 0 and "unknown format 'NOPE'" in result.output
