"""Incremental re-export: which tasks to fetch again, and which ones the server no longer has.

The watermark is the newest task `updated_at` of the previous snapshot — the server's clock, never
ours — minus an overlap, so a change committed while the last snapshot was being taken is fetched
again rather than missed (fetching a task twice is harmless: upserts are idempotent).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from datetime import UTC, datetime, timedelta
from typing import Any

WATERMARK_OVERLAP = timedelta(seconds=60)
# A range of this many known tasks is listed rather than halved again: on Label Studio 1.23.2 a count
# takes ~0.05 s and listing ~0.06 s + 0.8 ms a task (benchmarks/deletion_listing.py), so below ~128
# tasks one list costs less than one more count and the list of the half left.
LIST_BELOW = 128
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


# What the server answers about an id range: how many tasks it has there, and the id of the one at a
# given rank in id order (None when no rank was asked, or the range has no task at that rank).
Probe = Callable[[int, int, int | None], tuple[int, int | None]]


def find_deleted(known_ids: Iterable[int], probe: Probe, ids_between: Callable[[int, int], Iterable[int]],
                 submit: Callable[..., Future] | None = None) -> set[int]:
    """Which of `known_ids` the server no longer has, from counts of its tasks in id ranges.

    Listing every id of a project costs the server ~1 ms a task (it loads their annotations); a count
    over an id range costs one request whatever the range. Label Studio's task ids only grow, so tasks
    made since have larger ids than every known one, and the count over the known range falls short
    by exactly the number deleted. A range that falls short is split in three with one request: the
    count over its first two thirds, and the id at the rank one third in (`probe`). That id is a known
    task the server still has, and its position among the known ids says how many before it are gone;
    the count says how many of the first two thirds are, and the last third lacks the rest. Ranges are
    split until they are small enough to list (`ids_between`), or gone whole. A range that counts more
    tasks than are known (which growing ids rule out) is counted again in halves rather than trusted.

    Requests go through `submit` (e.g. a thread pool's), and each answer sends its follow-ups at once:
    the server is kept busy rather than waiting for the slowest request of a round.
    """
    known = sorted(set(known_ids))
    deleted: set[int] = set()
    send = submit or _done_now
    waiting: dict[Future, Callable[[Any], None]] = {}

    def explore(start: int, end: int, missing: int | None) -> None:
        """known[start:end] lacks `missing` tasks on the server (None: not known yet)."""
        size = end - start
        if size == 0 or missing == 0:
            return
        if missing == size:
            deleted.update(known[start:end])
        elif size <= LIST_BELOW:
            def listed(ids: Iterable[int]) -> None:
                present = set(ids)
                deleted.update(task_id for task_id in known[start:end] if task_id not in present)
            waiting[send(ids_between, known[start], known[end - 1])] = listed
        else:
            split(start, end, missing)

    def split(start: int, end: int, missing: int | None) -> None:
        # Count the first two thirds (all of it while the shortfall is unknown) and ask the id at the
        # first third. A rank the range may not reach is not asked: the server would answer no count.
        stop = end if missing is None else start + 2 * (end - start) // 3
        kept_at_least = (stop - start) - (missing if missing is not None else (stop - start) // 2)
        rank: int | None = min((end - start) // 3 if missing is not None else (stop - start) // 2, kept_at_least - 1)
        if rank is not None and rank < 0:
            rank = None

        def answered(answer: tuple[int, int | None]) -> None:
            present, at_rank = answer
            if present > stop - start:  # tasks the snapshot did not have: count the halves on their own
                middle = (start + end) // 2
                explore(start, middle, None)
                explore(middle, end, None)
                return
            first_missing = (stop - start) - present
            position = bisect_left(known, at_rank, start, stop) if at_rank is not None and rank is not None else stop
            before = (position - start) - (rank or 0)  # known tasks before it that the server lacks
            if position < stop and known[position] == at_rank and 0 <= before <= first_missing:
                explore(start, position, before)
                explore(position + 1, stop, first_missing - before)
            else:  # no rank asked, or an answer growing ids rule out: the count alone
                explore(start, stop, first_missing)
            if missing is not None:
                explore(stop, end, missing - first_missing)

        waiting[send(probe, known[start], known[stop - 1], rank)] = answered

    explore(0, len(known), None)
    while waiting:
        done, _ = wait(waiting, return_when=FIRST_COMPLETED)
        for future in done:
            waiting.pop(future)(future.result())
    return deleted


def _done_now(function: Callable[..., Any], *args: Any) -> Future:
    future: Future = Future()
    future.set_result(function(*args))
    return future
