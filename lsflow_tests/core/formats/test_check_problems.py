"""Checks over a million files keep bounded memory and still report the first problems in file order."""

import json
import random

from lsflow.core.formats import writer_class
from lsflow.core.formats.shared.problems import Problems
from lsflow.core.model.label_config import LabelConfig
from lsflow.core.pipeline.context import export_context
from lsflow_tests.paths import IMAGE_CONFIG


def test_the_first_problems_by_key_whatever_the_order_they_come_in():
    keys = list(range(500))
    random.Random(3).shuffle(keys)
    problems = Problems(shown=20)
    for key in keys:
        problems.add((f"{key:04d}.xml", 1), f"file {key}")
    assert problems.count == 500
    assert problems.first() == [f"file {key}" for key in range(20)]


def test_csv_repeated_annotation_ids_are_named_by_row(tmp_path):
    (tmp_path / "lsflow_report.json").write_text(json.dumps({"annotations_exported": 3}))
    rows = ["annotation_id,id", "11,1", "12,2", "11,3", "x7,4", "13,5", "12,6", "x7,7", "11,8"]
    (tmp_path / "result.csv").write_text("\n".join(rows) + "\n")
    context = export_context(LabelConfig.from_file(IMAGE_CONFIG), lambda: [])
    [outcome] = writer_class("CSV").check(tmp_path, context)
    assert not outcome.passed
    assert outcome.problems == ["row 4: annotation 11 appears twice", "row 7: annotation 12 appears twice",
                                "row 8: annotation x7 appears twice", "row 9: annotation 11 appears twice",
                                "4 rows carry an annotation, 3 annotations were exported"]
    assert outcome.metadata["annotation_rows"] == 4
