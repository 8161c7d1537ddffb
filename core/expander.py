"""Recurring events are expanded in a separate process, bounded in CPU time and memory.

A repeat rule can be impossible (``BYMONTH=2;BYMONTHDAY=30`` every hour: the rule library
searches until the year 9999), or merely enormous; Python cannot stop a thread that is busy, so
the expansion of a recurring object runs in a small pool of worker processes (pebble) with a
time limit (``CALSYNC_PARSE_TIMEOUT``) and an address-space limit. A worker past either is
killed and replaced; that object becomes one "invalid data: …" entry, and the sync goes on.
Plain (non-recurring) events are read in the sync's own thread: they are linear in their size.
A large read (a first sync) has its plain events parsed in the same workers, in chunks
(:func:`read_ahead`): icalendar is pure Python, and the sync's thread has one core where the
workers have them all. The workers live only while there is work (``IDLE_STOP``).
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import logging
import threading
import time

from core import ics

log = logging.getLogger("calsync.expander")

MEMORY_LIMIT = 1024 * 1024 * 1024  # bytes of address space a worker may use
WORKERS = 2
TASKS_PER_WORKER = 500  # then a fresh process: nothing accumulates
READ_AHEAD_MIN = 200  # objects in one read before its plain events are parsed in the workers
READ_AHEAD_CHUNK = 100  # objects a worker parses per task
# Seconds without a task before the workers stop. While a pool lives, pebble's threads wake ~100
# times a second (the sleep_unit below); most syncs read nothing, so a service would pay that for
# ever after its first large read. A new pool forks its workers from the forkserver, which stays
# (icalendar preloaded): a few milliseconds.
IDLE_STOP = 5.0

_pool = None
_pending: set = set()  # the futures of the current pool not done yet
_idle_since = 0.0
_reaper: threading.Timer | None = None
_lock = threading.Lock()
_exiting = False  # set at exit: no pool starts any more
_hook_first = False  # our exit hook registered after multiprocessing's (_exit_hook_first)


def _limit_memory(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _expand_in_worker(data: str, window_start, window_end, tz_name: str, policy: str, max_occurrences: int, me: frozenset[str]):
    cal = ics.parse(data, only=ics.READ)
    return ics.expand(cal, window_start, window_end, ics.zone(tz_name), all_day_policy=policy, max_occurrences=max_occurrences, me=me)


@dataclasses.dataclass(frozen=True)
class Plain:
    """A plain event of another calendar, read in a worker: its UID and its feed-entry rows."""

    uid: str
    rows: list[ics.Occurrence]


def _read_in_worker(datas: list[str], window_start, window_end, tz_name: str, policy: str, max_occurrences: int, me: frozenset[str]):
    tz = ics.zone(tz_name)
    out: list[Plain | None] = []
    for data in datas:
        try:
            cal = ics.parse(data, only=ics.READ)
        except ics.InvalidData:
            out.append(None)
            continue
        vevents = ics.events(cal)
        if not vevents or ics.is_recurring(cal) or ics.is_calsync_event(cal) is not None:
            out.append(None)  # read by the sync itself, as any object of a small read
            continue
        rows = ics.expand(cal, window_start, window_end, tz, all_day_policy=policy, max_occurrences=max_occurrences, me=me)
        out.append(Plain(str(vevents[0].get("UID", "") or ""), rows))
    return out


def read_ahead(
    datas: list[str],
    window_start: dt.datetime,
    window_end: dt.datetime,
    tz,
    *,
    all_day_policy: str,
    max_occurrences: int,
    timeout: float,
    me: frozenset[str] = frozenset(),
) -> list[Plain | None]:
    """The plain events of a large read parsed and expanded in the workers, ``READ_AHEAD_CHUNK``
    objects a task: a :class:`Plain` per object, or None for what the sync reads itself (a small
    read, a series, a copy of calsync's own event, invalid data, a chunk whose worker failed or
    ran past ``timeout``: after one such chunk the rest are read by the sync too)."""
    if len(datas) < READ_AHEAD_MIN:
        return [None] * len(datas)
    try:
        starts = range(0, len(datas), READ_AHEAD_CHUNK)
        args = (window_start, window_end, getattr(tz, "key", "UTC"), all_day_policy, max_occurrences, me)
        futures = [_schedule(_read_in_worker, (datas[i : i + READ_AHEAD_CHUNK], *args), timeout) for i in starts]
    except Exception as exc:  # noqa: BLE001 — no workers (a broken pool): the sync reads everything itself
        log.warning("parsing in the workers is not available (%s): read in the sync's thread", exc.__class__.__name__)
        return [None] * len(datas)
    stolen = _parse_while_workers_start(datas, list(starts), futures, args)
    out: list[Plain | None] = []
    failed = False
    for k, (start, future) in enumerate(zip(starts, futures, strict=True)):
        size = len(datas[start : start + READ_AHEAD_CHUNK])
        got = stolen.get(k)
        if k not in stolen and not failed:
            try:
                got = future.result()
            except Exception as exc:  # noqa: BLE001 — a timeout, a worker that died: those objects are read one by one
                log.warning("objects %d-%d of a read could not be parsed in a worker (%s)", start, start + size - 1, exc.__class__.__name__)
                failed = True
        if failed:
            future.cancel()
        out.extend(got if got is not None and len(got) == size else [None] * size)
    return out


def _parse_while_workers_start(datas: list[str], starts: list[int], futures: list, args: tuple) -> dict[int, list | None]:
    """Until a worker takes its first chunk (a new pool takes ~0.2 s to start), the sync's thread,
    idle otherwise, parses the last chunks not taken yet itself: the chunk index -> its result.
    Only plain events are parsed here, linear in their size, as the sync would read them anyway."""
    stolen: dict[int, list | None] = {}
    first = futures[:WORKERS]
    for k in range(len(futures) - 1, -1, -1):
        if any(f.running() or (f.done() and not f.cancelled()) for f in first) or not futures[k].cancel():
            break
        try:
            stolen[k] = _read_in_worker(datas[starts[k] : starts[k] + READ_AHEAD_CHUNK], *args)
        except Exception as exc:  # noqa: BLE001 — as a chunk that failed in a worker: the sync reads those objects one by one
            log.warning("objects from %d of a read could not be parsed ahead (%s)", starts[k], exc.__class__.__name__)
            stolen[k] = None
    return stolen


def warm_up() -> None:
    """Start the workers in the background: a calendar's first read is coming, and it may be large
    (started while the server answers, they are ready when the objects arrive)."""
    if _pool is None:
        _exit_hook_first()  # here, in the caller's thread: settled before the process can exit
        threading.Thread(target=_start_workers, name="calsync-expander-start", daemon=True).start()


def _start_workers() -> None:
    try:
        _schedule(ics.zone, ("UTC",)).result(timeout=30)
    except Exception as exc:  # noqa: BLE001 — the read then happens in the sync's thread
        # Only a head start: a read that needs the workers and finds none says so itself
        # (read_ahead). Cut short here mostly means the process is exiting (a CLI command done
        # before the workers were up: the exit stops the pool under it), and a warning after the
        # command's last line would report a failure that did not happen.
        log.debug("the expansion workers did not start ahead: %s", exc.__class__.__name__)


def _new_pool():
    # Imported with the first pool: a sync that reads nothing (most of them) needs neither.
    import multiprocessing

    import pebble

    _exit_hook_first()
    # pebble's loops look at the pool every sleep_unit (0.1 s): a CLI command that used the
    # workers waited up to that long to stop them at exit (~70 ms measured). 20 ms: its threads
    # wake ~100 times a second, only while a pool lives (IDLE_STOP).
    pebble.CONSTS.sleep_unit = 0.02
    # forkserver: workers start from a clean process, not a fork of a threaded service.
    context = multiprocessing.get_context("forkserver")
    # Every worker expands with icalendar: loaded once in the server, not in each worker.
    multiprocessing.set_forkserver_preload(["core.ics", "core.recurrence", "icalendar", "dateutil.rrule"])
    return pebble.ProcessPool(
        max_workers=WORKERS, max_tasks=TASKS_PER_WORKER, initializer=_limit_memory, initargs=(MEMORY_LIMIT,), context=context
    )


def _schedule(fn, args: tuple, timeout: float | None = None):
    """``fn(*args)`` in a worker, as a future: the pool is started for it and stopped once no task
    ran for IDLE_STOP seconds."""
    global _pool, _pending
    with _lock:
        if _pool is None:
            if _exiting:
                raise RuntimeError("the process is exiting: no expansion workers start")
            _pool, _pending = _new_pool(), set()
        pool, pending = _pool, _pending
        future = pool.schedule(fn, args=args, timeout=timeout)
        pending.add(future)
    future.add_done_callback(lambda done: _task_done(pending, done))
    return future


def _task_done(pending: set, future) -> None:
    global _idle_since
    with _lock:
        pending.discard(future)
        if pending is _pending and not pending:
            _idle_since = time.monotonic()
            _arm_reaper(IDLE_STOP)


def _arm_reaper(delay: float) -> None:
    """With the lock held: one timer at a time looks whether the pool has been idle long enough."""
    global _reaper
    if _reaper is None:
        _reaper = threading.Timer(delay, _reap)
        _reaper.name = "calsync-expander-idle"
        _reaper.daemon = True
        _reaper.start()


def _reap() -> None:
    global _pool, _reaper
    with _lock:
        _reaper = None
        if _pool is None or _pending:
            return  # a running task arms it again when it ends
        left = _idle_since + IDLE_STOP - time.monotonic()
        if left > 0:
            _arm_reaper(left)
            return
        pool, _pool = _pool, None
    _stop(pool)


def _stop(pool) -> None:
    # Not under the lock: pebble's threads, stopping, run the futures' callbacks, which take it.
    pool.stop()
    pool.join(timeout=5)


def shutdown() -> None:
    """Stop the workers now (at exit; the next task starts new ones)."""
    global _pool, _reaper
    with _lock:
        pool, _pool = _pool, None
        if _reaper is not None:
            _reaper.cancel()
            _reaper = None
    if pool is not None:
        _stop(pool)


def _exit_hook_first() -> None:
    """atexit runs its hooks last-registered first, and multiprocessing's own (registered when
    multiprocessing.util is first imported) unlinks the semaphores the workers are made with: a
    worker still starting after that dies with a traceback after the command's last line, and
    the semaphores leak. Registered again after it, ours stops the workers before."""
    global _hook_first
    if _hook_first:
        return
    import multiprocessing.util  # noqa: F401 — for its exit hook, which ours must follow

    atexit.unregister(_at_exit)
    atexit.register(_at_exit)
    _hook_first = True


def _at_exit() -> None:
    """No new pool from here on (a warm-up thread may still try), and the one living stops."""
    global _exiting
    with _lock:
        _exiting = True
    shutdown()


atexit.register(_at_exit)  # whichever pool lives at exit (none: nothing to do)


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
    future = _schedule(
        _expand_in_worker, (data, window_start, window_end, getattr(tz, "key", "UTC"), all_day_policy, max_occurrences, me), timeout
    )
    try:
        return future.result()
    except TimeoutError:  # concurrent.futures.TimeoutError is this builtin since Python 3.11
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
