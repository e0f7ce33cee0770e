"""A version's change counts, walked side by side a batch at a time, equal the whole-table diff's."""

import pyarrow as pa
import pyarrow.parquet as pq

from lsflow.project import versions
from lsflow.project.versions import TASKS_SCHEMA, diff_counts, diff_tables


def _table(rows: dict[int, tuple[str, list[tuple[int, str, bool]]]]) -> pa.Table:
    """Task id → (content hash, [(annotation id, updated_at, ground truth)]), in id order."""
    return pa.table({
        "task_id": list(rows), "split": [None] * len(rows), "content_hash": [h for h, _ in rows.values()],
        "image_ref": [f"{t}.jpg" for t in rows], "updated_at": ["2026-01-01"] * len(rows),
        "labels": [[] for _ in rows],
        "annotations": [[{"id": a, "annotator": "ann@x", "updated_at": u, "ground_truth": g} for a, u, g in annotations]
                        for _, annotations in rows.values()],
    }, schema=TASKS_SCHEMA)


def test_counts_walked_in_batches_equal_the_whole_diff(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "_LINEAGE_BATCH", 2)  # the walk crosses batches on both sides
    before = {
        1: ("a", [(10, "t1", False)]),  # unchanged
        2: ("b", [(20, "t1", False), (21, "t1", False)]),  # an annotation edited, one removed, one added
        3: ("c", [(30, "t1", False)]),  # removed
        4: ("d", [(40, "t1", False)]),  # the same content, other annotations chosen (the policy changed)
        6: ("f", []),  # unchanged, no annotations
    }
    after = {
        1: ("a", [(10, "t1", False)]),
        2: ("b2", [(20, "t2", False), (22, "t2", False)]),
        4: ("d", [(40, "t1", False), (41, "t1", True)]),
        5: ("e", [(50, "t1", False)]),  # added
        6: ("f", []),
    }
    pq.write_table(_table(before), tmp_path / "before.parquet")
    expected = diff_tables(_table(before), _table(after)).counts()
    assert expected == {"tasks_added": 1, "tasks_removed": 1, "tasks_changed": 1, "annotations_added": 3,
                        "annotations_removed": 2, "annotations_edited": 1}
    assert diff_counts(tmp_path / "before.parquet", _table(after)) == expected
