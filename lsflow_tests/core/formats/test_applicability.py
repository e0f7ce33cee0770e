"""Which formats a project's label config can fill, as Label Studio offers formats per config."""

import pytest

from lsflow.core.formats import WRITERS
from lsflow.core.model.label_config import LabelConfig
from lsflow_tests.paths import SAMPLE_PROJECTS

ALWAYS = {"JSON", "JSON_MIN", "CSV", "TSV"}
IMAGE = {"COCO", "COCO_WITH_IMAGES", "VOC", "YOLO", "YOLO_WITH_IMAGES", "YOLO_OBB", "YOLO_OBB_WITH_IMAGES",
         "YOLO_SEG", "YOLO_POSE", "BRUSH_TO_NUMPY", "BRUSH_TO_PNG", "BRUSH_TO_COCO"}


@pytest.mark.parametrize("project, expected", [
    ("1", ALWAYS | IMAGE),                             # rectangles, polygons, keypoints, brush
    ("2", ALWAYS | {"CONLL2003", "SPACY"}),            # named entities on text
    ("3", ALWAYS | {"ASR_MANIFEST"}),                  # audio transcriptions
])
def test_sample_projects_get_the_formats_their_label_config_can_fill(project, expected):
    config = LabelConfig.from_file(SAMPLE_PROJECTS / project / "label_config.xml")
    assert {name for name, writer in WRITERS.items() if writer.not_applicable(config) is None} == expected


def test_the_reason_names_what_the_config_lacks():
    boxes_only = LabelConfig.parse('<View><Image name="i" value="$image"/>'
                                   '<RectangleLabels name="b" toName="i"><Label value="car"/></RectangleLabels></View>')
    assert WRITERS["YOLO_POSE"].not_applicable(boxes_only) == \
        "YOLO_POSE needs a label config with a <keypoint/keypointlabels> control tag"
    assert WRITERS["CONLL2003"].not_applicable(boxes_only) == "CONLL2003 needs a label config with a <text> object tag"
    assert all(writer.not_applicable(None) is None for writer in WRITERS.values())
