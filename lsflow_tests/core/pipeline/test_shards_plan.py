"""Shard plans: bounded id ranges, and image names fixed for the whole project as one pass gives them."""

from lsflow.core.pipeline.shards import plan_shards


def test_a_plan_has_bounded_id_ranges_and_names_duplicates_as_one_pass():
    # 10 000 tasks, ids 5, 10, …, 50 000; every 1 000th task's image is "same.jpg".
    rows = [(task_id, f"/data/upload/1/{'same' if task_id % 5000 == 0 else f'p{task_id}'}.jpg", None, "h")
            for task_id in range(5, 50_001, 5)]
    plan = plan_shards(rows, size=12_000)
    assert [(shard.first, shard.end, shard.tasks) for shard in plan.shards] == [
        (0, 12_000, 2_399), (12_000, 24_000, 2_400), (24_000, 36_000, 2_400), (36_000, 48_000, 2_400),
        (48_000, 60_000, 401)]
    assert plan.tasks == 10_000
    # The first "same.jpg" keeps its name; the nine later ones are named apart by task id.
    assert plan.renamed == {task_id: f"same__task{task_id}.jpg" for task_id in range(10_000, 50_001, 5_000)}


def test_ids_out_of_order_give_no_plan():
    assert plan_shards([(1, None, None, None), (3, None, None, None), (2, None, None, None)], size=2) is None


def test_a_changed_task_changes_only_its_shards_digest():
    rows = [(task_id, None, None, f"h{task_id}") for task_id in range(1, 31)]
    before = plan_shards(rows, size=10).shards
    rows[14] = (15, None, None, "edited")
    after = plan_shards(rows, size=10).shards
    assert [a.digest == b.digest for a, b in zip(before, after)] == [True, False, True, True]
    assert len({shard.digest for shard in before}) == 4
