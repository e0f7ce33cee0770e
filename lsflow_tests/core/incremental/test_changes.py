"""Finding deleted tasks from counts of id ranges and ids at a rank: exactly the deleted ones, in few requests."""

import bisect
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lsflow.core.incremental.changes import LIST_BELOW, find_deleted


class Project:
    """The server side of `find_deleted`: counts and listings of the ids it has, and how many were asked."""

    def __init__(self, ids):
        self.ids = sorted(ids)
        self.counts = self.listings = 0
        self.lock = threading.Lock()

    def probe(self, low, high, rank):
        """As Label Studio's task list answers a page of one task: the range's count, and the id at `rank`."""
        with self.lock:
            self.counts += 1
        first, end = bisect.bisect_left(self.ids, low), bisect.bisect_right(self.ids, high)
        if rank is not None and rank >= end - first:
            with self.lock:
                self.counts += 1  # the page past the end is refused; the count is asked again without a rank
            return end - first, None
        return end - first, None if rank is None else self.ids[first + rank]

    def ids_between(self, low, high):
        with self.lock:
            self.listings += 1
        return self.ids[bisect.bisect_left(self.ids, low):bisect.bisect_right(self.ids, high)]


@pytest.mark.parametrize("seed", range(60))
def test_exactly_the_deleted_tasks_are_found(seed):
    rng = random.Random(seed)
    size = rng.choice([0, 1, 5, LIST_BELOW, LIST_BELOW + 1, 1000, 20000])
    known = rng.sample(range(1, 3 * size + 10), size)
    deleted = set(rng.sample(known, min(size, rng.choice([0, 1, 3, 10, 100, size]))))
    # Tasks made after the snapshot have larger ids than any known one.
    newer = {3 * size + 10 + n for n in range(rng.randint(0, 3))}
    project = Project((set(known) - deleted) | newer)
    assert find_deleted(known, project.probe, project.ids_between) == deleted


def test_nothing_deleted_costs_one_count():
    project = Project(range(1, 20001))
    assert find_deleted(range(1, 20001), project.probe, project.ids_between) == set()
    assert (project.counts, project.listings) == (1, 0)


@pytest.mark.parametrize("seed", range(5))
def test_ten_scattered_deletions_in_20000_tasks_take_a_few_dozen_requests(seed):
    rng = random.Random(seed)
    known = list(range(1, 20001))
    deleted = set(rng.sample(known, 10))
    project = Project(set(known) - deleted)
    assert find_deleted(known, project.probe, project.ids_between) == deleted
    # Splitting in halves by counts alone took 50-55 here; listing every id instead: 20 000 tasks.
    assert project.counts + project.listings <= 42, (project.counts, project.listings)


def test_more_than_half_deleted_is_counted_when_the_rank_is_past_the_end():
    known = list(range(1, 1001))
    deleted = set(range(1, 801))
    project = Project(set(known) - deleted)
    assert find_deleted(known, project.probe, project.ids_between) == deleted


def test_a_range_holding_more_tasks_than_known_is_counted_in_halves_not_trusted():
    known = list(range(1, 1001))
    project = Project((set(known) - {750, 751}) | {250.5})  # a task among the known ones the store missed
    assert find_deleted(known, project.probe, project.ids_between) == {750, 751}


@pytest.mark.parametrize("seed", range(5))
def test_requests_answered_out_of_order_by_a_pool_find_the_same_deletions(seed):
    rng = random.Random(seed)
    known = list(range(1, 5001))
    deleted = set(rng.sample(known, 12)) | set(range(3000, 3040))
    project = Project(set(known) - deleted)
    in_order = find_deleted(known, project.probe, project.ids_between)
    sequential_requests = project.counts + project.listings

    def slow(request):  # answers come back in another order than asked
        def answer(*args):
            time.sleep(rng.random() / 500)
            return request(*args)
        return answer

    project.counts = project.listings = 0
    with ThreadPoolExecutor(4) as pool:
        found = find_deleted(known, slow(project.probe), slow(project.ids_between), pool.submit)
    assert found == in_order == deleted
    assert project.counts + project.listings == sequential_requests
