"""Recurring events are expanded in a separate process, bounded in CPU time and memory.

A repeat rule can be impossible (``BYMONTH=2;BYMONTHDAY=30`` every hour: the rule library
searches until the year 9999), or merely enormous; Python cannot stop a thread that is busy, so
the expansion of a recurring object runs in a small pool of worker processes (pebble) with a
time limit (``CALSYNC_PARSE_TIMEOUT``) and an address-space limit. A worker past either is
killed and replaced; that object becomes one "invalid data: …" entry, and the sync goes on.
Plain (non-recurring) events are read in the sync's own thread: they are linear in their size.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import datetime as dt
import logging
import multiprocessing
import threading

from core import ics

log = logging.getLogger("calsync.expander")

MEMORY_LIMIT = 1024 * 1024 * 1024  # bytes of address space a worker may use
WORKERS = 2
TASKS_PER_WORKER = 500  # then a fresh process: nothing accumulates

_pool = None
_lock = threading.Lock()


def _limit_memory(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _expand_in_worker(data: str, window_start, window_end, tz_name: str, policy: str, max_occurrences: int, me: frozenset[str]):
    cal = ics.parse(data, only=ics.READ)
    return ics.expand(cal, window_start, window_end, ics.zone(tz_name), all_day_policy=policy, max_occurrences=max_occurrences, me=me)


def _get_pool():
    global _pool
    with _lock:
        if _pool is None:
            import pebble

            # forkserver: workers start from a clean process, not a fork of a threaded service.
            context = multiprocessing.get_context("forkserver")
            # Every worker expands with icalendar: loaded once in the server, not in each worker.
            multiprocessing.set_forkserver_preload(["core.ics", "core.recurrence", "icalendar", "dateutil.rrule"])
            _pool = pebble.ProcessPool(
                max_workers=WORKERS, max_tasks=TASKS_PER_WORKER, initializer=_limit_memory, initargs=(MEMORY_LIMIT,), context=context
            )
            atexit.register(shutdown)
        return _pool


def shutdown() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.stop()
            _pool.join(timeout=5)
            _pool = None


def _invalid(parsed, why: str) -> list[ics.Occurrence]:
    master = ics.events(parsed)[0] if ics.events(parsed) else None
    uid = str(master.get("UID", "") or "") if master is not None else ""
    subject = str(master.get("SUMMARY", "") or "") if master is not None else ""
    return [ics.Occurrence(uid, "", None, None, subject, False, f"invalid data: {why}", None)]


class Budget:
    """How many recurring objects of one sync may run out of time before the rest are not expanded."""

    def __init__(self, timeouts: int = 3):
        self.left = timeouts


def expand(
    data: str,
    parsed,
    window_start: dt.datetime,
    window_end: dt.datetime,
    tz,
    *,
    all_day_policy: str,
    max_occurrences: int,
    timeout: float,
    budget: Budget | None = None,
    me: frozenset[str] = frozenset(),
) -> list[ics.Occurrence]:
    """The feed-entry rows of one object: recurring ones expanded in a worker within ``timeout`` seconds."""
    if not ics.is_recurring(parsed):
        return ics.expand(parsed, window_start, window_end, tz, all_day_policy=all_day_policy, max_occurrences=max_occurrences, me=me)
    why = ics.rule_problem(parsed)
    if why:
        return _invalid(parsed, why)
    if budget is not None and budget.left <= 0:
        return _invalid(parsed, "not read: other repeat rules of this calendar already took too long in this sync")
    future = _get_pool().schedule(
        _expand_in_worker,
        args=(data, window_start, window_end, getattr(tz, "key", "UTC"), all_day_policy, max_occurrences, me),
        timeout=timeout,
    )
    try:
        return future.result()
    except concurrent.futures.TimeoutError:
        log.warning("a recurring event took more than %ss to expand: not read", timeout)
        if budget is not None:
            budget.left -= 1
        return _invalid(parsed, f"its repeat rule takes too long to read (more than {timeout:g} s of work); not read")
    except MemoryError:
        return _invalid(parsed, "its repeat rule needs too much memory to read; not read")
    except Exception as exc:  # noqa: BLE001 — the worker died (the memory limit) or the data broke the parser there
        if exc.__class__.__name__ == "ProcessExpired":
            return _invalid(parsed, "its repeat rule needs too much memory to read; not read")
        return _invalid(parsed, f"the repeat rule cannot be read ({str(exc)[:120]})")
