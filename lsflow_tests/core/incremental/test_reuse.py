"""Looking tasks up in the previous export's index, a batch at a time, finds what one at a time finds."""

from lsflow.core.formats.accounting import TaskAccount, TaskSelection
from lsflow.core.incremental.reuse import OutputRecorder, PreviousOutputs, task_key

ACCOUNT = TaskAccount(TaskSelection(1, (), 1), ("Car",), 0, (), ())


def _previous(tmp_path, rows):
    recorder = OutputRecorder(tmp_path / "index", "fingerprint", {})
    for task_id, key in rows:
        recorder.add(task_id, key, [], [], ACCOUNT)
    recorder.finish(tmp_path)
    previous = PreviousOutputs.open(tmp_path / "index", "fingerprint", {}, tmp_path, "YOLO")
    assert previous is not None
    return previous


def test_a_batch_is_matched_as_each_of_its_tasks_is(tmp_path):
    key = {task_id: task_key(f"hash{task_id}", f"{task_id}.jpg", None) for task_id in range(12)}
    # Rows out of id order, and task 5 twice (a task's last row is the one that counts).
    previous = _previous(tmp_path, [(9, key[9]), (5, key[4]), (3, key[3]), (5, key[5]), (7, key[7])])
    queries = [(3, key[3]), (5, key[5]), (5, key[4]), (7, key[8]), (8, key[8]), (1, key[1]), (11, key[11]),
               (9, None), (9, key[9])]
    one_by_one = [None if k is None else previous.match(task_id, k) for task_id, k in queries]
    assert one_by_one == [2, 3, None, None, None, None, None, None, 0]
    assert previous.match_many([task_id for task_id, _ in queries], [k for _, k in queries]) == one_by_one
    # Ids that are not integers are looked up one at a time.
    assert previous.match_many(["3", 3], [key[3], key[3]]) == [None, 2]
