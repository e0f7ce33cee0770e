"""Incremental re-export: which tasks to fetch again, and which ones the server no longer has.

The watermark is the newest task `updated_at` of the previous snapshot — the server's clock, never
ours — minus an overlap, so a change committed while the last snapshot was being taken is fetched
again rather than missed (fetching a task twice is harmless: upserts are idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

WATERMARK_OVERLAP = timedelta(seconds=60)
# A range of this many known tasks is listed rather than halved again: on Label Studio 1.23.2 a count
# takes ~0.1 s and listing ~0.1 s + 0.8 ms a task, so finding one deletion among 256 by halving (8
# counts) costs more than listing them.
LIST_BELOW = 256
# The format Label Studio's Data Manager filter accepts for `updated_at`.
SERVER_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def parse_server_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def watermark(max_updated_at: str, overlap: timedelta = WATERMARK_OVERLAP) -> str:
    moment = parse_server_time(max_updated_at) - overlap
    return moment.astimezone(timezone.utc).strftime(SERVER_TIME_FORMAT)


def changed_after(updated_at: str | None, since: str) -> bool:
    return updated_at is None or parse_server_time(updated_at) > parse_server_time(since)


def find_deleted(known_ids: Iterable[int], count_between: Callable[[int, int], int],
                 ids_between: Callable[[int, int], Iterable[int]],
                 map_requests: Callable[..., Iterable[Any]] = map) -> set[int]:
    """Which of `known_ids` the server no longer has, from counts of its tasks with ids in a range.

    Listing every id of a project costs the server ~1 ms a task (it loads their annotations); a count
    over an id range costs one request whatever the range. Label Studio's task ids only grow, so tasks
    made since have larger ids than every known one, and the count over the known range falls short
    by exactly the number deleted; ranges that fall short are halved (one count per halving: the
    other half's is the difference) until they are small enough to list (`ids_between`), or gone
    whole. Requests of one round go through `map_requests` (e.g. a thread pool's `map`). A range that
    counts more tasks than are known (which growing ids rule out) is counted again in halves rather
    than trusted.
    """
    known = sorted(set(known_ids))
    deleted: set[int] = set()
    # (start, end, missing): known[start:end] lacks `missing` tasks on the server; None: to be counted.
    pending: list[tuple[int, int, int | None]] = [(0, len(known), None)] if known else []
    while pending:
        counts, halves, listings = [], [], []
        for start, end, missing in pending:
            if missing == 0:
                continue
            if missing == end - start:
                deleted.update(known[start:end])
            elif end - start <= LIST_BELOW:
                listings.append((start, end))
            elif missing is None:
                counts.append((start, end, None))
            else:  # count the first half; the second lacks the rest
                halves.append((start, (start + end) // 2, end, missing))
        requests = counts + [(start, mid, (end, missing)) for start, mid, end, missing in halves]
        found = list(map_requests(lambda request: count_between(known[request[0]], known[request[1] - 1]), requests))
        present = list(map_requests(lambda span: set(ids_between(known[span[0]], known[span[1] - 1])), listings))
        pending = []
        for (start, end, rest), count in zip(requests, found):
            if count > end - start:  # tasks the snapshot did not have: count the halves on their own
                middle = (start + end) // 2
                pending += [(start, middle, None), (middle, end, None)]
                if rest is not None:
                    pending.append((end, rest[0], None))
                continue
            pending.append((start, end, end - start - count))
            if rest is not None:
                pending.append((end, rest[0], rest[1] - (end - start - count)))
        for (start, end), ids in zip(listings, present):
            deleted.update(task_id for task_id in known[start:end] if task_id not in ids)
    return deleted
