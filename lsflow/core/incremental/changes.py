"""Incremental re-export: which tasks to fetch again, and which ones the server no longer has.

The watermark is the newest task `updated_at` of the previous snapshot — the server's clock, never
ours — minus an overlap, so a change committed while the last snapshot was being taken is fetched
again rather than missed (fetching a task twice is harmless: upserts are idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from datetime import UTC, datetime, timedelta
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
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def watermark(max_updated_at: str, overlap: timedelta = WATERMARK_OVERLAP) -> str:
    moment = parse_server_time(max_updated_at) - overlap
    return moment.astimezone(UTC).strftime(SERVER_TIME_FORMAT)


def changed_after(updated_at: str | None, since: str) -> bool:
    return updated_at is None or parse_server_time(updated_at) > parse_server_time(since)


def find_deleted(known_ids: Iterable[int], count_between: Callable[[int, int], int],
                 ids_between: Callable[[int, int], Iterable[int]],
                 submit: Callable[..., Future] | None = None) -> set[int]:
    """Which of `known_ids` the server no longer has, from counts of its tasks with ids in a range.

    Listing every id of a project costs the server ~1 ms a task (it loads their annotations); a count
    over an id range costs one request whatever the range. Label Studio's task ids only grow, so tasks
    made since have larger ids than every known one, and the count over the known range falls short
    by exactly the number deleted; ranges that fall short are halved (one count per halving: the
    other half's is the difference) until they are small enough to list (`ids_between`), or gone
    whole. A range that counts more tasks than are known (which growing ids rule out) is counted
    again in halves rather than trusted.

    Requests go through `submit` (e.g. a thread pool's), and each answer sends its follow-ups at once:
    the server is kept busy rather than waiting for the slowest request of a round.
    """
    known = sorted(set(known_ids))
    deleted: set[int] = set()
    send = submit or _done_now
    waiting: dict[Future, Callable[[Any], None]] = {}

    def count(start: int, end: int, then: Callable[[int], None]) -> None:
        waiting[send(count_between, known[start], known[end - 1])] = then

    def counted(start: int, end: int) -> None:
        """known[start:end], its shortfall not yet known."""
        def then(present: int) -> None:
            if present > end - start:  # tasks the snapshot did not have: count the halves on their own
                middle = (start + end) // 2
                counted(start, middle)
                counted(middle, end)
            else:
                short(start, end, end - start - present)
        count(start, end, then)

    def short(start: int, end: int, missing: int) -> None:
        """known[start:end] lacks `missing` tasks on the server."""
        if missing == 0:
            return
        if missing == end - start:
            deleted.update(known[start:end])
        elif end - start <= LIST_BELOW:
            def listed(ids: Iterable[int]) -> None:
                present = set(ids)
                deleted.update(task_id for task_id in known[start:end] if task_id not in present)
            waiting[send(ids_between, known[start], known[end - 1])] = listed
        else:  # count the first half; the second lacks the rest
            middle = (start + end) // 2

            def halved(present: int) -> None:
                if present > middle - start:
                    counted(start, (start + middle) // 2)
                    counted((start + middle) // 2, middle)
                    counted(middle, end)
                    return
                first_missing = middle - start - present
                short(start, middle, first_missing)
                short(middle, end, missing - first_missing)
            count(start, middle, halved)

    if known:
        counted(0, len(known))
    while waiting:
        done, _ = wait(waiting, return_when=FIRST_COMPLETED)
        for future in done:
            waiting.pop(future)(future.result())
    return deleted


def _done_now(function: Callable[..., Any], *args: Any) -> Future:
    future: Future = Future()
    future.set_result(function(*args))
    return future
