"""Incremental re-export: which tasks to fetch again, and which ones the server no longer has.

The watermark is the newest task `updated_at` of the previous snapshot — the server's clock, never
ours — minus an overlap, so a change committed while the last snapshot was being taken is fetched
again rather than missed (fetching a task twice is harmless: upserts are idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

WATERMARK_OVERLAP = timedelta(seconds=60)
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


def deleted_task_ids(known_ids: set[int], server_count: int, list_server_ids: Callable[[], Iterable[int]]) -> set[int]:
    """Tasks the store holds that the server no longer has.

    New tasks are always in the changed set, so when the counts agree nothing was deleted, and the
    (slow, paginated) listing of every task id is skipped.
    """
    if len(known_ids) == server_count:
        return set()
    return known_ids - set(list_server_ids())
